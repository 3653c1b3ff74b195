"""Drop-in, vectorised versions of the two report hotspots bench.py found.

Not part of the package: the owners of ``nsysparse/layers.py`` and
``nsysparse/links.py`` may copy them in. ``apply()`` patches them into a
running ``nsysparse`` so that ``bench.py --suggested-fixes`` can measure what
they change, and ``python benchmarks/suggested_fixes.py TRACE...`` checks that
every table and the summary come out identical with and without them.

1. ``layers.layer_windows`` merges every layer range with every step of its
   thread and then filters: O(layers x steps) rows. At 300x offload_disk that
   is 4,500 x 1,500 = 6.75 M rows, +1.1 GB and 1.4 s; at 1000x 75 M rows
   (about 12 GB). Steps are the outermost step ranges of their thread, so
   they do not overlap there: one ``searchsorted`` per thread finds the one
   step that can hold a layer. O((layers + steps) log steps).
2. ``links.step_links`` calls ``intervals.total`` once per (step, link) group
   through ``groupby.apply``: 20,000 Python calls at 1000x. The busy time of
   every group comes out of one sort and a per-group running maximum of ends.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

LAYER_WINDOW_COLUMNS = ["step", "layer", "pid", "tid", "start_ns", "end_ns", "dur_ns"]


def layer_windows(ranges: pd.DataFrame, layer_name: str, steps: pd.DataFrame) -> pd.DataFrame:
    """As ``nsysparse.layers.layer_windows``: the outermost layer ranges on each
    step's thread that lie inside the step, numbered from 0 in time order within
    their step. Steps of one thread do not overlap (outermost ranges), so the
    step that holds a layer is the last one starting at or before it."""
    lay = ranges[ranges["text"] == layer_name]
    if lay.empty or steps.empty:
        return pd.DataFrame({c: pd.Series(dtype="int64") for c in LAYER_WINDOW_COLUMNS})
    lay = lay.sort_values(["pid", "tid", "start_ns", "end_ns"], ascending=[True, True, True, False])
    prev_end = lay.groupby(["pid", "tid"], sort=False)["end_ns"].transform(lambda e: e.cummax().shift(1))
    lay = lay[~(lay["start_ns"] < prev_end.fillna(np.iinfo(np.int64).min))]
    step_rows = steps.groupby(["pid", "tid"], sort=False).indices
    parts = []
    for key, rows in lay.groupby(["pid", "tid"], sort=False).indices.items():  # one pass per thread
        if key not in step_rows:
            continue
        sw = steps.iloc[step_rows[key]].sort_values("start_ns")
        lt = lay.iloc[rows]
        s_start, s_end, s_step = (sw[c].to_numpy() for c in ("start_ns", "end_ns", "step"))
        i = np.searchsorted(s_start, lt["start_ns"].to_numpy(), side="right") - 1
        ic = np.clip(i, 0, None)
        inside = (i >= 0) & (lt["end_ns"].to_numpy() <= s_end[ic])
        parts.append(lt[inside].assign(step=s_step[ic[inside]]))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="int64") for c in LAYER_WINDOW_COLUMNS})
    m = pd.concat(parts).sort_values(["step", "start_ns"], ignore_index=True)
    m["layer"] = m.groupby("step").cumcount()
    return m[LAYER_WINDOW_COLUMNS].reset_index(drop=True)


def grouped_total(group: np.ndarray, starts: np.ndarray, ends: np.ndarray, n_groups: int) -> np.ndarray:
    """For group codes ``0..n_groups-1``, the length of the union of each group's intervals."""
    out = np.zeros(n_groups, dtype=np.int64)
    if group.size == 0:
        return out
    order = np.lexsort((starts, group))
    g, s, e = group[order], starts[order].astype(np.int64), ends[order].astype(np.int64)
    run_end = pd.Series(e).groupby(g).cummax().to_numpy()
    first = np.r_[True, g[1:] != g[:-1]]
    prev = np.where(first, np.iinfo(np.int64).min, np.r_[0, run_end[:-1]])
    gained = np.clip(e - np.maximum(s, prev), 0, None)
    np.add.at(out, g, gained)
    return out


def step_links(copies: pd.DataFrame, step_of: np.ndarray, links: pd.DataFrame) -> pd.DataFrame:
    """As ``nsysparse.links.step_links``, with the per-group union vectorised."""
    c = copies.assign(step=step_of)
    c = c[c["step"] >= 0]
    if c.empty:
        return pd.DataFrame({"step": pd.Series(dtype="int64"), "link": pd.Series(dtype=object),
                             "bytes": pd.Series(dtype="int64"), "busy_ns": pd.Series(dtype="int64"),
                             "floor_ns": pd.Series(dtype="float64")})
    g = c.groupby(["step", "link"], sort=True)
    out = g.agg(bytes=("bytes", "sum")).reset_index()
    out["busy_ns"] = grouped_total(g.ngroup().to_numpy(), c["start_ns"].to_numpy(), c["end_ns"].to_numpy(), len(out))
    eff = links.set_index("link")["gbps_effective"]
    out["floor_ns"] = out["bytes"] / out["link"].map(eff).to_numpy()
    out["bytes"] = out["bytes"].astype("int64")
    return out


def apply() -> None:
    """Patch both into the imported ``nsysparse`` (report.py imports them by name)."""
    import nsysparse.layers
    import nsysparse.links
    import nsysparse.report

    nsysparse.layers.layer_windows = nsysparse.report.layer_windows = layer_windows
    nsysparse.links.step_links = nsysparse.report.step_links = step_links


def check(paths: list[str]) -> int:
    """Every table and the summary, with and without the fixes: 0 when all are identical."""
    import nsysparse.report as rep
    from nsysparse import open_trace

    before = (rep.layer_windows, rep.step_links)
    bad = 0
    for p in paths:
        rep.layer_windows, rep.step_links = before
        a = rep.build_report(open_trace(p), rep.Settings())
        apply()
        b = rep.build_report(open_trace(p), rep.Settings())
        for name in a.tables:
            try:
                pd.testing.assert_frame_equal(a.tables[name], b.tables[name], check_exact=True)
            except AssertionError as exc:
                bad += 1
                print(f"{p}: {name}: {str(exc)[:200]}")
        if {k: v for k, v in a.summary.items() if k != "input"} != {k: v for k, v in b.summary.items() if k != "input"}:
            bad += 1
            print(f"{p}: summary differs")
        print(f"{p}: {'identical' if not bad else 'DIFFERENT'}")
    return 1 if bad else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--run"]:  # bench.py: `python suggested_fixes.py --run report TRACE ...`
        apply()
        from nsysparse.cli import main

        sys.exit(main(sys.argv[2:]))
    sys.exit(check(sys.argv[1:]))
