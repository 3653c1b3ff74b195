"""Start-ordered rows read a window of time at a time, from memory or back
from the Parquet file they were written to.

The breakdown and what-held-the-wait read the API and OS-runtime calls of a
long trace (15.5M and 8.7M rows in a 2 GB export: 0.8 GB of columns) slice of
time by slice of time. :class:`RowWindows` indexes such a table once, while
it is still in memory: per block of BLOCK rows the first start, and the
running maximum of the ends of its *short* rows (those that end before the
block REACH blocks on starts); the few *long* rows (a poll that blocks for
seconds) are kept aside, in memory. The rows that can overlap a window
``[a, b)`` are then the short rows of one contiguous run, a few blocks wide,
plus the long rows that overlap it. Backed by a file (a spilled report), only
the row groups under that run are read and kept, so the table itself is never
in memory; backed by the frame, the run is a view. Both backends give the same
rows in the same (row) order, so every answer is the same either way.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

BLOCK = 4096  # rows per block of the index
REACH = 4  # blocks: a row that ends after the first start of the block REACH blocks on is long
INDEX_ROWS = 1 << 20  # rows indexed at a time (bounds the index's transient memory)

# what a window holds: column -> the frame's column (codes: a categorical column's codes)
TIMES = {"s": "start_ns", "e": "end_ns", "pid": "pid", "tid": "tid"}
_KEY = {c: k for k, c in TIMES.items()}


class RowWindows:
    """The rows of ``df`` (sorted by ``start_ns``; columns ``start_ns``,
    ``end_ns``, ``pid``, ``tid`` and the categorical columns ``codes``),
    readable a window of time at a time. With ``path`` (where ``df`` was
    written by :func:`nsysparse.parquet.write_parquet`), windows are read from
    that file and nothing of ``df`` is kept but the long rows; otherwise they
    are views of ``df``'s columns. A window's columns: ``s``, ``e``, ``pid``,
    ``tid``, ``row`` (the row number) and, per categorical column, its codes
    against :attr:`categories` (-1 for null)."""

    def __init__(self, df: pd.DataFrame, codes: tuple[str, ...] = (), path: Path | None = None) -> None:
        cats = {c: pd.Categorical(df[c]) for c in codes}  # a view of a categorical column
        all_codes = {c: np.asarray(v.codes) for c, v in cats.items()}
        index = Indexer(codes)
        for lo in range(0, len(df), INDEX_ROWS):
            hi = lo + INDEX_ROWS
            index.add({**{k: df[c].to_numpy()[lo:hi] for k, c in TIMES.items()},
                       **{c: v[lo:hi] for c, v in all_codes.items()}})
        self._start(index, {c: v.categories for c, v in cats.items()}, path)
        self._frame = None if path is not None else {**{k: df[c].to_numpy() for k, c in TIMES.items()}, **all_codes}

    @classmethod
    def indexed(cls, index: "Indexer", categories: dict[str, pd.Index], path: Path) -> "RowWindows":
        """The rows written to ``path`` (by :func:`nsysparse.parquet.write_parquet` or a
        :class:`nsysparse.parquet.SliceWriter`), indexed as they passed (``index``;
        ``categories``: of each categorical column, in the order of their codes)."""
        self = cls.__new__(cls)
        self._start(index, categories, path)
        self._frame = None
        return self

    def _start(self, index: "Indexer", categories: dict[str, pd.Index], path: Path | None) -> None:
        self.codes = index.codes
        self.categories = categories
        self.n, self.first, self.reach, self.long = index.finish()
        self.path = path
        self._file: pq.ParquetFile | None = None
        self._groups: dict[int, dict[str, np.ndarray]] = {}  # row groups read, by index
        self._lock = threading.Lock()

    # ---- windows ---------------------------------------------------------------------

    def run(self, a: int, b: int) -> tuple[int, int]:
        """Rows ``[i0, i1)`` holding every short row that overlaps ``[a, b)`` (and a few that do not)."""
        if self.n == 0:
            return 0, 0
        i0 = min(self.n, int(np.searchsorted(self.reach, a, side="right")) * BLOCK)
        i1 = min(self.n, int(np.searchsorted(self.first, b, side="left")) * BLOCK)
        return i0, max(i0, i1)

    def rows_in(self, a: int, b: int) -> int:
        """About how many rows a window of ``[a, b)`` reads."""
        i0, i1 = self.run(a, b)
        return i1 - i0 + int(self._long_in(a, b).sum())

    def _long_in(self, a: int, b: int) -> np.ndarray:
        return (self.long["s"] < b) & (self.long["e"] > a)

    def window(self, a: int, b: int, codes: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """Every row that overlaps ``[a, b)``, in row order, with some that do not
        (short rows of the run that end by ``a`` or start from ``b``); of the
        categorical columns, ``codes`` (all of them when None)."""
        codes = self.codes if codes is None else codes
        i0, i1 = self.run(a, b)
        part = self._read(i0, i1, codes)
        # the long rows of the run stand aside; those that overlap the window come back
        j0, j1 = np.searchsorted(self.long["row"], [i0, i1])
        if j1 > j0:
            keep = np.ones(i1 - i0, bool)
            keep[self.long["row"][j0:j1] - i0] = False
            part = {k: v[keep] for k, v in part.items()}
        extra = self._long_in(a, b)
        if not extra.any():
            return part
        both = {k: np.concatenate([part[k], self.long[k][extra]]) for k in part}
        order = np.argsort(both["row"], kind="stable")
        return {k: v[order] for k, v in both.items()}

    def _read(self, i0: int, i1: int, codes: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Rows ``[i0, i1)``: the times, ``codes`` and ``row``."""
        with self._lock:  # one reader of the file and its row groups at a time
            return self._read_locked(i0, i1, codes)

    def _read_locked(self, i0: int, i1: int, codes: tuple[str, ...]) -> dict[str, np.ndarray]:
        if self._frame is not None:
            out = {k: self._frame[k][i0:i1] for k in (*TIMES, *codes)}
            out["row"] = np.arange(i0, i1, dtype=np.int64)
            return out
        if i1 <= i0:
            return {k: v for k, v in self._empty().items() if k in (*TIMES, "row", *codes)}
        f = self._open()
        starts = self._group_starts
        g0 = int(np.searchsorted(starts, i0, side="right")) - 1
        g1 = int(np.searchsorted(starts, i1, side="left"))
        for g in [g for g in self._groups if g < g0]:  # windows move forward: earlier groups are done
            del self._groups[g]
        parts = []
        for g in range(g0, g1):
            cols = self._groups.setdefault(g, {})
            missing = [c for c in (*TIMES.values(), *codes) if (c if c in self.codes else _KEY[c]) not in cols]
            if missing:  # each column of a row group decoded once, when first asked for
                cols.update(self._decode(f.read_row_group(g, columns=missing)))
            lo, hi = max(i0, int(starts[g])) - int(starts[g]), min(i1, int(starts[g + 1])) - int(starts[g])
            parts.append({k: cols[k][lo:hi] for k in (*TIMES, *codes)})
        out = {k: np.concatenate([p[k] for p in parts]) if len(parts) > 1 else parts[0][k] for k in parts[0]}
        out["row"] = np.arange(i0, i1, dtype=np.int64)
        return out

    def _open(self) -> pq.ParquetFile:
        if self._file is None:
            assert self.path is not None
            self._file = pq.ParquetFile(self.path, read_dictionary=list(self.codes))
            md = self._file.metadata
            self._group_starts = np.cumsum([0] + [md.row_group(g).num_rows for g in range(md.num_row_groups)])
        return self._file

    def _decode(self, t: pa.Table) -> dict[str, np.ndarray]:
        """A row group's columns as a window holds them (times by their short keys)."""
        out = {k: t.column(c).to_numpy() for k, c in TIMES.items() if c in t.column_names}
        for c in self.codes:
            if c in t.column_names:
                out[c] = self._codes(c, t.column(c))
        return out

    def forget(self) -> None:
        """Drop the row groups read (a sweep is done with them)."""
        with self._lock:
            self._groups.clear()
        pa.default_memory_pool().release_unused()  # Arrow's pool keeps freed pages otherwise

    def _codes(self, name: str, col: pa.ChunkedArray) -> np.ndarray:
        """A dictionary column's values as codes against ``categories[name]`` (-1: null)."""
        parts = []
        for chunk in col.chunks:
            if not pa.types.is_dictionary(chunk.type):
                chunk = chunk.dictionary_encode()
            # each chunk's own dictionary, mapped once onto the categories
            values = chunk.dictionary.to_numpy(zero_copy_only=False)
            mapping = np.append(self.categories[name].get_indexer(values), -1).astype(np.int32)
            parts.append(mapping[chunk.indices.fill_null(len(values)).to_numpy()])
        return np.concatenate(parts) if parts else np.zeros(0, np.int32)

    def _empty(self) -> dict[str, np.ndarray]:
        out = {k: np.zeros(0, np.int64) for k in (*TIMES, "row")}
        out.update({c: np.zeros(0, np.int32) for c in self.codes})
        return out

    # ---- every row ---------------------------------------------------------------------

    def chunks(self, columns: tuple[str, ...] = ("s", "e", "pid", "tid"),
               codes: tuple[str, ...] | None = None) -> Iterator[dict[str, np.ndarray]]:
        """Every row, a stretch at a time (a row group of the file), in row order:
        ``columns`` (of ``s``, ``e``, ``pid``, ``tid``), ``row`` and ``codes`` (all
        when None). Safe beside :meth:`window` on another thread: a file of its
        own, no cache."""
        codes = self.codes if codes is None else codes
        if self._frame is not None:
            for lo in range(0, self.n, INDEX_ROWS):
                hi = min(self.n, lo + INDEX_ROWS)
                yield {**{k: self._frame[k][lo:hi] for k in (*columns, *codes)},
                       "row": np.arange(lo, hi, dtype=np.int64)}
            return
        assert self.path is not None
        f = pq.ParquetFile(self.path, read_dictionary=list(codes))
        at = 0
        for g in range(f.metadata.num_row_groups):
            t = f.read_row_group(g, columns=[*(TIMES[c] for c in columns), *codes])
            out = {c: t.column(TIMES[c]).to_numpy() for c in columns}
            out.update({c: self._codes(c, t.column(c)) for c in codes})
            out["row"] = np.arange(at, at + t.num_rows, dtype=np.int64)
            at += t.num_rows
            yield out


