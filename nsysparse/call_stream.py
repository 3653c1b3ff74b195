"""The CUDA API calls (and the OS-runtime calls, :func:`stream_os_calls`) streamed
from the export to their Parquet file, a batch at a time.

A long trace's API calls are its largest table (15.5M calls in a 2 GB export:
0.9 GB as a frame, 0.7 GB more while it is built), and a report only writes
most of their columns out. :func:`stream_api_calls` reads them from SQLite a
batch of 64k rows at a time (:meth:`nsysparse.reader.Reader.stream`), builds
each batch as :func:`nsysparse.cuda.api_calls` builds the whole table, and
passes it on:

- to the file, a slice of ``parquet.CHUNK_ROWS`` rows at a time (on a thread
  of its own, one slice in flight): the same schema, metadata and values as
  the whole table written by :func:`nsysparse.parquet.write_parquet`;
- to the GPU ops read before it (:class:`Launches`): each op's launching call
  (same process, same correlation id; the first such call wins);
- to the :class:`nsysparse.row_windows.Indexer` by which the breakdown and
  what-held-the-wait read the calls back from the file;
- and to what the report reads of the calls besides their rows: the
  synchronising calls, the calls per thread, the names called, the span.

So no frame of all the calls ever exists. The file must come out in start
order, as the table does, and exports write the calls so (every fixture and
external export here does but one): a batch that starts before the one before
it ends the stream (None), and the table is then read whole, as before, as
it is when the rows cannot be checked batch by batch
(:class:`nsysparse.reader.CannotStream`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from . import parquet
from . import schema as S
from .cuda import Ops, int64, launch_key
from .intervals import ascending
from .parquet import SliceWriter, arrow_schema
from .reader import CannotStream, GrowingCategorical, Reader
from .row_windows import Indexer, RowWindows
from .steps import add_thread_calls, thread_calls
from .tables import Spilled

ALL = "*"  # Launches' one table of the distinct keys of every GPU op (Launches.of_keys)
CODES = ("base_name", "name")  # the categorical columns a window of calls holds (row_windows.api_call_rows)


@dataclass
class CallFile:
    """Where the API calls are streamed to: ``path``, the provenance ``meta()``
    its metadata carries (asked for once the last row is written: the input's
    sha256 is still being hashed), and the event that stops the write."""

    path: Path
    meta: Callable[[], dict[str, str]]
    cancel: threading.Event | None = None


@dataclass
class StreamedCalls:
    """The API calls, written to their file and read no more: what the report
    reads of them besides their rows.

    ``spilled``: the file (:class:`nsysparse.tables.Spilled`); ``rows``: their
    :class:`RowWindows`; ``syncs``: the calls whose base name is a
    synchronising one, with the table's columns (``sync.sync_calls`` of them is
    ``sync_calls`` of the table); ``threads``: calls per thread
    (``steps.thread_calls``); ``names``: the base names called, as
    ``report.call_facts`` lists them; ``span``: the first start and last end."""

    spilled: Spilled
    rows: RowWindows
    syncs: pd.DataFrame
    threads: pd.Series
    names: pd.Categorical
    span: tuple[int, int]


class Launches:
    """The launching call of each GPU op, found as the API calls stream past.

    ``ops``: per GPU-op table, the ``(pid, correlation id)`` of each of its raw
    rows. Each table's keys are sorted once (most are in order already); each
    batch of calls is looked up in them, and an op takes the first call with its
    key (the first in start order: the calls stream in it), as
    :meth:`nsysparse.cuda.Ops.launching_call` finds it."""

    def __init__(self, ops: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        self._tables: dict[str, dict[str, np.ndarray | None]] = {}
        for name, (pid, corr) in ops.items():
            key = launch_key(pid, corr, none=-2)  # -2: no call's key (-1 for none) meets it
            order = None if ascending(key) else np.argsort(key, kind="stable")
            self._tables[name] = _table(key if order is None else key[order], order)

    def add(self, key: np.ndarray, tid: np.ndarray, start: np.ndarray, end: np.ndarray, name: np.ndarray) -> None:
        """One batch of calls (``key``: ``pid << 32 | correlation id``, -1 for none), in start order."""
        ok = key >= 0
        if not ok.any():
            return
        k_lo, k_hi = int(key[ok].min()), int(key[ok].max())
        for t in self._tables.values():
            keys = t["keys"]
            # the batch's keys fall in one run of the sorted keys (correlation ids grow
            # with time): searched in that run, not in all the ops
            a, b = int(np.searchsorted(keys, k_lo, "left")), int(np.searchsorted(keys, k_hi, "right"))
            if b <= a:
                continue
            run = keys[a:b]
            lo = np.searchsorted(run, key, "left")
            n = np.where(ok, np.searchsorted(run, key, "right") - lo, 0)
            lo += a
            total = int(n.sum())
            if total == 0:
                continue
            call = np.repeat(np.arange(key.size), n)
            pos = np.repeat(lo - (np.cumsum(n) - n), n) + np.arange(total)  # each op of each call's key
            op = pos if t["order"] is None else t["order"][pos]
            fresh = ~t["found"][op]
            call, op = call[fresh], op[fresh]
            matched = key[n > 0]
            if matched.size > 1 and not bool((matched[1:] > matched[:-1]).all()):
                _, first = np.unique(op, return_index=True)  # a key called twice in the batch: the first call
                call, op = call[first], op[first]
            t["found"][op] = True
            for col, values in (("name", name), ("tid", tid), ("start", start), ("end", end)):
                t[col][op] = values[call]

    @classmethod
    def of_keys(cls, ops: dict[str, tuple[np.ndarray, np.ndarray]]) -> "Launches":
        """Over the distinct launch keys of ``ops`` (as for the constructor: per
        table, the ``(pid, correlation id)`` of its rows, in any order), one table
        for all of them: read ahead of the ops' rows (:func:`read_launch_keys`), so
        that the calls stream while those rows are read. A key whose row the rows'
        checks drop later is one no op looks up (:meth:`lookup`)."""
        keys = np.concatenate([launch_key(pid, corr, none=-2) for pid, corr in ops.values()] or [np.zeros(0, np.int64)])
        k = np.sort(keys[keys >= 0])  # a sort and a mask, not np.unique: its hash path is 25x slower here
        self = cls({})
        self._tables[ALL] = _table(k[np.r_[True, k[1:] != k[:-1]]] if k.size else k, None)
        return self

    @property
    def by_key(self) -> bool:
        """Whether the calls are found per distinct key (:meth:`of_keys`), not per op row."""
        return ALL in self._tables

    def lookup(self, pid: np.ndarray, corr: np.ndarray) -> dict[str, np.ndarray]:
        """The launching calls of ops ``(pid, corr)`` from the distinct keys of
        :meth:`of_keys`, as :meth:`take` gives them (0 and name -1 where not found)."""
        t = self._tables[ALL]
        keys, q = t["keys"], launch_key(pid, corr, none=-2)
        if keys.size == 0:
            return _calls(_table(q, None))  # none found
        i = np.minimum(np.searchsorted(keys, q), keys.size - 1)
        found = (keys[i] == q) & t["found"][i]
        out = {"found": found, "name": np.where(found, t["name"][i], -1).astype(np.int32)}
        for c in ("tid", "start", "end"):
            out[c] = np.where(found, t[c][i], 0)
        return out

    def take(self, table: str) -> dict[str, np.ndarray]:
        """Table ``table``'s ops' launching calls, in raw row order (``found``,
        ``name`` codes, ``tid``, ``start``, ``end``; 0 where not found); handed
        over once."""
        return _calls(self._tables.pop(table))


def _table(keys: np.ndarray, order: np.ndarray | None) -> dict[str, np.ndarray | None]:
    """One table of :class:`Launches`: its sorted ``keys`` (``order``: the rows they
    came from, None when in order) and, per key, the call found so far (none yet)."""
    n = keys.size
    return {"keys": keys, "order": order, "found": np.zeros(n, bool), "name": np.full(n, -1, np.int32),
            "tid": np.zeros(n, np.int64), "start": np.zeros(n, np.int64), "end": np.zeros(n, np.int64)}


def _calls(t: dict[str, np.ndarray | None]) -> dict[str, np.ndarray]:
    """A :class:`Launches` table's calls found (``found``, ``name``, ``tid``, ``start``, ``end``)."""
    return {k: v for k, v in t.items() if k not in ("keys", "order")}  # type: ignore[misc]


