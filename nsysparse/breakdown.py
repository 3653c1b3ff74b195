"""Where the step goes, exactly: each step split into exclusive causes that sum
to its duration.

At each instant of a step ``[start, end)``, on the step's thread, the first rule
that holds names the instant (this order is the contract, docs/METRICS.md):

1. ``gpu_compute``: a kernel or CUDA-graph run of the step's process runs on any GPU.
2. The step's thread is *busy* (not inside a wait range, a synchronising call or
   a copy call): copies or disk reads running meanwhile are hidden behind host
   work and cost the step nothing, so the time is the host's:
   ``launch`` inside any other CUDA API call, else ``os_call`` inside an OS
   runtime call (``OSRT_API``, when traced), else ``host_cpu`` (outside any
   traced call: Python, CPU work).
3. Otherwise the thread is *blocked*, and the time goes to what it waits on:
   ``copy_h2d_pinned``, ``copy_h2d_pageable``, ``copy_d2h``, ``copy_d2d``,
   ``copy_p2p``, ``memset`` when such an operation of the process is in flight
   (in that order); else ``disk_read`` when a disk read (the ``--io-range``
   ranges) of the process is in progress on any thread; else ``copy_call``
   (inside a memcpy/memset call with nothing in flight: staging a pageable
   copy), ``sync_idle`` (inside a synchronising call) or ``host_wait_other``
   (inside a wait range), in that order.

"Synchronising call" is METRICS.md's list (``schema.SYNC_CALLS``); a copy call
is any ``cudaMemcpy*``/``cudaMemset*``/``cuMemcpy*``/``cuMemset*`` call, async
or not. Integer nanoseconds throughout.

The sweep: per step thread, the thread's steps are cut at step starts into
slices of time of about SLICE_BOUNDS interval boundaries. In each slice every
kind of interval is read from a contiguous run of its rows (the tables are in
start order; a running maximum of ends per block of BLOCK rows says where the
rows that reach into the slice begin; the API and OS calls come through
:class:`nsysparse.row_windows.RowWindows`, which sets long calls aside and
reads a spilled report's calls back from their files), merged into a sorted disjoint set cut
to the slice; the sets' boundaries cut the steps into elementary segments, on
which each set is either on or off. A running sum of +2**j where set j starts
and -2**j where it ends gives each segment its state (which sets are on, one
bit each), the rules applied once to all 2**13 states give the category of
each state, and ``bincount`` sums the segment lengths per (step, category).
Memory is one slice's, whatever the trace's length; the loops run over step
threads and slices, never rows. :func:`breakdown_tables` sums the slices as
they come, so the segments of a long trace never exist at once.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import pandas as pd

from . import intervals as iv
from . import schema as S
from .row_windows import RowWindows, api_call_rows, os_call_rows

CATEGORIES: tuple[str, ...] = (
    "gpu_compute", "launch", "os_call", "host_cpu",
    "copy_h2d_pinned", "copy_h2d_pageable", "copy_d2h", "copy_d2d", "copy_p2p", "memset",
    "disk_read", "copy_call", "sync_idle", "host_wait_other",
)
# the copies table's class of each copy category (links.copy_category)
COPY_CLASSES = {"copy_h2d_pinned": "H2D pinned", "copy_h2d_pageable": "H2D pageable", "copy_d2h": "D2H",
                "copy_d2d": "D2D", "copy_p2p": "P2P"}
BREAKDOWN_COLUMNS = ["step", "category", "ns", "share"]

I64 = npt.NDArray[np.int64]
SEGMENT_COLUMNS = ("step", "start_ns", "end_ns", "category", "pid", "tid")
Segments = dict[str, np.ndarray]  # one slice's segments: SEGMENT_COLUMNS, an array each


CALL_KINDS = ("copy", "sync", "other")


def call_kinds(api_calls: pd.DataFrame) -> npt.NDArray[np.int8]:
    """The index into CALL_KINDS of each API call (see :func:`classify_calls`),
    classified per distinct base name: no string per row."""
    base = pd.Categorical(api_calls["base_name"])  # a view of a categorical column
    return _kinds_of_codes(np.asarray(base.codes), _kind_per_name(base.categories))


def _kind_per_name(names: pd.Index) -> npt.NDArray[np.int8]:
    """The index into CALL_KINDS of each base name in ``names``."""
    names = pd.Series(names.to_numpy(dtype=object), dtype=object)
    is_copy = names.str.startswith(S.COPY_CALL_PREFIXES).fillna(False).to_numpy(dtype=bool)
    return np.where(is_copy, 0, np.where(names.isin(S.SYNC_CALLS), 1, 2)).astype(np.int8)


def _kinds_of_codes(codes: np.ndarray, per_name: npt.NDArray[np.int8]) -> npt.NDArray[np.int8]:
    """Per call, the kind of its base name's code (``other`` for a null name)."""
    if per_name.size == 0:
        return np.full(codes.size, 2, dtype=np.int8)
    return np.where(codes >= 0, per_name[np.maximum(codes, 0)], 2).astype(np.int8)


