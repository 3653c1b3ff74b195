"""RowWindows: a window of time holds every row that overlaps it, in row order,
the same rows from memory and from the file; against brute force on random
start-ordered tables with long rows, tiny blocks and many row groups."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nsysparse import row_windows as RW
from nsysparse.parquet import write_parquet


def _table(rng: np.random.Generator, n: int) -> pd.DataFrame:
    start = np.sort(rng.integers(0, 10_000, n))
    dur = rng.integers(0, 40, n)
    long = rng.random(n) < 0.05
    dur[long] = rng.integers(500, 5_000, long.sum())  # calls that block for long
    names = np.array(["poll", "read", "cudaLaunchKernel", None], dtype=object)
    return pd.DataFrame({
        "pid": rng.integers(1, 3, n), "tid": rng.integers(10, 13, n),
        "start_ns": start, "end_ns": start + dur,
        "name": pd.Categorical(names[rng.integers(0, 4, n)]),
    })


@pytest.fixture
def tiny_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RW, "BLOCK", 4)
    monkeypatch.setattr(RW, "REACH", 2)
    monkeypatch.setattr(RW, "INDEX_ROWS", 16)


@pytest.mark.parametrize("seed", range(6))
def test_windows_hold_every_overlapping_row_in_order(tmp_path, tiny_blocks, seed: int) -> None:
    rng = np.random.default_rng(seed)
    df = _table(rng, int(rng.integers(1, 400)))
    path = tmp_path / "t.parquet"
    write_parquet(df, path, {}, chunk_rows=int(rng.integers(3, 50)))
    mem, disk = RW.RowWindows(df, ("name",)), RW.RowWindows(df, ("name",), path)
    assert len(mem.long["row"]) > 0 or len(df) < 40
    s, e = df["start_ns"].to_numpy(), df["end_ns"].to_numpy()
    codes = np.asarray(df["name"].cat.codes)
    # windows as a sweep takes them: forward in time, then from the start again
    edges = np.sort(rng.integers(-50, 11_000, 30))
    for a, b in [*zip(edges[:-1], edges[1:]), (int(edges[0]), int(edges[-1]))]:
        want = np.flatnonzero((s < b) & (e > a))
        wm, wd = mem.window(a, b), disk.window(a, b)
        for w in (wm, wd):
            assert np.all(np.diff(w["row"]) > 0)  # row order, no row twice
            assert set(want) <= set(w["row"].tolist())
            np.testing.assert_array_equal(w["s"], s[w["row"]])
            np.testing.assert_array_equal(w["e"], e[w["row"]])
            np.testing.assert_array_equal(w["tid"], df["tid"].to_numpy()[w["row"]])
            np.testing.assert_array_equal(w["name"], codes[w["row"]])
        for k in wm:
            np.testing.assert_array_equal(wm[k], wd[k])
    # every row once, in order, from memory and from the file alike (in stretches of their own)
    for cols in [("s", "e", "pid", "tid"), ("e", "tid")]:
        whole = [{k: np.concatenate([c[k] for c in rows.chunks(cols)]) for k in (*cols, "row", "name")}
                 for rows in (mem, disk)]
        np.testing.assert_array_equal(whole[0]["row"], np.arange(len(df)))
        for k in whole[0]:
            np.testing.assert_array_equal(whole[0][k], whole[1][k])
        np.testing.assert_array_equal(whole[1]["e"], e)
        np.testing.assert_array_equal(whole[1]["name"], codes)


def test_a_window_reads_a_few_blocks_not_the_table(tiny_blocks) -> None:
    """A poll that blocks across the whole table stands aside: a late window
    reads the rows near it, not every row since the poll began."""
    n = 400
    start = np.arange(n, dtype=np.int64) * 10
    end = start + 5
    end[3] = start[-1] + 100  # one call blocks to the end
    df = pd.DataFrame({"pid": 1, "tid": 1, "start_ns": start, "end_ns": end,
                       "name": pd.Categorical(["read"] * n)})
    rw = RW.RowWindows(df, ("name",))
    assert rw.long["row"].tolist() == [3]
    w = rw.window(3000, 3050)
    assert 3 in w["row"].tolist() and len(w["row"]) <= 5 * 4 + 1
    assert set(range(300, 305)) <= set(w["row"].tolist())
