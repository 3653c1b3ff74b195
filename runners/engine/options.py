"""Engine options on the command line, shared by ``runners.engine`` and ``runners.profile``."""
from __future__ import annotations

import argparse
from dataclasses import fields

from .cache import POLICIES
from .config import EngineConfig
from .presets import PRESETS

_DEFAULTS = EngineConfig()


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every engine option (and the PRESET positional) to ``parser``."""
    parser.add_argument("preset", choices=sorted(PRESETS), help="model shape to imitate")
    g = parser.add_argument_group("engine options")
    g.add_argument("--layers", type=int, default=None, help="cut depth to the first N layers (default: all)")
    g.add_argument("--mode", choices=("disk", "host"), default=_DEFAULTS.mode,
                   help="disk: experts read from the store on a miss (O_DIRECT); host: all experts pinned in RAM first")
    g.add_argument("--sync", choices=("stream", "event"), default=_DEFAULTS.sync,
                   help="stream: cudaStreamSynchronize after each copy; event: compute stream waits on an event")
    g.add_argument("--prefetch", choices=("none", "next-layer"), default=_DEFAULTS.prefetch,
                   help="next-layer: apply the next layer's gate to the current hidden state and fetch early")
    g.add_argument("--gpu-cache", default=_DEFAULTS.gpu_cache,
                   help="GPU expert cache: experts (179), bytes (3GB, 2.5GiB) or share of the run's experts (70%%)")
    g.add_argument("--host-cache", default=_DEFAULTS.host_cache,
                   help="pinned host cache in disk mode, same units (0: two bounce buffers); host mode holds all")
    g.add_argument("--policy", choices=POLICIES, default=_DEFAULTS.policy, help="eviction policy of both caches")
    g.add_argument("--batch", type=int, default=_DEFAULTS.batch, help="sequences decoded together")
    g.add_argument("--prompt-len", type=int, default=_DEFAULTS.prompt_len, help="prompt tokens per sequence")
    g.add_argument("--decode-steps", type=int, default=_DEFAULTS.decode_steps, help="tokens decoded (one step each)")
    g.add_argument("--seed", type=int, default=_DEFAULTS.seed, help="seed of weights, prompt and store")
    g.add_argument("--skew", type=float, default=_DEFAULTS.skew,
                   help="routing skew: bias -SKEW*log(1+rank) on a per-layer expert ranking (0: near uniform)")
    g.add_argument("--device", choices=("cpu", "cuda"), default=_DEFAULTS.device)
    g.add_argument("--store", default=None, help="expert store folder (default $NSYSPARSE_EXPERT_STORE "
                                                 "or ~/.cache/nsysparse/experts)")
    g.add_argument("--io-log", default=None, help="also write every range to this JSONL file")
    g.add_argument("--no-nvtx", dest="nvtx", action="store_false", help="emit no NVTX annotations")
    g.add_argument("--nvtx-backend", choices=("auto", "nvtx", "torch"), default=_DEFAULTS.nvtx_backend,
                   help="annotations through the nvtx package (byte payloads) or torch.cuda.nvtx (none); "
                        "auto: nvtx if it imports, else torch.cuda.nvtx, else none")
    g.add_argument("--decode-input", choices=("random", "greedy"), default=_DEFAULTS.decode_input,
                   help="next input token: a seeded random stream (routing varies as with text) or the argmax")
    g.add_argument("--overhead-ab", action="store_true",
                   help="annotate only half the decode steps (ABBA order), to measure what the annotations cost")
    g.add_argument("--no-direct-io", dest="direct_io", action="store_false",
                   help="read the store buffered (after dropping its cached pages) instead of O_DIRECT")


def config_from_args(ns: argparse.Namespace) -> EngineConfig:
    """The :class:`EngineConfig` an argparse namespace describes."""
    return EngineConfig(**{f.name: getattr(ns, f.name) for f in fields(EngineConfig)})


def engine_argv(cfg: EngineConfig) -> list[str]:
    """Command-line arguments of ``python -m runners.engine`` that reproduce ``cfg`` (defaults left out)."""
    argv = [cfg.preset]
    for f in fields(EngineConfig):
        if f.name == "preset":
            continue
        value = getattr(cfg, f.name)
        if value == getattr(_DEFAULTS, f.name):
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            argv.append({"nvtx": "--no-nvtx", "direct_io": "--no-direct-io", "overhead_ab": "--overhead-ab"}[f.name])
        else:
            argv += [flag, str(value)]
    return argv
