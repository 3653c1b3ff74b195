"""Model shapes of the published MoE models the engine imitates.

Weights cannot be downloaded here, so the engine generates deterministic
random weights of these shapes. Every routed expert is a SwiGLU MLP of three
``inter x hidden`` matrices (gate, up, and the transposed down projection), so
one expert is ``3 * hidden * inter * itemsize`` bytes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

ITEMSIZE = {"bfloat16": 2, "float16": 2, "float32": 4}


@dataclass(frozen=True)
class Preset:
    """Shape of one MoE model.

    ``first_dense`` leading layers use a dense MLP of ``dense_inter``; the rest
    route each token to ``top_k`` of ``experts`` routed experts and also run
    ``shared_experts`` always-on experts of ``shared_inter`` each.
    """

    name: str
    model: str
    layers: int
    first_dense: int
    experts: int
    top_k: int
    shared_experts: int
    hidden: int
    inter: int
    shared_inter: int
    dense_inter: int
    heads: int
    kv_heads: int
    vocab: int
    norm_topk: bool = False
    shared_gate: bool = False
    dtype: str = "bfloat16"

    @property
    def itemsize(self) -> int:
        """Bytes per weight element."""
        return ITEMSIZE[self.dtype]

    @property
    def expert_elems(self) -> int:
        """Elements in one routed expert (gate, up and down projections)."""
        return 3 * self.hidden * self.inter

    @property
    def expert_bytes(self) -> int:
        """Bytes of one routed expert's weights."""
        return self.expert_elems * self.itemsize

    def moe_layers(self, layers: int | None = None) -> int:
        """Number of MoE layers among the first ``layers`` (all when None)."""
        n = self.layers if layers is None else min(layers, self.layers)
        return max(0, n - self.first_dense)

    def store_bytes(self, layers: int | None = None) -> int:
        """Routed-expert bytes the expert store writes for ``layers`` layers (payload only)."""
        return self.moe_layers(layers) * self.experts * self.expert_bytes

    def as_dict(self) -> dict:
        """The preset as a JSON-ready dict, with the derived sizes."""
        return {**asdict(self), "expert_bytes": self.expert_bytes, "store_bytes": self.store_bytes()}


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        # DeepSeek-V2-Lite: MLA attention is replaced by plain multi-head attention of the same width.
        Preset("deepseek", "deepseek-ai/DeepSeek-V2-Lite", layers=27, first_dense=1, experts=64, top_k=6,
               shared_experts=2, hidden=2048, inter=1408, shared_inter=1408, dense_inter=10944,
               heads=16, kv_heads=16, vocab=102400),
        Preset("mixtral", "mistralai/Mixtral-8x7B-v0.1", layers=32, first_dense=0, experts=8, top_k=2,
               shared_experts=0, hidden=4096, inter=14336, shared_inter=0, dense_inter=0,
               heads=32, kv_heads=8, vocab=32000, norm_topk=True),
        Preset("qwen", "Qwen/Qwen1.5-MoE-A2.7B", layers=24, first_dense=0, experts=60, top_k=4,
               shared_experts=1, hidden=2048, inter=1408, shared_inter=5632, dense_inter=0,
               heads=16, kv_heads=16, vocab=151936, shared_gate=True),
        # For CPU tests: one expert is 3*64*128*2 = 49,152 bytes (12 pages, so O_DIRECT-aligned).
        Preset("tiny", "tiny (CPU tests)", layers=3, first_dense=1, experts=8, top_k=2,
               shared_experts=1, hidden=64, inter=128, shared_inter=128, dense_inter=256,
               heads=4, kv_heads=2, vocab=256),
    )
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; KeyError names the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None
