"""The host tier and the fetch thread that moves experts disk -> pinned host -> GPU.

The main thread decides which GPU slot an expert goes to (it owns the GPU
cache); the fetch thread owns the host tier and does all the I/O, on its own
CUDA stream, in request order.
"""
from __future__ import annotations

import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import torch

from nsysparse.conventions import (
    R_CPU_TO_GPU,
    R_DISK_TO_CPU,
    R_FETCH_LOOP,
    R_SLOT_REUSE_WAIT,
    R_STREAM_SYNC,
)

from .cache import ExpertCache
from .instrument import Instrument
from .memory import HostSlab
from .store import DiskReader, ExpertStore, Key

STAGING_SLOTS = 2  # bounce buffers in disk mode with no host cache: read one while the other copies


@dataclass
class TransferStats:
    """Counters of the fetch path: disk reads and host-to-device copies, with bytes."""

    disk_reads: int = 0
    disk_bytes: int = 0
    h2d_copies: int = 0
    h2d_bytes: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a dict."""
        return dict(self.__dict__)


class HostTier:
    """Pinned host memory for experts: a cache over the disk store, or every expert preloaded.

    ``capacity`` experts are cached with ``policy``; capacity 0 keeps nothing
    and reads each expert into one of :data:`STAGING_SLOTS` bounce buffers.
    ``preload`` (host mode) fills the tier with ``preload`` keys at start.
    A slot is reused only after the copy out of it has finished
    (``slot_reuse_wait``).
    """

    def __init__(self, store: ExpertStore, reader: DiskReader, capacity: int, policy: str, pin: bool,
                 instrument: Instrument, stats: TransferStats, preload: list[Key] | None = None) -> None:
        self.store, self.reader, self.instr, self.stats = store, reader, instrument, stats
        self.retain = capacity > 0
        self.cache = ExpertCache(capacity, policy)
        nslots = capacity if self.retain else STAGING_SLOTS
        p = store.preset
        self.slab = HostSlab(nslots, store.padded_bytes, p.expert_elems, p.dtype, pin)
        self._copy_done: list[torch.cuda.Event | None] = [None] * nslots
        self._next_staging = 0
        if preload:
            self._preload(preload)

    def _preload(self, keys: list[Key]) -> None:
        slots = [self.cache.insert(k)[0] for k in keys]
        with ThreadPoolExecutor(max_workers=8) as pool:  # preadv releases the GIL
            list(pool.map(lambda ks: self.reader.read_into(ks[0], self.slab.io_buffer(ks[1])), zip(keys, slots)))

    def source(self, key: Key) -> int:
        """The slot holding ``key``, reading it from disk on a miss (``disk_to_cpu``)."""
        if self.retain:
            slot = self.cache.lookup(key)
            if slot is not None:
                return slot
            slot, _ = self.cache.insert(key)
        else:
            slot = self._next_staging
            self._next_staging = (slot + 1) % STAGING_SLOTS
        done = self._copy_done[slot]
        if done is not None and not done.query():
            with self.instr.range(R_SLOT_REUSE_WAIT):
                done.synchronize()
        with self.instr.range(R_DISK_TO_CPU, self.store.payload_bytes):
            n = self.reader.read_into(key, self.slab.io_buffer(slot))
        self.stats.disk_reads += 1
        self.stats.disk_bytes += n
        return slot

    def copied_out(self, slot: int, done: torch.cuda.Event | None) -> None:
        """Record the event after which ``slot`` may be overwritten."""
        self._copy_done[slot] = done

    def close(self) -> None:
        """Free the slab."""
        self._copy_done = []
        self.slab.close()


@dataclass
class FetchRequest:
    """Copy expert ``key`` into GPU slot ``gpu_slot`` once ``slot_free`` (a compute-stream event) has passed."""

    key: Key
    gpu_slot: int
    slot_free: torch.cuda.Event | None
    future: Future = field(default_factory=Future)


class Fetcher:
    """The fetch thread: serves :class:`FetchRequest` in order on its own CUDA stream.

    ``sync="stream"``: after each copy the thread calls
    ``cudaStreamSynchronize`` (``cuda_stream_sync``) and the future resolves
    to None once the expert is on the GPU. ``sync="event"``: the future
    resolves to an event recorded after the copy, right after the copy is
    issued; the compute stream waits on it.
    """

    def __init__(self, host: HostTier, gpu_slab: torch.Tensor, sync: str, instrument: Instrument,
                 stats: TransferStats) -> None:
        if sync not in ("stream", "event"):
            raise ValueError(f"sync must be 'stream' or 'event', not {sync!r}")
        self.host, self.gpu_slab, self.sync, self.instr, self.stats = host, gpu_slab, sync, instrument, stats
        self.cuda = gpu_slab.device.type == "cuda"
        self.stream = torch.cuda.Stream(gpu_slab.device) if self.cuda else None
        self.nbytes = host.store.payload_bytes
        self._queue: queue.Queue[FetchRequest | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="expert_fetch", daemon=True)

    def start(self) -> None:
        """Start the fetch thread (its ``fetch_loop`` range opens then). Idempotent."""
        if self._thread.ident is None:
            self._thread.start()

    def submit(self, key: Key, gpu_slot: int, slot_free: torch.cuda.Event | None) -> Future:
        """Queue a fetch; the future gives None (ready) or an event to wait on. Starts the thread if need be."""
        self.start()
        req = FetchRequest(key, gpu_slot, slot_free)
        self._queue.put(req)
        return req.future

    def _loop(self) -> None:
        if self.cuda:
            torch.cuda.set_device(self.gpu_slab.device)
        with self.instr.range(R_FETCH_LOOP):  # lifetime range: not a step (METRICS.md, traps)
            while (req := self._queue.get()) is not None:
                try:
                    req.future.set_result(self._fetch(req))
                except BaseException as exc:  # handed to the waiting main thread
                    req.future.set_exception(exc)

    def _fetch(self, req: FetchRequest) -> torch.cuda.Event | None:
        slot = self.host.source(req.key)
        src = self.host.slab.weights(slot)
        dst = self.gpu_slab[req.gpu_slot]
        if not self.cuda:
            with self.instr.range(R_CPU_TO_GPU, self.nbytes):
                dst.copy_(src)
            self._count()
            return None
        with torch.cuda.stream(self.stream):
            if req.slot_free is not None:
                self.stream.wait_event(req.slot_free)
            with self.instr.range(R_CPU_TO_GPU, self.nbytes):
                dst.copy_(src, non_blocking=True)
            done = torch.cuda.Event()
            done.record(self.stream)
        self.host.copied_out(slot, done)
        self._count()
        if self.sync == "stream":
            with self.instr.range(R_STREAM_SYNC):
                self.stream.synchronize()
            return None
        return done

    def _count(self) -> None:
        self.stats.h2d_copies += 1
        self.stats.h2d_bytes += self.nbytes

    def close(self) -> None:
        """Stop the thread after the queued requests."""
        if self._thread.ident is None:
            return
        self._queue.put(None)
        self._thread.join()
