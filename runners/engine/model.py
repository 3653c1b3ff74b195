"""The MoE decode engine: resident attention, gate and shared experts; routed experts fetched on demand.

Per layer: attention over a KV cache, a softmax top-k gate (plus a fixed
per-layer skew), one device-to-host copy of the per-expert token counts (as
real routers do), dispatch of the chosen experts to the GPU expert cache
(misses go to the fetch thread), the shared experts while the fetches run,
the wait for the fetches, then one SwiGLU per chosen expert. A prefill of
the prompt comes first, then ``decode_steps`` tokens, each in a ``step``
range.
"""
from __future__ import annotations

import math
import os
import time
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from nsysparse.conventions import (
    R_DENSE_LAYER,
    R_EXPERT_COMPUTE,
    R_EXPERT_DISPATCH,
    R_EXPERT_WAIT,
    R_GPU_TO_CPU,
    R_MOE_LAYER,
    R_PREFETCH,
    R_PREFILL,
    R_ROUTING,
    R_STEP,
)

from .cache import CacheFull, ExpertCache, parse_capacity
from .config import DEFAULT_STORE, EngineConfig
from .fetch import Fetcher, HostTier, TransferStats
from .instrument import Instrument
from .presets import Preset, get_preset
from .store import DiskReader, ExpertStore, Key, build_store, expert_keys


@dataclass
class EngineResult:
    """What one run did and how long it took."""

    config: dict
    preset: dict
    layers: int
    moe_layers: int
    expert_bytes: int
    gpu_cache_experts: int
    host_cache_experts: int
    prefill_ms: float
    step_ms: list[float]
    stats: dict
    disk_read_method: str
    disk_read_note: str
    host_pinning: str
    store: dict
    device_name: str
    nvtx_active: bool
    nvtx_backend: str | None
    final_logits_sum: float
    step_annotated: list[bool] | None = None
    logits: torch.Tensor | None = field(default=None, repr=False)

    def as_dict(self) -> dict:
        """JSON-ready dict (without the logits tensor)."""
        d = asdict(self)
        d.pop("logits")
        return d


def annotated_step(step: int) -> bool:
    """Whether decode step ``step`` is annotated in an ``--overhead-ab`` run: ABBA order (on, off, off, on, ...)
    so that a drift in step time over the run falls equally on both sides."""
    return step % 4 in (0, 3)


