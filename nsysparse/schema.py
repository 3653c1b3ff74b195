"""Names from the Nsight Systems export format, each written once.

The export creates a table only when it has data for it, so nothing here is
assumed to exist: :class:`nsysparse.trace.Trace` probes ``sqlite_master`` and
``pragma table_info`` once and consults these names.
"""

from __future__ import annotations

import re

import numpy as np
import numpy.typing  # noqa: F401

# NVTX_EVENTS.eventType values (nsys ENUM_NSYS_EVENT_TYPE)
NVTX_MARK = 34
NVTX_CATEGORY = 33
NVTX_THREAD_NAME = 39
NVTX_PUSH_POP = 59
NVTX_START_END = 60
NVTX_DOMAIN_CREATE = 75
NVTX_RANGE_TYPES = (NVTX_PUSH_POP, NVTX_START_END)
RANGE_KIND = {NVTX_PUSH_POP: "push_pop", NVTX_START_END: "start_end"}

# NVTX payload columns; at most one is set on a row
PAYLOAD_COLUMNS = ("int64Value", "uint64Value", "int32Value", "uint32Value", "doubleValue", "floatValue")

T_NVTX = "NVTX_EVENTS"
T_STRINGS = "StringIds"
T_RUNTIME = "CUPTI_ACTIVITY_KIND_RUNTIME"
T_KERNEL = "CUPTI_ACTIVITY_KIND_KERNEL"
T_MEMCPY = "CUPTI_ACTIVITY_KIND_MEMCPY"
T_MEMSET = "CUPTI_ACTIVITY_KIND_MEMSET"
T_GRAPH = "CUPTI_ACTIVITY_KIND_GRAPH_TRACE"
T_SYNC = "CUPTI_ACTIVITY_KIND_SYNCHRONIZATION"
T_GPU = "TARGET_INFO_GPU"
T_THREADS = "ThreadNames"
T_META = "META_DATA_EXPORT"
T_ANALYSIS = "ANALYSIS_DETAILS"
T_ENUM_MEMCPY = "ENUM_CUDA_MEMCPY_OPER"
T_ENUM_MEMKIND = "ENUM_CUDA_MEM_KIND"
T_ENUM_SYNC = "ENUM_CUPTI_SYNC_TYPE"

# Any one of these makes a trace usable: without all of them it holds no CUDA activity.
CUDA_TABLES = (T_RUNTIME, T_KERNEL, T_MEMCPY, T_MEMSET, T_GRAPH)

# Supported export schema major version (the fixtures are 3.20.3).
SUPPORTED_SCHEMA_MAJOR = 3

# ENUM labels, as the ENUM_* tables spell them (decoded by label, never by raw number)
H2D, D2H, D2D, P2P = "Host-to-Device", "Device-to-Host", "Device-to-Device", "Peer-to-Peer"
DISK_TO_HOST = "Disk-to-Host"
LINK_KIND_OF_COPY = {H2D: "H2D", D2H: "D2H", D2D: "D2D", P2P: "P2P"}

# Synchronising API calls, by base name (METRICS.md, Sync share)
SYNC_CALLS = frozenset(
    {
        "cudaDeviceSynchronize",
        "cudaStreamSynchronize",
        "cudaEventSynchronize",
        "cuCtxSynchronize",
        "cuStreamSynchronize",
        "cuEventSynchronize",
        "cudaMemcpy",
        "cudaMemcpy2D",
        "cudaMemcpy3D",
        "cudaMemcpyToSymbol",
        "cudaMemcpyFromSymbol",
        "cudaMemcpyPeer",
        "cudaMemcpy3DPeer",
        "cudaMemset",
        "cudaMemset2D",
        "cudaMemset3D",
    }
)

# `cudaStreamSynchronize_v3020` -> `cudaStreamSynchronize` (any digits)
BASE_NAME_SUFFIX = re.compile(r"_v\d+$")
# nsys's cuda_api_sum strips exactly four digits and keeps other suffixes
NSYS_API_SUFFIX = re.compile(r"_v\d{4}$")


def pid_of(global_tid: "np.typing.ArrayLike") -> np.ndarray:
    """Process id from serialized globalTid/globalPid values (bits 24..47)."""
    return (np.asarray(global_tid, dtype=np.int64) >> 24) & 0xFFFFFF


def tid_of(global_tid: "np.typing.ArrayLike") -> np.ndarray:
    """Thread id from serialized globalTid values (low 24 bits)."""
    return np.asarray(global_tid, dtype=np.int64) & 0xFFFFFF
