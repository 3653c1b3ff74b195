"""CPU tests of the runners: the tiny preset end to end, caches, the store, and the nsys command line."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from runners import profile as prof
from runners.engine.cache import CacheFull, ExpertCache, parse_capacity
from runners.engine.presets import PRESETS

torch = pytest.importorskip("torch")

from runners.engine.model import EngineConfig, MoEEngine, run_engine  # noqa: E402  (needs torch)
from runners.engine.store import HEADER_BYTES, DiskReader, ExpertStore, expert_weights_bits  # noqa: E402


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("store")


def tiny(store_dir: Path, **kw) -> EngineConfig:
    base = dict(preset="tiny", device="cpu", store=str(store_dir), decode_steps=4, prompt_len=4)
    return EngineConfig(**{**base, **kw})


# ---- presets and the store --------------------------------------------------------------------
def test_expert_bytes_match_the_published_shapes() -> None:
    assert PRESETS["deepseek"].expert_bytes == 3 * 2048 * 1408 * 2 == 17_301_504
    assert PRESETS["qwen"].expert_bytes == 17_301_504
    assert PRESETS["mixtral"].expert_bytes == 3 * 4096 * 14336 * 2
    assert PRESETS["tiny"].expert_bytes == 3 * 64 * 128 * 2
    # 26 MoE layers x 64 experts for the full DeepSeek-V2-Lite
    assert PRESETS["deepseek"].store_bytes() == 26 * 64 * 17_301_504
    assert PRESETS["deepseek"].store_bytes(5) == 4 * 64 * 17_301_504


def test_store_files_hold_the_expert_and_are_reused_and_verified(tmp_path: Path) -> None:
    p = PRESETS["tiny"]
    store = ExpertStore(tmp_path, p, seed=3)
    keys = [(1, e) for e in range(p.experts)]
    first = store.ensure(keys)
    assert (first.generated, first.reused) == (p.experts, 0)
    assert first.bytes_written == p.experts * (HEADER_BYTES + p.expert_bytes)  # 49,152 is page-aligned
    for k in keys:
        assert store.path(k).stat().st_size == HEADER_BYTES + p.expert_bytes
        assert store.verify(k, full=True)
    again = store.ensure(keys)
    assert (again.generated, again.reused) == (0, p.experts)
    # a flipped payload byte fails the checksum and is rewritten
    path = store.path((1, 2))
    raw = bytearray(path.read_bytes())
    raw[HEADER_BYTES + 10] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert store.verify((1, 2)) and not store.verify((1, 2), full=True)
    assert store.ensure(keys, full_verify=True).generated == 1
    # what is read back is what the seed generates
    buf = torch.empty(store.padded_bytes, dtype=torch.uint8).numpy()
    reader = DiskReader(store)
    assert reader.read_into((1, 2), buf) == p.expert_bytes
    assert (buf.view("uint16") == expert_weights_bits(p, 3, 1, 2)).all()
    assert reader.method in ("o_direct", "buffered_fadvise_dontneed")


# ---- caches ------------------------------------------------------------------------------------
def test_lru_eviction_honours_capacity_and_recency() -> None:
    c = ExpertCache(3, "lru")
    for k in "abc":
        c.insert(k)
    assert c.lookup("a") is not None  # a becomes most recent
    slot_b = c.peek("b")
    slot, victim = c.insert("d")
    assert (victim, slot) == ("b", slot_b)
    assert len(c) == 3 and sorted(c.keys()) == ["a", "c", "d"]
    for k in "efgh":
        c.insert(k)
        assert len(c) <= 3
    assert c.stats.evictions == 5 and c.stats.inserts == 8
    assert sorted(c.peek(k) for k in c.keys()) == [0, 1, 2]


def test_fifo_ignores_recency_and_pins_protect() -> None:
    c = ExpertCache(2, "fifo")
    c.insert("a"), c.insert("b")
    c.lookup("a")
    assert c.insert("c")[1] == "a"
    c.pin(["b", "c"])
    with pytest.raises(CacheFull):
        c.insert("d")
    c.unpin(["b"])
    assert c.insert("d")[1] == "b"
    with pytest.raises(ValueError):
        ExpertCache(2, "random")


@pytest.mark.parametrize("text,experts", [("179", 179), ("70%", 179), ("all", 256), ("1GB", 57),
                                          ("1GiB", 62), ("17301504B", 1), ("0", 0)])
def test_capacity_in_experts_bytes_or_share(text: str, experts: int) -> None:
    assert parse_capacity(text, 17_301_504, 256) == experts


def test_bad_capacity_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_capacity("lots", 1, 10)


# ---- the engine end to end -----------------------------------------------------------------------
def test_tiny_end_to_end_hits_plus_misses_equal_requests(store_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "io.jsonl"
    r = run_engine(tiny(store_dir, gpu_cache="9", prefetch="next-layer", io_log=str(log)), keep_logits=True)
    s = r.stats
    assert len(r.step_ms) == 4 and r.logits.shape == (5, 1, PRESETS["tiny"].vocab)
    assert torch.isfinite(r.logits).all()
    assert s["requested"] > 0 and s["hits"] + s["misses"] == s["requested"]
    assert s["gpu_cache"]["inserts"] == s["misses"] + s["prefetch_issued"]
    assert s["h2d_copies"] == s["disk_reads"] == s["gpu_cache"]["inserts"]  # disk mode, no host cache
    assert s["h2d_bytes"] == s["h2d_copies"] * PRESETS["tiny"].expert_bytes
    assert s["gpu_cache"]["inserts"] - s["gpu_cache"]["evictions"] <= 9
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert lines[0]["event"] == "clock_mark" and isinstance(lines[0]["t_ns"], int)
    names = {x.get("name") for x in lines}
    assert {"step", "moe_layer", "routing", "expert_dispatch", "expert_wait_barrier", "disk_to_cpu", "cpu_to_gpu",
            "gpu_to_cpu", "expert_compute", "prefetch", "fetch_loop"} <= names
    assert sum(x["name"] == "step" for x in lines[1:]) == 4
    assert all(x["payload"] == PRESETS["tiny"].expert_bytes for x in lines if x.get("name") == "disk_to_cpu")


def test_disk_and_host_modes_give_identical_logits(store_dir: Path) -> None:
    disk = run_engine(tiny(store_dir, mode="disk", gpu_cache="8", sync="stream"), keep_logits=True)
    host = run_engine(tiny(store_dir, mode="host", gpu_cache="all", policy="fifo"), keep_logits=True)
    assert torch.equal(disk.logits, host.logits)
    assert host.stats["disk_reads"] == 0 and disk.stats["disk_reads"] > 0
    assert disk.final_logits_sum == host.final_logits_sum


def test_host_cache_serves_repeat_misses(store_dir: Path) -> None:
    r = run_engine(tiny(store_dir, mode="disk", gpu_cache="8", host_cache="all", decode_steps=6))
    s = r.stats
    assert s["disk_reads"] == s["host_cache"]["misses"] <= 16
    assert s["host_cache"]["hits"] + s["host_cache"]["misses"] == s["h2d_copies"]


def test_gpu_cache_smaller_than_a_layer_is_refused(store_dir: Path) -> None:
    with pytest.raises(ValueError, match="a layer of this run can need"):
        MoEEngine(tiny(store_dir, gpu_cache="3"))


def test_overhead_ab_alternates_annotated_steps(store_dir: Path) -> None:
    r = run_engine(tiny(store_dir, overhead_ab=True, decode_steps=8))
    assert r.step_annotated == [True, False, False, True] * 2
    ov = prof.overhead_summary(r.step_ms, r.step_annotated, under_nsys=False, nvtx_active=r.nvtx_active)
    assert ov["annotated"]["steps"] == ov["unannotated"]["steps"] == 2 and not ov["nvtx_active"]


def test_no_nsys_run_leaves_a_run_folder(store_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    rc = prof.main(["tiny", "--device", "cpu", "--no-nsys", "--store", str(store_dir), "--decode-steps", "4",
                    "--out", str(out)])
    assert rc == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["preset"] == "tiny" and m["options"]["decode_steps"] == 4 and m["gpu"] is None
    assert m["disk_read"]["method"] in ("o_direct", "buffered_fadvise_dontneed")
    assert m["engine"]["stats"]["hits"] + m["engine"]["stats"]["misses"] == m["engine"]["stats"]["requested"]
    assert {"engine.json", "overhead.json", "manifest.json"} <= set(m["files"])


def test_annotations_are_a_shared_noop_when_off() -> None:
    from runners.engine.instrument import Instrument

    off = Instrument(nvtx_on=False)
    assert off.range("step") is off.range("routing", 5)  # one shared nullcontext, nothing built
    assert not off.enabled and not off.nvtx_active