def stream_api_calls(rd: Reader, strings: pd.Series, to: CallFile, launches: Launches | None) -> StreamedCalls | None:
    """The API calls to ``to.path``, a batch at a time (the module's docstring),
    or None, with nothing of the file left, where they cannot stream (not in
    start order, or not checkable batch by batch)."""
    stream = _Stream(strings, launches)
    batches = rd.stream(S.RUNTIME)
    # a categorical column goes to the file as a dictionary of text, whatever its categories
    layout = pa.Schema.from_pandas(_layout_frame(stream, pd.Index(["-"], dtype=object)), preserve_index=False)
    if not _write_slices(to, layout, batches, stream.slices(batches),
                         lambda: arrow_schema(_layout_frame(stream), to.meta()), (_Unsorted, CannotStream)):
        return None
    return stream.result(to.path)


def _write_slices(to: CallFile, layout: pa.Schema, batches: Iterator[pd.DataFrame], slices: Iterator[pd.DataFrame],
                  schema: Callable[[], pa.Schema], stops: tuple[type[Exception], ...]) -> bool:
    """Each frame of ``slices`` (made from ``batches``, the export's rows) to
    ``to.path``, one in flight on a writer thread while the next is made, the
    file's schema ``schema()`` once the last is through: True. False, with
    nothing of the file left, where making them raises one of ``stops``.
    ``batches`` is closed either way (the export's connection closes with it)."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nsysparse-spill-stream")
    done = False
    try:
        with SliceWriter(to.path, layout, to.cancel) as writer:
            pending: Future[None] | None = None
            for part in slices:
                if pending is not None:
                    pending.result()  # one slice in flight: the reading goes on meanwhile
                pending = pool.submit(writer.write, part)
                del part
            if pending is not None:
                pending.result()
            writer.schema = schema()
        done = True
    except stops:
        return False
    finally:
        batches.close()  # type: ignore[attr-defined]
        pool.shutdown(wait=True)
        if not done:
            to.path.unlink(missing_ok=True)
    return True


@dataclass
class StreamedRows:
    """A table written to its file as it streamed from the export (no frame of it
    held): ``spilled``, the file, and ``rows``, its :class:`RowWindows`."""

    spilled: Spilled
    rows: RowWindows


def stream_os_calls(rd: Reader, strings: pd.Series, to: CallFile) -> StreamedRows | None:
    """The OS-runtime calls to ``to.path``, a batch at a time, or None (nothing of
    the file left) where they cannot stream (not checkable batch by batch).

    Exports write them by thread as each thread's buffer is flushed, not in start
    order, and :func:`nsysparse.cuda.os_calls` sorts the whole table (22M calls
    in a 5 GB export: a 0.9 GB frame, the read's peak); here SQLite sorts them on
    the way out (:meth:`Reader.stream` ``by="start"``: a stable sort of the same
    rows), and each batch is built as that function builds the table (``pid``,
    ``tid``, ``start_ns``, ``end_ns``, ``dur_ns``, ``name``), indexed for the
    breakdown (``name`` codes, :func:`nsysparse.row_windows.os_call_rows`) and
    written. The file holds the table's values in its order; the name
    categories come in order of first call, not of first row (a categorical's
    order, not its values: nothing reads it)."""
    names = GrowingCategorical(strings)
    index = Indexer(("name",))
    batches = rd.stream(S.OSRT, by="start")
    layout = pa.Schema.from_pandas(_os_frame(_os_batch(None), pd.Index(["-"], dtype=object)), preserve_index=False)

    def slices() -> Iterator[pd.DataFrame]:
        last = np.iinfo(np.int64).min
        for part in _slices((_os_batch(df, names) for df in batches), parquet.CHUNK_ROWS):
            if part["start_ns"][0] < last or not ascending(part["start_ns"]):
                raise AssertionError(f"{rd.path}: OSRT_API came out of SQLite's sort unsorted")
            last = int(part["start_ns"][-1])
            index.add({"s": part["start_ns"], "e": part["end_ns"], "pid": part["pid"], "tid": part["tid"],
                       "name": part["name"]})
            yield _os_frame(part, names.categories)

    def whole() -> pd.DataFrame:  # an empty frame of the table's columns and dtypes, the categories as they stand
        return _os_frame(_os_batch(None), names.categories)

    if not _write_slices(to, layout, batches, slices(), lambda: arrow_schema(whole(), to.meta()), (CannotStream,)):
        return None
    return StreamedRows(Spilled(to.path, index.n, dict(whole().dtypes.items())),
                        RowWindows.indexed(index, {"name": names.categories}, to.path))


def _slices(parts: Iterator[dict[str, np.ndarray]], n: int) -> Iterator[dict[str, np.ndarray]]:
    """Stretches of a table's columns (each a dict of arrays with ``start_ns``), as
    they come a batch at a time, regrouped into stretches of ``n`` rows (the last
    shorter): a file's row groups."""
    held: list[dict[str, np.ndarray]] = []
    count = 0
    for part in parts:
        held.append(part)
        count += len(part["start_ns"])
        while count >= n:
            whole = {k: np.concatenate([p[k] for p in held]) if len(held) > 1 else held[0][k] for k in held[0]}
            yield {k: v[:n] for k, v in whole.items()}
            rest = {k: v[n:] for k, v in whole.items()}
            count = len(rest["start_ns"])
            held = [rest] if count else []
            del whole
    if count:
        yield {k: np.concatenate([p[k] for p in held]) if len(held) > 1 else held[0][k] for k in held[0]}


def _os_batch(df: pd.DataFrame | None, names: GrowingCategorical | None = None) -> dict[str, np.ndarray]:
    """Raw OS-call rows (None: none) as the table's columns, ``name`` as codes."""
    if df is None:
        empty = {k: np.zeros(0, np.int64) for k in ("pid", "tid", "start_ns", "end_ns", "dur_ns")}
        return {**empty, "name": np.zeros(0, np.int32)}
    gt = df["globalTid"].astype("int64").to_numpy()
    s, e = int64(df["start"]), int64(df["end"])
    assert names is not None
    return {"pid": S.pid_of(gt), "tid": S.tid_of(gt), "start_ns": s, "end_ns": e, "dur_ns": e - s,
            "name": names.codes(df["nameId"])}


def _os_frame(cols: dict[str, np.ndarray], categories: pd.Index) -> pd.DataFrame:
    """:func:`_os_batch`'s columns as a frame of the table's columns and dtypes."""
    out = {c: pd.Categorical.from_codes(cols[c], categories=categories) if t == "category" else cols[c]
           for c, t in S.OSRT.out}
    return pd.DataFrame(out, copy=False)


class _Unsorted(Exception):
    """A batch of calls that starts before the last call before it."""


class _Stream:
    """The state of one stream of API calls: the categories so far, the slice
    being filled, and what is taken from the calls as they pass."""

    def __init__(self, strings: pd.Series, launches: Launches | None) -> None:
        self.names = GrowingCategorical(strings)
        self.base_of: list[int] = []  # name code -> base name code
        self.base_names: list[str] = []
        self._base_code: dict[str, int] = {}
        self.sync_base: list[bool] = []  # base name code -> a synchronising call
        self.launches = launches
        self.index = Indexer(CODES)
        self.rows = 0
        self.last = np.iinfo(np.int64).min
        self.first_start: int | None = None
        self.last_end = np.iinfo(np.int64).min
        self.syncs: list[dict[str, np.ndarray]] = []
        self.threads = pd.Series(dtype=np.int64)
        self.seen = np.zeros(1, np.int64)  # calls per base name code + 1 (0: a null name)

    def slices(self, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        """Each slice of ``parquet.CHUNK_ROWS`` rows (the last shorter) as a frame of the table's columns."""
        for cols in _slices((self._batch(df) for df in batches), parquet.CHUNK_ROWS):
            yield _table_frame(cols, self.categories())

    def _batch(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        """One batch of raw rows as the table's columns (names as codes), taken note of."""
        s, e = int64(df["start"]), int64(df["end"])
        if s[0] < self.last or not ascending(s):
            raise _Unsorted
        self.last = int(s[-1])
        if self.first_start is None:
            self.first_start = int(s[0])
        self.last_end = max(self.last_end, int(e.max()))
        gt = df["globalTid"].astype("int64").to_numpy()
        pid, tid = S.pid_of(gt), S.tid_of(gt)
        name = self.names.codes(df["nameId"])
        self._grow_bases()
        base_of = np.append(np.asarray(self.base_of, np.int32), -1)
        base = base_of[name]  # code -1 reads the -1 put last
        corr = int64(df["correlationId"], fill=-1)
        ret = pd.array(df["returnValue"].astype("Int64"), dtype="Int64")
        cols = {"name": name, "base_name": base, "start_ns": s, "end_ns": e, "pid": pid, "tid": tid,
                "correlation_id": corr, "return_value": ret.to_numpy(np.int64, na_value=0),
                "return_null": np.asarray(ret.isna(), bool)}
        self.rows += len(s)
        if self.launches is not None:
            self.launches.add(launch_key(pid, corr), tid, s, e, name)
        self.index.add({"s": s, "e": e, "pid": pid, "tid": tid, "base_name": base, "name": name})
        is_sync = np.append(np.asarray(self.sync_base, bool), False)[base]
        if is_sync.any():
            self.syncs.append({k: cols[k][is_sync] for k in ("pid", "tid", "start_ns", "end_ns", "base_name")})
        self.threads = add_thread_calls(self.threads, thread_calls(pid, tid))
        counts = np.bincount(base + 1, minlength=len(self.base_names) + 1)
        self.seen = np.r_[self.seen, np.zeros(counts.size - self.seen.size, np.int64)] + counts
        return cols

    def _grow_bases(self) -> None:
        """The base names (``_v`` + digits removed) of the names new since the last batch."""
        for value in self.names.categories[len(self.base_of):]:
            stripped = S.BASE_NAME_SUFFIX.sub("", str(value))
            code = self._base_code.setdefault(stripped, len(self.base_names))
            if code == len(self.base_names):
                self.base_names.append(stripped)
                self.sync_base.append(stripped in S.SYNC_CALLS)
            self.base_of.append(code)

    def categories(self) -> dict[str, pd.Index]:
        return {"name": self.names.categories, "base_name": pd.Index(self.base_names, dtype=object)}

    def result(self, path: Path) -> StreamedCalls:
        cats = self.categories()
        base = pd.CategoricalDtype(cats["base_name"])
        if self.syncs:
            sync_cols = {k: np.concatenate([p[k] for p in self.syncs]) for k in self.syncs[0]}
        else:
            sync_cols = {k: np.zeros(0, np.int64) for k in ("pid", "tid", "start_ns", "end_ns")}
            sync_cols["base_name"] = np.zeros(0, np.int32)
        syncs = pd.DataFrame({**{k: v for k, v in sync_cols.items() if k != "base_name"},
                              "base_name": pd.Categorical.from_codes(sync_cols["base_name"], dtype=base)})
        seen = np.flatnonzero(self.seen) - 1  # -1: a null name
        dtypes = dict(_layout_frame(self).dtypes.items())
        assert self.first_start is not None
        return StreamedCalls(
            spilled=Spilled(path, self.rows, dtypes),
            rows=RowWindows.indexed(self.index, cats, path),
            syncs=syncs, threads=self.threads,
            names=pd.Categorical.from_codes(seen, dtype=base),
            span=(self.first_start, int(self.last_end)),
        )


def _table_frame(cols: dict[str, np.ndarray], categories: dict[str, pd.Index]) -> pd.DataFrame:
    """Columns of :func:`_Stream._batch` as a frame of the table's columns and dtypes."""
    out = {}
    for c, _ in S.RUNTIME.out:
        if c in categories:
            out[c] = pd.Categorical.from_codes(cols[c], categories=categories[c])
        elif c == "return_value":
            out[c] = pd.arrays.IntegerArray(cols["return_value"], cols["return_null"])
        elif c == "dur_ns":
            out[c] = cols["end_ns"] - cols["start_ns"]
        else:
            out[c] = cols[c]
    return pd.DataFrame(out, copy=False)


def _layout_frame(stream: _Stream, categories: pd.Index | None = None) -> pd.DataFrame:
    """An empty frame of the table's columns and dtypes, with the categories as
    they stand (or ``categories`` for both categorical columns)."""
    empty = {k: np.zeros(0, np.int64) for k in ("start_ns", "end_ns", "pid", "tid", "correlation_id")}
    empty.update(name=np.zeros(0, np.int32), base_name=np.zeros(0, np.int32),
                 return_value=np.zeros(0, np.int64), return_null=np.zeros(0, bool))
    cats = stream.categories() if categories is None else {c: categories for c in CODES}
    return _table_frame(empty, cats)


class StreamedOps(Ops):
    """:class:`nsysparse.cuda.Ops` whose launching calls were found as the API
    calls streamed past (:class:`Launches`), not looked up in their frame."""

    def __init__(self, rd: Reader, strings: pd.Series, launches: Launches, names: pd.Index) -> None:
        self.rd, self.strings, self.api = rd, strings, None  # type: ignore[assignment]
        self.launches, self.names = launches, pd.CategoricalDtype(names)

    def launch(self, decl: S.Table, pid: np.ndarray, corr: np.ndarray
               ) -> tuple[np.ndarray, pd.Categorical, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        if self.launches.by_key:
            t = self.launches.lookup(pid, corr)
        else:
            t = self.launches.take(decl.key)
            if t["found"].size != pid.size:  # the rows Launches was made from are the rows built
                raise AssertionError(f"{decl.key}: {t['found'].size} ops streamed against, {pid.size} built")
        return t["found"], pd.Categorical.from_codes(t["name"], dtype=self.names), (t["tid"], t["start"], t["end"])


def read_launch_keys(rd: Reader, decls: list[S.Table]) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """What :func:`streamable_ops` gives, for :meth:`Launches.of_keys`, read ahead
    of the rows of the GPU-op tables ``decls`` (their globalPid and correlationId
    only, unchecked); None where they cannot stand for the rows' keys (no such
    column, a NULL globalPid, a value that is not an integer): the calls then
    stream once the rows are read. Unchecked rows only add keys: no op of a
    dropped row looks its key up."""
    frames: dict[str, pd.DataFrame | None] = {}
    for decl in decls:
        table = rd.resolve(decl)
        if table is None:
            continue
        if not {"globalPid", "correlationId"} <= set(rd.columns(table)):
            return None
        df = rd.query(f'SELECT "globalPid", "correlationId" FROM "{table}"')
        if len(df) and (df["globalPid"].dtype.kind not in "iuf" or df["correlationId"].dtype.kind not in "iuf"):
            return None  # text, a blob (NULLs read as float: streamable_ops refuses those in globalPid)
        frames[decl.key] = df
    return streamable_ops(frames)


def streamable_ops(raw: dict[str, pd.DataFrame | None]) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """The ``(pid, correlation id)`` of every raw GPU-op row, for :class:`Launches`;
    None when a row has no globalPid (its process is then the API calls' one, known
    only from the whole table: it is read whole)."""
    out = {}
    for key, df in raw.items():
        if df is None or df.empty:
            continue
        if not df["globalPid"].notna().all():
            return None
        out[key] = (S.pid_of(df["globalPid"].astype("int64")), int64(df["correlationId"], fill=-1))
    return out