class Indexer:
    """A :class:`RowWindows` index built as the rows pass, a stretch at a time, in
    row order (from a frame, or as a table streams from the export to its file):
    ``add`` each stretch (``s``, ``e``, ``pid``, ``tid`` and the ``codes``
    columns), then ``finish``. A block is indexed once the first row of the block
    REACH blocks on has passed (its horizon), so only those rows wait in memory;
    the last blocks have no horizon (no row of theirs is long)."""

    def __init__(self, codes: tuple[str, ...] = ()) -> None:
        self.codes = codes
        self.n = 0  # rows added
        self._firsts: list[np.ndarray] = []  # each block's first start, as the stretches brought them
        self._known = np.zeros(0, np.int64)  # the firsts so far, as one array
        self._pending: dict[str, np.ndarray] | None = None  # the rows of the blocks not yet indexed
        self._done = 0  # blocks indexed
        self._reach: list[np.ndarray] = []
        self._long: list[dict[str, np.ndarray]] = []

    def add(self, cols: dict[str, np.ndarray]) -> None:
        """The next stretch of rows."""
        m = len(cols["s"])
        if m == 0:
            return
        at = np.arange(-self.n % BLOCK, m, BLOCK)  # the rows of this stretch that begin a block
        self._firsts.append(np.asarray(cols["s"][at], np.int64))
        self.n += m
        keys = (*TIMES, *self.codes)
        self._pending = ({k: np.asarray(cols[k]) for k in keys} if self._pending is None else
                         {k: np.concatenate([self._pending[k], cols[k]]) for k in keys})
        self._known = np.concatenate(self._firsts)
        self._firsts = [self._known]
        self._index(self._known.size - REACH)

    def _index(self, upto: int) -> None:
        """Index blocks ``[done, upto)``: those whose horizon is known (all, at the end)."""
        if upto <= self._done or self._pending is None:
            return
        nb = upto - self._done
        rows = min(nb * BLOCK, len(self._pending["s"]))
        horizon = np.r_[self._known[self._done + REACH:upto + REACH],
                        np.full(max(0, upto + REACH - self._known.size), np.iinfo(np.int64).max, np.int64)]
        part = {k: v[:rows] for k, v in self._pending.items()}
        long = part["e"] > np.repeat(horizon, BLOCK)[:rows]
        short_e = np.where(long, np.iinfo(np.int64).min, part["e"])
        self._reach.append(np.maximum.reduceat(short_e, np.arange(0, rows, BLOCK)))
        idx = np.flatnonzero(long)
        self._long.append({"row": self._done * BLOCK + idx, **{k: v[idx] for k, v in part.items()}})
        self._pending = {k: v[rows:].copy() for k, v in self._pending.items()}
        self._done = upto

    def finish(self) -> tuple[int, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """``(rows, each block's first start, the running maximum of its short rows'
        ends, the long rows' columns)``: what :class:`RowWindows` searches."""
        self._index(self._known.size)
        self._pending = None
        reach = np.concatenate(self._reach) if self._reach else np.zeros(0, np.int64)
        keys = ("row", *TIMES, *self.codes)
        long = ({k: np.concatenate([p[k] for p in self._long]) for k in keys} if self._long else
                {k: np.zeros(0, np.int64 if k in ("row", *TIMES) else np.int32) for k in keys})
        return self.n, self._known, np.maximum.accumulate(reach) if reach.size else reach, long


def api_call_rows(api_calls: pd.DataFrame | RowWindows, path: Path | None = None) -> RowWindows:
    """The API calls as the breakdown and what-held-the-wait read them (the
    ``base_name`` and ``name`` codes; from ``path`` when written there): a frame
    is indexed, a RowWindows kept."""
    if isinstance(api_calls, RowWindows):
        return api_calls
    return RowWindows(api_calls, tuple(c for c in ("base_name", "name") if c in api_calls), path)


def os_call_rows(os_calls: pd.DataFrame | RowWindows, path: Path | None = None) -> RowWindows:
    """The OS-runtime calls as the breakdown reads them (the ``name`` codes)."""
    if isinstance(os_calls, RowWindows):
        return os_calls
    return RowWindows(os_calls, ("name",) if "name" in os_calls else (), path)
