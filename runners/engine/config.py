"""Engine options as a dataclass (no torch needed: the profiler's dry run and CLI import this)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_STORE = Path(os.environ.get("NSYSPARSE_EXPERT_STORE", Path.home() / ".cache" / "nsysparse" / "experts"))


@dataclass
class EngineConfig:
    """Every engine option; :mod:`runners.engine.options` maps them to the command line."""

    preset: str = "tiny"
    layers: int | None = None
    mode: str = "disk"
    sync: str = "event"
    prefetch: str = "none"
    gpu_cache: str = "70%"
    host_cache: str = "0"
    policy: str = "lru"
    batch: int = 1
    prompt_len: int = 16
    decode_steps: int = 8
    seed: int = 0
    skew: float = 1.0
    device: str = "cuda"
    store: str | None = None
    io_log: str | None = None
    nvtx: bool = True
    nvtx_backend: str = "auto"
    direct_io: bool = True
    overhead_ab: bool = False
    decode_input: str = "random"

    def validate(self) -> None:
        """Raise ValueError on an option outside its domain."""
        choices = {"mode": ("disk", "host"), "sync": ("stream", "event"),
                   "prefetch": ("none", "next-layer"), "device": ("cpu", "cuda"),
                   "decode_input": ("random", "greedy"),
                   "nvtx_backend": ("auto", "nvtx", "torch")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"--{name.replace('_', '-')} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}")
        for name in ("batch", "prompt_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
        if self.decode_steps < 0 or self.skew < 0:
            raise ValueError("--decode-steps and --skew must be >= 0")
        if self.layers is not None and self.layers < 1:
            raise ValueError("--layers must be >= 1")
