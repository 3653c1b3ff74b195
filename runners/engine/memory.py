"""Slabs of equal expert slots: page-aligned host memory (pinned for CUDA) and GPU memory.

Host slabs are anonymous ``mmap`` memory, page-aligned so O_DIRECT can read
straight into a slot, then page-locked with ``cudaHostRegister`` for exactly
their size (``pin_memory`` tensors would round a multi-GB slab up to a power
of two). Where registration fails, a ``pin_memory`` tensor is used instead;
``pinning`` says which.
"""
from __future__ import annotations

import mmap

import numpy as np
import torch

PAGE = 4096
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def _host_register(ptr: int, size: int) -> bool:
    """Page-lock ``size`` bytes at ``ptr`` for CUDA; False where the runtime refuses or lacks the call."""
    try:
        return int(torch.cuda.cudart().cudaHostRegister(ptr, size, 0)) == 0
    except (AttributeError, RuntimeError, TypeError):
        return False


class HostSlab:
    """``nslots`` slots of ``slot_bytes`` each in host memory; slot ``i`` holds ``elems`` weights."""

    def __init__(self, nslots: int, slot_bytes: int, elems: int, dtype: str, pin: bool) -> None:
        if slot_bytes % PAGE:
            raise ValueError("slot_bytes must be a multiple of the page size")
        self.nslots, self.slot_bytes, self.elems = nslots, slot_bytes, elems
        self.dtype = DTYPES[dtype]
        size = max(1, nslots) * slot_bytes
        self._mmap: mmap.mmap | None = mmap.mmap(-1, size)
        self._registered = False
        self.pinning = "none"
        bytes_ = torch.from_numpy(np.frombuffer(self._mmap, dtype=np.uint8))
        if pin:
            if _host_register(bytes_.data_ptr(), size):
                self._registered, self.pinning = True, "cudaHostRegister"
            else:
                bytes_ = torch.empty(size, dtype=torch.uint8, pin_memory=True)
                self._mmap.close()
                self._mmap = None
                self.pinning = "pin_memory"
                if bytes_.data_ptr() % PAGE:
                    raise RuntimeError("pinned host slab is not page-aligned")
        self._bytes = bytes_
        self._np = bytes_.numpy()

    def io_buffer(self, slot: int) -> np.ndarray:
        """Slot ``slot`` as a writable, page-aligned uint8 array (for disk reads)."""
        return self._np[slot * self.slot_bytes:(slot + 1) * self.slot_bytes]

    def weights(self, slot: int) -> torch.Tensor:
        """Slot ``slot``'s weights as a 1-D tensor of ``elems`` elements (shares memory)."""
        start = slot * self.slot_bytes
        itemsize = torch.empty(0, dtype=self.dtype).element_size()
        return self._bytes[start:start + self.elems * itemsize].view(self.dtype)

    def close(self) -> None:
        """Unpin and free the memory."""
        if self._registered:
            torch.cuda.cudart().cudaHostUnregister(self._bytes.data_ptr())
            self._registered = False
        self._np = None
        self._bytes = None
        if self._mmap is not None:
            try:
                self._mmap.close()
            except BufferError:  # a view still exported; the GC frees it
                pass
            self._mmap = None
