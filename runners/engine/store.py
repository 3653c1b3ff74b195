"""The on-disk expert store: one file per routed expert, generated once, reused, verified.

File layout: a 4,096-byte header (magic, then JSON: layer, expert, shape,
dtype, seed, payload bytes, CRC-32 of the payload), then the payload, padded
to a multiple of 4,096 bytes so that O_DIRECT reads of it are aligned. The
payload is the expert's bf16 weights as ``[3, inter, hidden]``: gate, up,
and the down projection transposed.

Weights are deterministic in (seed, layer, expert): random sign and mantissa,
and an exponent in a narrow band scaled to ``1/sqrt(hidden)`` so activations
stay finite through the layers.
"""
from __future__ import annotations

import json
import math
import os
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from .presets import Preset

MAGIC = b"NSPMOEX1"
HEADER_BYTES = 4096
ALIGN = 4096
FORMAT_VERSION = 1

Key = tuple[int, int]  # (layer, expert)


def padded(nbytes: int, align: int = ALIGN) -> int:
    """``nbytes`` rounded up to a multiple of ``align``."""
    return -(-nbytes // align) * align


def expert_weights_bits(preset: Preset, seed: int, layer: int, expert: int) -> np.ndarray:
    """The expert's bf16 weights as raw ``uint16`` bits, ``preset.expert_elems`` long.

    Bits: a random sign, a random 7-bit mantissa and one of four exponents
    centred on ``2**round(-log2(hidden)/2)``.
    """
    if preset.dtype != "bfloat16":
        raise ValueError(f"expert store writes bfloat16 only, not {preset.dtype}")
    rng = np.random.default_rng([seed, layer, expert])
    raw = np.frombuffer(rng.bytes(2 * preset.expert_elems), dtype=np.uint16)
    e0 = 127 + round(-0.5 * math.log2(preset.hidden)) - 2
    return (raw & np.uint16(0x807F)) | ((((raw >> np.uint16(7)) & np.uint16(3)) + np.uint16(e0)) << np.uint16(7))


@dataclass
class StoreSummary:
    """What :meth:`ExpertStore.ensure` did: files generated, files reused, bytes written."""

    generated: int
    reused: int
    bytes_written: int


def expert_keys(preset: Preset, layers: int | None = None) -> list[Key]:
    """Every routed expert of the first ``layers`` layers (default all): ``(layer, expert)``, dense layers left out."""
    n = min(layers or preset.layers, preset.layers)
    return [(li, e) for li in range(preset.first_dense, n) for e in range(preset.experts)]


class ExpertStore:
    """A folder of expert files for one preset and seed under ``root``.

    ``path(key)`` names a file; constructing one touches nothing on disk;
    ``ensure(keys)`` writes the missing or invalid ones (:func:`build_store`); ``read_into`` and :class:`DiskReader` read a payload back.
    """

    def __init__(self, root: str | Path, preset: Preset, seed: int) -> None:
        self.preset = preset
        self.seed = seed
        self.dir = Path(root) / f"{preset.name}-h{preset.hidden}-i{preset.inter}-seed{seed}"
        self.payload_bytes = preset.expert_bytes
        self.padded_bytes = padded(preset.expert_bytes)
        self.file_bytes = HEADER_BYTES + self.padded_bytes

    def path(self, key: Key) -> Path:
        """File holding expert ``key = (layer, expert)``."""
        return self.dir / f"L{key[0]:03d}_E{key[1]:03d}.bin"

    def _meta(self, key: Key) -> dict:
        p = self.preset
        return {"version": FORMAT_VERSION, "layer": key[0], "expert": key[1], "hidden": p.hidden,
                "inter": p.inter, "dtype": p.dtype, "seed": self.seed, "payload_bytes": self.payload_bytes}

    def read_header(self, key: Key) -> dict | None:
        """The file's header as a dict, or None when the file is absent, short or not ours."""
        try:
            with open(self.path(key), "rb") as f:
                head = f.read(HEADER_BYTES)
        except FileNotFoundError:
            return None
        if len(head) < HEADER_BYTES or not head.startswith(MAGIC):
            return None
        try:
            return json.loads(head[len(MAGIC):].rstrip(b"\0"))
        except ValueError:
            return None

    def verify(self, key: Key, full: bool = False) -> bool:
        """Whether the file matches this store: header fields and size; with ``full``, the CRC-32 too."""
        head = self.read_header(key)
        if head is None or {k: head.get(k) for k in self._meta(key)} != self._meta(key):
            return False
        path = self.path(key)
        if path.stat().st_size != self.file_bytes:
            return False
        if full:
            with open(path, "rb") as f:
                f.seek(HEADER_BYTES)
                if zlib.crc32(f.read(self.payload_bytes)) != head.get("crc32"):
                    return False
        return True

    def write(self, key: Key) -> int:
        """Generate and write expert ``key``; returns bytes written. Written to a temp name, then renamed."""
        bits = expert_weights_bits(self.preset, self.seed, *key)
        payload = bits.tobytes()
        meta = {**self._meta(key), "crc32": zlib.crc32(payload)}
        head = MAGIC + json.dumps(meta).encode()
        path = self.path(key)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(head.ljust(HEADER_BYTES, b"\0"))
            f.write(payload)
            f.write(b"\0" * (self.padded_bytes - self.payload_bytes))
        os.replace(tmp, path)
        return self.file_bytes

    def missing(self, keys: Iterable[Key]) -> list[Key]:
        """The keys whose file is absent or fails :meth:`verify` (headers only). Reads, never writes."""
        return [k for k in keys if not self.verify(k)]

    def ensure(self, keys: Iterable[Key], full_verify: bool = False, workers: int | None = None) -> StoreSummary:
        """Write every expert in ``keys`` whose file is missing or fails :meth:`verify`."""
        self.dir.mkdir(parents=True, exist_ok=True)
        keys = list(keys)
        missing = [k for k in keys if not self.verify(k, full=full_verify)]
        workers = workers or min(8, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=workers) as pool:  # numpy's bit ops and file writes release the GIL
            written = sum(pool.map(self.write, missing))
        return StoreSummary(generated=len(missing), reused=len(keys) - len(missing), bytes_written=written)


class DiskReader:
    """Reads expert payloads into caller-provided, 4,096-byte aligned buffers.

    ``prefer_direct`` asks for O_DIRECT, which bypasses the page cache (as the
    reference engine does) so that the disk link measures the disk. Where the
    file system refuses O_DIRECT (tmpfs, some sandboxes), the reader falls
    back to dropping the file's cached pages (``posix_fadvise DONTNEED``) and
    reading buffered, and says so in ``method`` and ``note``.
    """

    def __init__(self, store: ExpertStore, prefer_direct: bool = True) -> None:
        self.store = store
        self.method = "o_direct" if prefer_direct and hasattr(os, "O_DIRECT") else "buffered_fadvise_dontneed"
        self.note = "" if self.method == "o_direct" else "O_DIRECT not requested or not available"

    def read_into(self, key: Key, buf: np.ndarray) -> int:
        """Read ``key``'s padded payload into ``buf`` (uint8, at least ``padded_bytes``); returns payload bytes."""
        n = self.store.padded_bytes
        view = memoryview(buf[:n])
        if self.method == "o_direct":
            try:
                self._pread_all(os.open(self.store.path(key), os.O_RDONLY | os.O_DIRECT), view)
                return self.store.payload_bytes
            except OSError as exc:  # EINVAL: file system or buffer refuses O_DIRECT
                self.method = "buffered_fadvise_dontneed"
                self.note = f"O_DIRECT failed ({exc.strerror or exc}); fell back to buffered reads after DONTNEED"
        fd = os.open(self.store.path(key), os.O_RDONLY)
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        self._pread_all(fd, view)
        return self.store.payload_bytes

    @staticmethod
    def _pread_all(fd: int, view: memoryview) -> None:
        try:
            done = 0
            while done < len(view):
                got = os.preadv(fd, [view[done:]], HEADER_BYTES + done)
                if got <= 0:
                    raise OSError(f"short read: {done} of {len(view)} bytes")
                done += got
        finally:
            os.close(fd)


def build_store(root: str | Path, preset: Preset, seed: int, layers: int | None = None,
                full_verify: bool = False) -> tuple[ExpertStore, dict]:
    """Write the expert store an engine of ``preset`` cut to ``layers`` needs (the one step that writes to disk).

    Returns the store and what was done: ``path``, ``files``, ``generated``,
    ``reused``, ``bytes_written``, ``file_bytes`` and ``seconds``.
    """
    store = ExpertStore(root, preset, seed)
    keys = expert_keys(preset, layers)
    t0 = time.perf_counter()
    summary = store.ensure(keys, full_verify=full_verify)
    return store, {"path": str(store.dir), "files": len(keys), "generated": summary.generated,
                   "reused": summary.reused, "bytes_written": summary.bytes_written,
                   "file_bytes": store.file_bytes, "seconds": round(time.perf_counter() - t0, 3)}