def rms_norm(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``x / rms(x)`` over the last axis, computed in float32, returned in ``x``'s dtype."""
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def swiglu(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """SwiGLU MLP with ``w = [gate, up, down^T]``, each ``[inter, hidden]``: ``(silu(x Wg^T) * x Wu^T) Wd^T``."""
    return (F.silu(x @ w[0].T) * (x @ w[1].T)) @ w[2]


class ResidentWeights:
    """Weights that live on the device for the whole run, drawn from ``torch.Generator(seed)``.

    Per layer: attention ``wq, wk, wv, wo``, the gate ``[experts, hidden]``
    (float32), the routing skew bias, the shared experts fused into one wider
    SwiGLU (``shared_experts * shared_inter``) with Qwen's sigmoid gate, or the
    dense MLP of a dense layer. The embedding is tied with the LM head.
    """

    def __init__(self, preset: Preset, layers: int, seed: int, skew: float, device: torch.device) -> None:
        p, dt = preset, torch.bfloat16
        g = torch.Generator(device=device).manual_seed(seed)

        def randn(*shape: int, fan_in: int, dtype: torch.dtype = dt) -> torch.Tensor:
            return (torch.randn(*shape, generator=g, device=device) / math.sqrt(fan_in)).to(dtype)

        hd = p.hidden // p.heads
        self.embed = randn(p.vocab, p.hidden, fan_in=1)
        self.attn = [(randn(p.heads * hd, p.hidden, fan_in=p.hidden), randn(p.kv_heads * hd, p.hidden, fan_in=p.hidden),
                      randn(p.kv_heads * hd, p.hidden, fan_in=p.hidden), randn(p.hidden, p.heads * hd, fan_in=p.heads * hd))
                     for _ in range(layers)]
        self.dense: dict[int, torch.Tensor] = {}
        self.gate: dict[int, torch.Tensor] = {}
        self.bias: dict[int, torch.Tensor] = {}
        self.shared: dict[int, torch.Tensor] = {}
        self.shared_gate: dict[int, torch.Tensor] = {}
        for li in range(layers):
            if li < p.first_dense:
                self.dense[li] = randn(3, p.dense_inter, p.hidden, fan_in=p.hidden)
                continue
            self.gate[li] = randn(p.experts, p.hidden, fan_in=p.hidden, dtype=torch.float32)
            # Random gates route almost uniformly; real ones favour a few experts. Bias expert of
            # popularity rank r by -skew*log(1+r), ranks a per-layer permutation.
            rank = torch.randperm(p.experts, generator=g, device=device).float()
            self.bias[li] = -skew * torch.log1p(rank)
            if p.shared_experts:
                self.shared[li] = randn(3, p.shared_experts * p.shared_inter, p.hidden, fan_in=p.hidden)
                if p.shared_gate:
                    self.shared_gate[li] = randn(p.hidden, fan_in=p.hidden)


class MoEEngine:
    """An expert-offloading MoE decoder (see the module docstring); ``run()`` does prefill and decode."""

    def __init__(self, cfg: EngineConfig) -> None:
        """Set up an engine for ``cfg`` over an expert store that :func:`build_store` has written.

        Writes nothing to disk: a store with missing or invalid files is a
        ValueError naming the step that builds it (:func:`run_engine` builds it first).
        """
        cfg.validate()
        self.cfg = cfg
        self.p = p = get_preset(cfg.preset)
        self.n_layers = min(cfg.layers or p.layers, p.layers)
        self.moe_ids = list(range(p.first_dense, self.n_layers))
        if cfg.device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("--device cuda but no CUDA GPU is visible to torch")
        keys = expert_keys(p, cfg.layers)
        total = len(keys)
        self.gpu_capacity = min(total, parse_capacity(cfg.gpu_cache, p.expert_bytes, total))
        # One layer's forward needs every expert it routes to resident at once.
        need = min(p.experts, cfg.batch * cfg.prompt_len * p.top_k) if keys else 0
        if self.gpu_capacity < need:
            raise ValueError(f"--gpu-cache {cfg.gpu_cache} holds {self.gpu_capacity} experts; a layer of this "
                             f"run can need {need} at once (batch*prompt_len*top_k, at most {p.experts})")
        self.store = ExpertStore(cfg.store or DEFAULT_STORE, p, cfg.seed)
        missing = self.store.missing(keys)
        if missing:
            raise ValueError(f"{self.store.dir}: {len(missing)} of {total} expert files missing or invalid; "
                             "build the store first (runners.engine.store.build_store, or run_engine)")
        self.store_info = {"path": str(self.store.dir), "files": total, "file_bytes": self.store.file_bytes}
        # An explicit index: the fetch thread must select the same GPU.
        self.device = torch.device("cuda", torch.cuda.current_device()) if cfg.device == "cuda" else torch.device("cpu")
        cuda = self.device.type == "cuda"
        if not cuda and torch.get_num_threads() >= (os.cpu_count() or 1) > 1:
            # Spinning intra-op threads on every core starve the fetch thread (100x slower steps on 2 cores).
            torch.set_num_threads((os.cpu_count() or 2) - 1)
        self.instr = Instrument(nvtx_on=cfg.nvtx and cuda, io_log=cfg.io_log, backend=cfg.nvtx_backend)
        self.reader = DiskReader(self.store, prefer_direct=cfg.direct_io)
        host_cap = total if cfg.mode == "host" else min(total, parse_capacity(cfg.host_cache, p.expert_bytes, total))
        self.transfers = TransferStats()
        self.host = HostTier(self.store, self.reader, host_cap, cfg.policy, pin=cuda, instrument=self.instr,
                             stats=self.transfers, preload=keys if cfg.mode == "host" else None)
        self.gpu_cache = ExpertCache(self.gpu_capacity, cfg.policy)
        self.gpu_slab = torch.empty(max(1, self.gpu_capacity), p.expert_elems, dtype=torch.bfloat16, device=self.device)
        self.slot_free: dict[int, torch.cuda.Event] = {}
        self.inflight: dict[Key, Future] = {}
        self.counts = {"requested": 0, "inflight_hits": 0, "prefetch_issued": 0, "prefetch_skipped_full": 0}
        self.w = ResidentWeights(p, self.n_layers, cfg.seed, cfg.skew, self.device)
        hd = p.hidden // p.heads
        max_len = cfg.prompt_len + cfg.decode_steps
        self.kv = [(torch.zeros(cfg.batch, p.kv_heads, max_len, hd, dtype=torch.bfloat16, device=self.device),
                    torch.zeros(cfg.batch, p.kv_heads, max_len, hd, dtype=torch.bfloat16, device=self.device))
                   for _ in range(self.n_layers)]
        self.fetcher = Fetcher(self.host, self.gpu_slab, cfg.sync, self.instr, self.transfers)

    # ---- one layer -------------------------------------------------------------------------
    def attention(self, li: int, x: torch.Tensor, pos: int) -> torch.Tensor:
        """Multi-head attention of ``x [B, T, H]`` at positions ``pos..pos+T-1`` over the KV cache."""
        p = self.p
        B, T, _ = x.shape
        hd = p.hidden // p.heads
        wq, wk, wv, wo = self.w.attn[li]
        q = (x @ wq.T).view(B, T, p.heads, hd).transpose(1, 2)
        kc, vc = self.kv[li]
        kc[:, :, pos:pos + T] = (x @ wk.T).view(B, T, p.kv_heads, hd).transpose(1, 2)
        vc[:, :, pos:pos + T] = (x @ wv.T).view(B, T, p.kv_heads, hd).transpose(1, 2)
        # Plain matmul-softmax attention, not F.scaled_dot_product_attention: on H200 its cuDNN backend
        # built a new kernel for every new KV length, 40 ms of host time in each decode step.
        k, v = kc[:, :, :pos + T], vc[:, :, :pos + T]
        if p.kv_heads != p.heads:
            k, v = (t.repeat_interleave(p.heads // p.kv_heads, dim=1) for t in (k, v))
        scores = (q @ k.transpose(-1, -2)).float() / math.sqrt(hd)
        if T > 1:
            future = torch.ones(T, pos + T, dtype=torch.bool, device=x.device).triu(pos + 1)
            scores = scores.masked_fill(future, float("-inf"))
        o = torch.softmax(scores, dim=-1).to(x.dtype) @ v
        return o.transpose(1, 2).reshape(B, T, p.hidden) @ wo.T

    def _admit(self, key: Key) -> Future:
        slot, victim = self.gpu_cache.insert(key)
        if victim is not None:
            self.inflight.pop(victim, None)
        fut = self.fetcher.submit(key, slot, self.slot_free.get(slot))
        self.inflight[key] = fut
        return fut

    def dispatch(self, li: int, experts: list[int]) -> tuple[dict[int, int], list[tuple[Key, Future]]]:
        """Look up the layer's experts in the GPU cache, fetching misses; returns slots and fetches to wait on."""
        keys = [(li, e) for e in experts]
        self.gpu_cache.pin(keys)
        waits = []
        for key in keys:
            self.counts["requested"] += 1
            if self.gpu_cache.lookup(key) is None:
                waits.append((key, self._admit(key)))
            elif key in self.inflight:  # prefetched and not yet waited for
                self.counts["inflight_hits"] += 1
                waits.append((key, self.inflight[key]))
        return {e: self.gpu_cache.peek(k) for e, k in zip(experts, keys)}, waits

    def prefetch(self, li: int, y: torch.Tensor) -> None:
        """Fetch what layer ``li``'s gate picks for the current hidden state ``y`` (best effort)."""
        logits = y.float() @ self.w.gate[li].T + self.w.bias[li]
        picked = torch.unique(logits.topk(self.p.top_k, -1).indices).tolist()
        for e in picked:
            if (li, e) not in self.gpu_cache:
                try:
                    self._admit((li, e))
                    self.counts["prefetch_issued"] += 1
                except CacheFull:
                    self.counts["prefetch_skipped_full"] += 1

    def moe(self, li: int, y: torch.Tensor) -> torch.Tensor:
        """The MoE block on ``y [N, H]``: gate, dispatch, shared experts, wait, routed experts."""
        p, instr = self.p, self.instr
        with instr.range(R_ROUTING):
            probs = torch.softmax(y.float() @ self.w.gate[li].T + self.w.bias[li], dim=-1)
            topw, topi = probs.topk(p.top_k, dim=-1)
            if p.norm_topk:
                topw = topw / topw.sum(-1, keepdim=True)
            flat = topi.flatten()
            order = torch.argsort(flat, stable=True)
            counts = torch.bincount(flat, minlength=p.experts)
            with instr.range(R_GPU_TO_CPU):
                counts_host = counts.tolist()
        experts = [e for e, c in enumerate(counts_host) if c]
        with instr.range(R_EXPERT_DISPATCH):
            slots, waits = self.dispatch(li, experts)
        if self.cfg.prefetch == "next-layer" and li + 1 < self.n_layers:
            with instr.range(R_PREFETCH):
                self.prefetch(li + 1, y)
        out = torch.zeros(y.shape, dtype=torch.float32, device=y.device)
        if li in self.w.shared:
            s = swiglu(y, self.w.shared[li])
            if li in self.w.shared_gate:
                s = s * torch.sigmoid(y @ self.w.shared_gate[li]).unsqueeze(-1)
            out += s.float()
        with instr.range(R_EXPERT_WAIT):
            for key, fut in waits:
                ev = fut.result()
                if ev is not None:
                    torch.cuda.current_stream(self.device).wait_event(ev)
                del self.inflight[key]  # the compute stream is now ordered after the copy
        tokens = (order // p.top_k).split(counts_host)
        weights = topw.flatten()[order].split(counts_host)
        for e in experts:
            with instr.range(R_EXPERT_COMPUTE):
                w = self.gpu_slab[slots[e]].view(3, p.inter, p.hidden)
                idx = tokens[e]
                out.index_add_(0, idx, (swiglu(y[idx], w) * weights[e].unsqueeze(-1).to(y.dtype)).float())
        if self.device.type == "cuda":
            done = torch.cuda.Event()
            done.record()
            for e in experts:
                self.slot_free[slots[e]] = done
        self.gpu_cache.unpin([(li, e) for e in experts])
        return out.to(y.dtype)

    def forward(self, tokens: torch.Tensor, pos: int) -> torch.Tensor:
        """Logits ``[B, vocab]`` (float32) of the last position after ``tokens [B, T]`` at ``pos``."""
        p, instr = self.p, self.instr
        x = self.w.embed[tokens]
        B, T, H = x.shape
        for li in range(self.n_layers):
            with instr.range(R_DENSE_LAYER if li < p.first_dense else R_MOE_LAYER):
                x = x + self.attention(li, rms_norm(x), pos)
                y = rms_norm(x)
                if li < p.first_dense:
                    x = x + swiglu(y, self.w.dense[li])
                else:
                    x = x + self.moe(li, y.reshape(B * T, H)).view(B, T, H)
        return (rms_norm(x[:, -1]) @ self.w.embed.T).float()

    # ---- the run -----------------------------------------------------------------------------
    def run(self, keep_logits: bool = False) -> EngineResult:
        """Prefill the prompt, then decode ``decode_steps`` tokens; returns an :class:`EngineResult`.

        Each step computes the logits and brings the argmax token to the host; the next step's input is
        that token (``decode_input="greedy"``) or the next of a seeded random stream (``"random"``).

        ``keep_logits`` keeps every position's logits (``[1 + decode_steps, B, vocab]``, CPU) for tests.
        """
        cfg, instr = self.cfg, self.instr
        gen = torch.Generator().manual_seed(cfg.seed)
        prompt = torch.randint(self.p.vocab, (cfg.batch, cfg.prompt_len), generator=gen).to(self.device)
        # Greedy decoding of random weights locks onto one token, so every step would route alike and
        # hit the cache; by default the inputs are a seeded random token stream, as replaying a text is.
        stream = torch.randint(self.p.vocab, (cfg.batch, max(1, cfg.decode_steps)), generator=gen).to(self.device)
        instr.open_log()
        instr.clock_mark()
        self.fetcher.start()
        kept: list[torch.Tensor] = []
        with torch.inference_mode():
            t0 = time.perf_counter_ns()
            with instr.range(R_PREFILL):
                logits = self.forward(prompt, 0)
                tok = logits.argmax(-1, keepdim=True)
                with instr.range(R_GPU_TO_CPU):
                    tok.cpu()
            prefill_ms = (time.perf_counter_ns() - t0) / 1e6
            if keep_logits:
                kept.append(logits.cpu())
            step_ms = []
            annotated = [annotated_step(s) if cfg.overhead_ab else True for s in range(cfg.decode_steps)]
            for s in range(cfg.decode_steps):
                instr.pause(not annotated[s])
                t0 = time.perf_counter_ns()
                with instr.range(R_STEP):
                    inp = stream[:, s:s + 1] if cfg.decode_input == "random" else tok
                    logits = self.forward(inp, cfg.prompt_len + s)
                    tok = logits.argmax(-1, keepdim=True)
                    with instr.range(R_GPU_TO_CPU):
                        tok.cpu()  # the sampled token reaches the host, as a server's would
                step_ms.append((time.perf_counter_ns() - t0) / 1e6)
                if keep_logits:
                    kept.append(logits.cpu())
            instr.pause(False)
            final_sum = float(logits.double().sum().cpu())
        self.close()
        stats = {**self.counts, "gpu_cache": self.gpu_cache.stats.as_dict(),
                 "host_cache": self.host.cache.stats.as_dict(), **self.transfers.as_dict()}
        stats["hits"], stats["misses"] = stats["gpu_cache"]["hits"], stats["gpu_cache"]["misses"]
        return EngineResult(
            config=asdict(cfg), preset=self.p.as_dict(), layers=self.n_layers, moe_layers=len(self.moe_ids),
            expert_bytes=self.p.expert_bytes, gpu_cache_experts=self.gpu_capacity,
            host_cache_experts=self.host.cache.capacity, prefill_ms=prefill_ms, step_ms=step_ms, stats=stats,
            disk_read_method=self.reader.method, disk_read_note=self.reader.note,
            host_pinning=self.host.slab.pinning, store=self.store_info,
            device_name=torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu",
            nvtx_active=self.instr.nvtx_active, nvtx_backend=self.instr.backend, final_logits_sum=final_sum,
            step_annotated=annotated if cfg.overhead_ab else None, logits=torch.stack(kept) if keep_logits else None)

    def close(self) -> None:
        """Stop the fetch thread, free pinned memory, close the I/O log. Idempotent."""
        if getattr(self, "_closed", False):
            return
        self._closed = True
        self.fetcher.close()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.host.close()
        self.instr.close()


def run_engine(cfg: EngineConfig, keep_logits: bool = False) -> EngineResult:
    """Build (or reuse) the expert store for ``cfg``, then build an engine, run it and release it."""
    _, built = build_store(cfg.store or DEFAULT_STORE, get_preset(cfg.preset), cfg.seed, cfg.layers)
    engine = MoEEngine(cfg)
    engine.store_info.update(built)
    try:
        return engine.run(keep_logits=keep_logits)
    finally:
        engine.close()