def classify_calls(api_calls: pd.DataFrame) -> pd.DataFrame:
    """``api_calls`` (pid, tid, start_ns, end_ns, base_name) with ``kind``: ``copy``
    (any memcpy/memset call, async or blocking: a blocking ``cudaMemcpy`` is a
    copy call first, so its time with no copy in flight is ``copy_call``),
    ``sync`` (any other synchronising call) or ``other``. Classified per
    distinct base name, not per row."""
    out = api_calls[["pid", "tid", "start_ns", "end_ns"]].copy()
    out["kind"] = pd.Categorical.from_codes(call_kinds(api_calls), categories=pd.Index(CALL_KINDS, dtype=object))
    return out


def _cut(s: I64, e: I64, lo: int, hi: int) -> tuple[I64, I64]:
    """The union of the intervals ``(s, e)`` cut to ``[lo, hi)``."""
    if s.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return iv.union(*iv.clip(s, e, lo, hi))


def segments(
    steps: pd.DataFrame,
    compute: pd.DataFrame,
    api_calls: pd.DataFrame | RowWindows,
    waits: pd.DataFrame,
    copies: pd.DataFrame,
    memsets: pd.DataFrame,
    disk: pd.DataFrame,
    os_calls: pd.DataFrame | RowWindows,
) -> pd.DataFrame:
    """Every step cut into elementary segments, each with its category:
    ``step``, ``start_ns``, ``end_ns``, ``category`` (an index into CATEGORIES),
    ``pid``, ``tid``. The segments of a step tile it exactly. Inputs as for
    :func:`step_breakdown`. A long trace has millions of them: the report sums
    them slice by slice instead (:func:`breakdown_tables`)."""
    return _as_frame([part for part, _ in sweep(steps, compute, api_calls, waits, copies, memsets, disk, os_calls)])


def _as_frame(parts: list[Segments]) -> pd.DataFrame:
    """Slices' segments as one frame (SEGMENT_COLUMNS, int64)."""
    if not parts:
        return _no_segments()
    return pd.DataFrame({c: np.concatenate([p[c] for p in parts]).astype(np.int64) for c in SEGMENT_COLUMNS})


def _no_segments() -> pd.DataFrame:
    """The segments frame with no segment (its columns, each int64)."""
    return pd.DataFrame({c: pd.Series(dtype="int64") for c in SEGMENT_COLUMNS})


