"""An instrumented expert-offloading MoE engine with real model shapes.

:mod:`.presets` model shapes; :mod:`.config` the options; :mod:`.store` the on-disk expert store;
:mod:`.cache` slot caches and eviction; :mod:`.memory` pinned/GPU slabs;
:mod:`.fetch` the host tier and fetch thread; :mod:`.model` the engine;
:mod:`.instrument` NVTX ranges and the I/O log; :mod:`.options` the CLI.
Importing this package does not import torch.
"""
from .presets import PRESETS, Preset, get_preset

__all__ = ["PRESETS", "Preset", "get_preset"]