def sweep(
    steps: pd.DataFrame,
    compute: pd.DataFrame,
    api_calls: pd.DataFrame | RowWindows,
    waits: pd.DataFrame,
    copies: pd.DataFrame,
    memsets: pd.DataFrame,
    disk: pd.DataFrame,
    os_calls: pd.DataFrame | RowWindows,
) -> Iterator[tuple[Segments, "_Window"]]:
    """The segments of :func:`segments`, one set of arrays per slice of a step
    thread's steps (about SLICE_BOUNDS set boundaries each), in thread then time
    order, each with the window of OS calls the slice read (which names its
    OS-call time: :func:`breakdown_tables`)."""
    # every source once, in start order, with the columns that pick a thread's rows:
    # a slice of time then reads a contiguous run of rows of each (views, no copies);
    # the calls through RowWindows, which may read them back from their file
    api, osr = api_call_rows(api_calls), os_call_rows(os_calls)
    sources = [_Source(compute, pid=True), _Source(waits, pid=True, tid=True),
               _Rows(api, "base_name", _kind_per_name(api.categories.get("base_name", pd.Index([], dtype=object)))),
               _Rows(osr, "name"), _Source(copies, pid=True, extra=_class_codes(copies)),
               _Source(memsets, pid=True), _Source(disk, pid=True)]
    for (pid, tid), st in steps.groupby(["pid", "tid"], sort=True):  # one pass per step thread
        st = st.sort_values("start_ns")
        lo, hi = int(st["start_ns"].min()), int(st["end_ns"].max())
        if hi <= lo:
            continue
        ss, se = st["start_ns"].to_numpy(np.int64), st["end_ns"].to_numpy(np.int64)
        rows = sum(src.rows_in(lo, hi) for src in sources)
        for a, b in _slices(ss, hi, 2 * rows):
            gpu, wait, call, osc, cps, mset, dread = (src.window(a, b) for src in sources)
            local = [
                gpu.cut(a, b, pid),                                 # 0 gpu
                wait.cut(a, b, pid, tid),                           # 1 wait
                *(call.cut(a, b, pid, tid, i) for i in (1, 0, 2)),  # 2 sync call, 3 copy call, 4 other CUDA call
                osc.cut(a, b, pid, tid),                            # 5 OS call
                *(cps.cut(a, b, pid, None, i) for i in range(len(COPY_CLASSES))),  # 6-10 copies by class
                mset.cut(a, b, pid),                                # 11 memset
                dread.cut(a, b, pid),                               # 12 disk read
            ]
            yield _slice_segments(ss, se, st["step"].to_numpy(), local, a, b, pid, tid), osc
    api.forget()  # the row groups a file-backed sweep read
    osr.forget()


BLOCK = 4096  # rows per block of a source's running maximum of ends


class _Source:
    """One kind of interval (start-ordered rows: ``start_ns``, ``end_ns``, and
    ``pid``/``tid``/an int8 ``extra`` code to pick rows by), with the running
    maximum of its ends per block of BLOCK rows: the rows that can reach into a
    window ``[a, b)`` are then one contiguous run, found by two searches."""

    def __init__(self, df: pd.DataFrame, pid: bool = False, tid: bool = False,
                 extra: npt.NDArray[np.int8] | None = None) -> None:
        s = df["start_ns"].to_numpy(np.int64)
        cols = {"s": s, "e": df["end_ns"].to_numpy(np.int64)}
        if pid:
            cols["pid"] = df["pid"].to_numpy(np.int64)
        if tid:
            cols["tid"] = df["tid"].to_numpy(np.int64)
        if extra is not None:
            cols["extra"] = extra
        if not iv.ascending(s):
            order = np.argsort(s, kind="stable")
            cols = {k: v[order] for k, v in cols.items()}
        self.cols = cols
        e = cols["e"]
        self.block_max = (np.maximum.accumulate(np.maximum.reduceat(e, np.arange(0, e.size, BLOCK)))
                          if e.size else np.zeros(0, np.int64))

    def run(self, a: int, b: int) -> tuple[int, int]:
        """Rows ``[i0, i1)`` holding every row that overlaps ``[a, b)`` (and a few that do not)."""
        s = self.cols["s"]
        if s.size == 0:
            return 0, 0
        i0 = int(np.searchsorted(self.block_max, a, side="right")) * BLOCK  # blocks before end by a
        return min(i0, s.size), int(np.searchsorted(s, b, side="left"))

    def rows_in(self, a: int, b: int) -> int:
        i0, i1 = self.run(a, b)
        return max(0, i1 - i0)

    def window(self, a: int, b: int) -> "_Window":
        i0, i1 = self.run(a, b)
        return _Window({k: v[i0:max(i0, i1)] for k, v in self.cols.items()})


class _Window:
    """A source's rows near one slice of time (views into its arrays)."""

    def __init__(self, cols: dict[str, np.ndarray]) -> None:
        self.cols = cols
        self._mine: dict[tuple[int, int | None], npt.NDArray[np.bool_]] = {}

    def cut(self, a: int, b: int, pid: int, tid: int | None = None, extra: int | None = None) -> tuple[I64, I64]:
        """The union of the rows of process ``pid`` (and thread ``tid``, and code
        ``extra``) cut to ``[a, b)``."""
        c = self.cols
        if (pid, tid) not in self._mine:  # a source cut several times (per call kind) masks its thread once
            thread = c["pid"] == pid
            self._mine[pid, tid] = thread if tid is None else thread & (c["tid"] == tid)
        mine = self._mine[pid, tid]
        if extra is not None:
            mine = mine & (c["extra"] == extra)
        return _cut(c["s"][mine], c["e"][mine], a, b)


class _Rows:
    """A :class:`RowWindows` as a source of the sweep: its windows as
    :class:`_Window` (``extra``: the call kind of each row's ``code`` column
    through ``kinds``, when given; ``code``: the column's codes)."""

    def __init__(self, rows: RowWindows, code: str, kinds: npt.NDArray[np.int8] | None = None) -> None:
        self.rows, self.code, self.kinds = rows, code if code in rows.codes else None, kinds

    def rows_in(self, a: int, b: int) -> int:
        return self.rows.rows_in(a, b)

    def window(self, a: int, b: int) -> "_Window":
        w = self.rows.window(a, b, (self.code,) if self.code else ())
        # without the column (a frame that lacks it): code -1, a null name
        code = w[self.code] if self.code else np.full(w["s"].size, -1, np.int32)
        cols = {"s": w["s"], "e": w["e"], "pid": w["pid"], "tid": w["tid"], "code": code}
        if self.kinds is not None:
            cols["extra"] = _kinds_of_codes(code, self.kinds)
        return _Window(cols)


def _class_codes(copies: pd.DataFrame) -> npt.NDArray[np.int8]:
    """Each copy's index into COPY_CLASSES (-1 for any other class)."""
    cls = pd.Series(_copy_class(copies), dtype=object)
    return pd.Index(list(COPY_CLASSES.values()), dtype=object).get_indexer(cls).astype(np.int8)


SLICE_BOUNDS = 1 << 16  # set boundaries per slice of a thread's steps: its working arrays (~0.5 MB each) then come
# from the heap, reused slice after slice (trace.reuse_freed_memory); 1 << 20 (8 MB each, mapped and faulted
# in afresh per slice) spent 7.6 s of system time on 4.3 s of work at 2 GB


def _slices(ss: I64, hi: int, n_bounds: int) -> list[tuple[int, int]]:
    """The thread's span ``[ss[0], hi)`` cut at step starts into slices of about
    SLICE_BOUNDS set boundaries each (the sets' boundaries spread over the steps
    roughly evenly); every instant lies in exactly one slice, and a cut is a step
    start, which is a segment boundary anyway, so the segments are the same."""
    k = max(1, min(len(ss), -(-n_bounds // SLICE_BOUNDS)))
    cuts = [int(ss[i]) for i in np.linspace(0, len(ss), k + 1).astype(np.int64)[1:-1]]
    edges = [int(ss[0]), *sorted(set(c for c in cuts if ss[0] < c < hi)), hi]
    return list(zip(edges[:-1], edges[1:]))


def _slice_segments(ss: I64, se: I64, step: np.ndarray, sets: list[tuple[I64, I64]], a: int, b: int,
                    pid: int, tid: int) -> Segments:
    """The elementary segments of the thread's steps inside ``[a, b)`` (``sets``:
    each kind of interval cut to ``[a, b)``, normalised), categorised;
    neighbours of one category merged (sums per step unchanged), but for OS-call
    time, whose segments :func:`_os_names_at` attributes to the call covering each start."""
    bounds, state, k = _bounds_and_states(ss, se, sets, a, b)
    seg_s, seg_e, k, state = bounds[:-1], bounds[1:], k[:-1], state[:-1]
    # the step holding each segment (steps of one thread do not overlap)
    kc = np.clip(k, 0, None)
    inside = (k >= 0) & (seg_s < se[kc])
    seg_s, seg_e, k = seg_s[inside], seg_e[inside], kc[inside]
    cat = _CATEGORY_OF_STATE[state[inside]]
    del sets, state
    same = np.r_[False, (k[1:] == k[:-1]) & (cat[1:] == cat[:-1]) & (seg_s[1:] == seg_e[:-1])
                 & (cat[1:] != CATEGORIES.index("os_call"))]
    first = np.flatnonzero(~same)
    last = np.r_[first[1:], seg_s.size] - 1
    return {"step": step[k[first]], "start_ns": seg_s[first], "end_ns": seg_e[last], "category": cat[first],
            "pid": np.full(first.size, pid, np.int64), "tid": np.full(first.size, tid, np.int64)}


def _rule(on: list[npt.NDArray[np.bool_]]) -> npt.NDArray[np.int64]:
    """The category (index into CATEGORIES) of each instant from which of the 13
    interval kinds of :func:`sweep` are on at it: the module's rules, in order."""
    gpu, wait, sync, ccall, other, osc, pinned, pageable, d2h, d2d, p2p, mset, dread = on
    blocked = wait | sync | ccall
    return np.select(
        [gpu, ~blocked & other, ~blocked & osc, ~blocked,
         pinned, pageable, d2h, d2d, p2p, mset, dread, ccall, sync],
        list(range(13)), default=13,
    ).astype(np.int64)


KINDS = 13  # the interval kinds of the sweep, one bit each in a state
# the category of every state (2**13 of them): the rules applied once, looked up per segment
_CATEGORY_OF_STATE = _rule([(np.arange(1 << KINDS) >> j & 1).astype(bool) for j in range(KINDS)])


def _bounds_and_states(ss: I64, se: I64, sets: list[tuple[I64, I64]], a: int, b: int) -> tuple[I64, I64, I64]:
    """The slice ``[a, b)`` cut at every boundary of the sets and of the steps
    (``ss``/``se``, sorted): per distinct boundary ``bounds[i]``, the ``state`` of
    ``[bounds[i], bounds[i+1])`` (a bit per set that is on: set j adds 2**j where
    one of its intervals starts and takes it back where it ends, the sets being
    normalised, and a running sum adds them up) and ``k``, the last step started
    by then (-1 for none). One stable sort of all the boundaries, which come as
    a few dozen sorted runs, gives all three: no search per boundary."""
    inner_s = ss[(ss >= a) & (ss <= b)]
    inner_e = se[(se >= a) & (se <= b)]
    points = np.concatenate([inner_s, inner_e, np.array([a, b], np.int64), *(x for s_, e_ in sets for x in (s_, e_))])
    fixed = inner_s.size + inner_e.size + 2  # the step and slice bounds: no weight
    weight = np.concatenate([np.zeros(fixed, np.int64),
                             *(np.repeat(np.array([1 << j, -(1 << j)], np.int64), [s_.size, e_.size])
                               for j, (s_, e_) in enumerate(sets))])
    starts = np.zeros(points.size, np.int64)
    starts[:inner_s.size] = 1
    order = np.argsort(points, kind="stable")
    points = points[order]
    last = np.r_[points[1:] != points[:-1], True]  # the last of each run of equal points
    state = np.cumsum(weight[order])[last]
    k = np.cumsum(starts[order])[last] + (int(np.searchsorted(ss, a, side="left")) - 1)
    return points[last], state, k


def _copy_class(copies: pd.DataFrame) -> npt.NDArray[np.object_]:
    if "category" in copies:
        return copies["category"].astype(object).to_numpy()
    from .links import copy_category

    return copy_category(copies["copy_kind"], copies["src_kind"])


def step_breakdown(steps: pd.DataFrame, segs: pd.DataFrame) -> pd.DataFrame:
    """Per step and category (every category, zeros included, in CATEGORIES
    order): ``step``, ``category``, ``ns`` (exclusive time, int64; a step's
    categories sum to its ``dur_ns`` exactly), ``share`` (ns / dur_ns; 0 for a
    zero-length step). ``segs`` from :func:`segments`."""
    return _breakdown_frame(steps, _ns_per_category(pd.Index(steps["step"].to_numpy()), segs))


def _ns_per_category(steps: pd.Index, segs: pd.DataFrame | Segments) -> npt.NDArray[np.float64]:
    """Segment time per (step, category): an array of len(steps) x len(CATEGORIES)
    (float64 sums of int64 lengths: exact below 2**53 ns, 104 days)."""
    n, m = len(steps), len(CATEGORIES)
    flat = steps.get_indexer(np.asarray(segs["step"])) * m + np.asarray(segs["category"])
    length = np.asarray(segs["end_ns"], dtype=np.float64) - np.asarray(segs["start_ns"], dtype=np.float64)
    return np.bincount(flat, weights=length, minlength=n * m).reshape(n, m)


def _breakdown_frame(steps: pd.DataFrame, ns_f: npt.NDArray[np.float64]) -> pd.DataFrame:
    n, m = len(steps), len(CATEGORIES)
    ns = np.rint(ns_f).astype(np.int64)
    dur = steps["dur_ns"].to_numpy(np.int64)
    return pd.DataFrame({
        "step": np.repeat(steps["step"].to_numpy(np.int64), m),
        "category": np.tile(np.array(CATEGORIES, dtype=object), n),
        "ns": ns.ravel(),
        "share": (ns / np.where(dur > 0, dur, 1)[:, None]).ravel(),
    })[BREAKDOWN_COLUMNS]


def breakdown_wide(long: pd.DataFrame) -> pd.DataFrame:
    """The long breakdown as one row per step (index ``step``), one int64 column per category."""
    wide = long.pivot(index="step", columns="category", values="ns")
    return wide.reindex(columns=list(CATEGORIES)).fillna(0).astype("int64")


def _os_names_at(calls: dict[str, np.ndarray], segs: Segments, pid: int, tid: int) -> Segments:
    """Which OS calls hold the ``os_call`` time: ``step``, ``code`` (the OS call's
    name code) and ``ns`` of the ``os_call`` segments ``segs`` of thread (pid,
    tid), each named after the thread's call in ``calls`` (row-ordered, so
    start-ordered) that started last by the segment's start."""
    mine = (calls["pid"] == pid) & (calls["tid"] == tid)
    s, c = calls["s"][mine], calls["code"][mine]
    if s.size == 0:
        return {"step": np.zeros(0, np.int64), "code": np.zeros(0, np.int64), "ns": np.zeros(0, np.int64)}
    i = np.clip(np.searchsorted(s, segs["start_ns"], side="right") - 1, 0, None)
    return {"step": np.asarray(segs["step"]), "code": c[i], "ns": np.asarray(segs["end_ns"]) - np.asarray(segs["start_ns"])}


def _os_names_frame(parts: list[Segments], names: pd.Index) -> pd.DataFrame:
    """:func:`_os_names_at`'s parts as one frame, summed per (step, name):
    ``step``, ``name``, ``ns``."""
    if not any(p["step"].size for p in parts):
        return pd.DataFrame({"step": pd.Series(dtype="int64"), "name": pd.Series(dtype=object),
                             "ns": pd.Series(dtype="int64")})
    code = np.concatenate([p["code"] for p in parts]).astype(np.int64)
    name = np.asarray(pd.Categorical.from_codes(code, categories=names), dtype=object)
    df = pd.DataFrame({"step": np.concatenate([p["step"] for p in parts]), "name": name,
                       "ns": np.concatenate([p["ns"] for p in parts])})
    return df.groupby(["step", "name"], as_index=False)["ns"].sum()


def merged_runs(segs: pd.DataFrame, steps: list[int]) -> pd.DataFrame:
    """The segments of ``steps`` with neighbours of one category merged: ``step``,
    ``start_ns``, ``end_ns``, ``category`` (its name): the breakdown band a
    timeline draws under its step."""
    sg = segs[segs["step"].isin(steps)].sort_values(["step", "start_ns"])
    if sg.empty:
        return pd.DataFrame({"step": pd.Series(dtype="int64"), "start_ns": pd.Series(dtype="int64"),
                             "end_ns": pd.Series(dtype="int64"), "category": pd.Series(dtype=object)})
    st, c = sg["step"].to_numpy(), sg["category"].to_numpy()
    new = np.r_[True, (st[1:] != st[:-1]) | (c[1:] != c[:-1]) | (sg["start_ns"].to_numpy()[1:] != sg["end_ns"].to_numpy()[:-1])]
    run = np.cumsum(new) - 1
    ends = np.zeros(run[-1] + 1, dtype=np.int64)
    np.maximum.at(ends, run, sg["end_ns"].to_numpy())
    first = np.flatnonzero(new)
    return pd.DataFrame({"step": st[first], "start_ns": sg["start_ns"].to_numpy()[first], "end_ns": ends,
                         "category": np.array(CATEGORIES, dtype=object)[c[first]]})


def breakdown_tables(
    steps: pd.DataFrame,
    compute: pd.DataFrame,
    api_calls: pd.DataFrame | RowWindows,
    waits: pd.DataFrame,
    copies: pd.DataFrame,
    memsets: pd.DataFrame,
    disk: pd.DataFrame,
    os_calls: pd.DataFrame | RowWindows,
    shown: list[int],
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """What the report draws from the segments, summed slice by slice so that
    the millions of segments of a long trace never exist at once:
    (:func:`step_breakdown`, :func:`merged_runs` of the ``shown`` steps, and
    which OS calls hold the ``os_call`` time: ``step``, ``name``, ``ns``, named
    per slice from the slice's window of OS calls), each equal to what it gives
    on all the segments."""
    index = pd.Index(steps["step"].to_numpy())
    ns = np.zeros((len(steps), len(CATEGORIES)), dtype=np.float64)
    os_code = CATEGORIES.index("os_call")
    kept: list[Segments] = []  # the segments of shown steps: few
    named: list[Segments] = []  # the OS-call time, per slice, named from the slice's window of OS calls
    osr = os_call_rows(os_calls)
    for part, osc in sweep(steps, compute, api_calls, waits, copies, memsets, disk, osr):
        ns += _ns_per_category(index, part)
        keep = np.isin(part["step"], shown)
        if keep.any():
            kept.append({c: v[keep] for c, v in part.items()})
        is_os = part["category"] == os_code
        if is_os.any():
            named.append(_os_names_at(osc.cols, {c: part[c][is_os] for c in ("step", "start_ns", "end_ns")},
                                      int(part["pid"][0]), int(part["tid"][0])))
    segs = _as_frame(kept)
    return _breakdown_frame(steps, ns), merged_runs(segs, shown), _os_names_frame(named, osr.categories.get("name", pd.Index([], dtype=object)))
