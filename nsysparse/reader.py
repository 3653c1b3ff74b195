"""Open an export read-only and read declared tables from it: the only SQL of the package.

:class:`Reader` opens the file so that nothing is ever created beside it
(read-only; a WAL-mode file as immutable, so no ``-wal``/``-shm`` appears),
probes tables and columns once, and reads each table through its
:class:`nsysparse.schema.Table` declaration: a SELECT of the declared columns
(optional ones missing read as NULL), rows that cannot be read as declared
left out and counted in a note (checked in numpy on the rows as read, or by
the query itself where the driver cannot tell integers apart), duplicated lookup keys
dropped (the first wins). Every SQLite failure becomes a typed error: locked
(exit 4, its own message), corrupt (exit 4), a required column missing or of
the wrong type (exit 5).
"""

from __future__ import annotations

import sqlite3
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from . import progress
from . import schema as S
from .errors import InputLocked, InputMissing, NotADatabase, NotAnExport

SQLITE_MAGIC = b"SQLite format 3\x00"
_BUSY_TIMEOUT_S = 0.5  # a writer holding the file: wait this long, then say it is locked


def check_file(p: Path) -> None:
    """The checks before SQLite sees the file: it exists, is a file, reads, is SQLite."""
    if not p.exists():
        raise InputMissing(p, "no such file; give the path of an exported .sqlite trace")
    if p.is_dir():
        raise InputMissing(p, "is a directory; give the path of an exported .sqlite trace")
    try:
        with p.open("rb") as fh:
            head = fh.read(100)
    except OSError as exc:
        raise InputMissing(p, f"cannot be read ({exc.strerror}); check its permissions") from None
    if not head:
        raise NotADatabase(p, "is empty; export the report again with `nsys export --type sqlite`")
    if head[: len(SQLITE_MAGIC)] != SQLITE_MAGIC:
        raise NotADatabase(p, "is not a SQLite database; export the .nsys-rep with `nsys export --type sqlite`")


def database_error(path: Path, exc: BaseException) -> Exception:
    """The user's error for a failure reading ``path``; pandas wraps sqlite3's
    errors in its own DatabaseError, so look through it. A query of ours that
    names what is not there stays our bug (returned unchanged)."""
    cause = exc
    while not isinstance(cause, sqlite3.Error) and cause.__cause__ is not None:
        cause = cause.__cause__
    text = str(cause)
    if isinstance(cause, sqlite3.OperationalError) and text.startswith("no such"):
        return exc
    if "locked" in text or getattr(cause, "sqlite_errorname", "") in ("SQLITE_BUSY", "SQLITE_LOCKED"):
        return InputLocked(path, "is locked by a program writing it; wait for it to finish, or read a copy")
    return NotADatabase(path, f"is corrupt ({text}); export the .nsys-rep again")


def _affinity(declared: str) -> str:
    """SQLite's column affinity of a declared type (sqlite.org/datatype3.html, 3.1)."""
    t = declared.upper()
    if "INT" in t:
        return "INTEGER"
    if any(k in t for k in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if "BLOB" in t or not t:
        return "BLOB"
    if any(k in t for k in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


def _decode(b: bytes) -> str:
    return b.decode("utf-8", "replace")  # a broken string is still a name, not a crash


class Reader:
    """A read-only connection to one export, with what it holds probed once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.notes: list[str] = []
        self._lock = threading.Lock()
        _check_not_truncated(path)
        params = "mode=ro"
        with path.open("rb") as fh:
            header = fh.read(20)
        if header[18:20] == b"\x02\x02":  # WAL mode: a reader would create -shm (and -wal) beside it
            wal = path.with_name(path.name + "-wal")
            if wal.exists() and wal.stat().st_size > 0:
                raise InputLocked(
                    path, "is being written (a -wal file lies beside it); wait for the writer to finish, or read a copy"
                )
            params += "&immutable=1"  # nothing beside it is read or created
        # quote the path: '#', '?' and '%' in a file name would end or bend the URI
        self.uri = f"file:{urllib.parse.quote(path.resolve().as_posix())}?{params}"
        try:
            self.con = sqlite3.connect(self.uri, uri=True, check_same_thread=False, timeout=_BUSY_TIMEOUT_S)
            # the loader reads tables on several threads; one sqlite3 connection shares its
            # prepared-statement cache between them, so two threads running the same SQL
            # (a column probe) reset each other's statement and one sees no rows
            self._lock = threading.RLock()
            self.con.text_factory = _decode
            rows = self.con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        except sqlite3.DatabaseError as exc:
            err = database_error(path, exc)
            if isinstance(err, NotADatabase) and not isinstance(err, InputLocked):
                err = NotADatabase(path, f"is corrupt or truncated ({exc}); export the .nsys-rep again")
            raise err from None
        self.tables: frozenset[str] = frozenset(str(r[0]) for r in rows)
        self._columns: dict[str, dict[str, str]] = {}

    def close(self) -> None:
        self.con.close()

    # ---- probing -------------------------------------------------------------------

    def columns(self, table: str) -> dict[str, str]:
        """Column name -> declared type of ``table`` (empty if it does not exist)."""
        if table not in self._columns:
            info = self.execute("SELECT name, type FROM pragma_table_info(?)", (table,)) if table in self.tables else []
            self._columns[table] = {str(n): str(t or "") for n, t in info}
        return self._columns[table]

    def resolve(self, decl: S.Table) -> str | None:
        """The table ``decl`` reads in this export (the first of its names present), or None."""
        return next((n for n in decl.names if n in self.tables), None)

    # ---- raw SQL -------------------------------------------------------------------

    def execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Rows of one read-only statement; a failure is the user's typed error."""
        try:
            with self._lock:
                return self.con.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            err = database_error(self.path, exc)
            if err is exc:
                raise
            raise err from None

    def query(self, sql: str, params: tuple = ()) -> pd.DataFrame:
        """Run one read-only query into a DataFrame. A page that cannot be read
        (a corrupt file) is the user's :class:`NotADatabase`, not our bug.

        With ``adbc-driver-sqlite`` installed, rows go from SQLite straight into
        Arrow columns in C, 5-9x faster than ``pandas.read_sql_query`` building a
        Python tuple per row (benchmarks/RESULTS.md); the frame is the same:
        int64 columns, float64 where an integer column holds NULLs, object None
        where a column is all NULL. The driver infers a column's type from its
        first batch of rows and fails on a later mismatch; then, and on any other
        driver error or an empty result, the plain ``sqlite3`` path below runs
        and decides (its errors are the ones users see).
        """
        try:
            import adbc_driver_sqlite.dbapi as adbc
        except ImportError:
            adbc = None  # type: ignore[assignment]
        if adbc is not None:
            try:
                df = _fetch_frame(adbc, self.uri, sql, params)
            except Exception:  # noqa: BLE001 - the sqlite3 path below re-runs it and raises what applies
                df = None
            if df is not None:
                return df
        try:
            with self._lock:
                return pd.read_sql_query(sql, self.con, params=params)
        except (sqlite3.DatabaseError, pd.errors.DatabaseError) as exc:
            err = database_error(self.path, exc)
            if err is exc:
                raise
            raise err from None

    # ---- declared reads -------------------------------------------------------------

    def read(self, decl: S.Table, where: str = "", params: tuple = (), label: str | None = None) -> pd.DataFrame | None:
        """The rows of ``decl``'s table that read as declared, one column per declared
        column (named ``col.name``), or None when the export lacks the table.

        ``where`` (with ``?`` parameters) narrows the rows first. Rows failing a
        declared check are left out and counted, per first failing reason, in
        :attr:`notes`; if no row is left, :class:`NotAnExport`. The checks run in
        numpy on the rows as read when every integer column came as integers
        (:meth:`_read_checked`; SQLite evaluating them per row cost a third of
        the read), else in the query's WHERE; both keep the same rows
        (tests/test_reader_checks.py).
        """
        table = self.resolve(decl)
        if table is None:
            return None
        exprs, bad, checks, present = self._declared(decl, table)
        narrow = f"({where})" if where else "1"
        ok = " AND ".join(f"NOT COALESCE({b}, 0)" for b, _ in bad) or "1"
        rows = self.row_estimate(table)  # also the arrays' size as they are read
        select = f'SELECT {", ".join(exprs)} FROM "{table}" WHERE {narrow}'
        with progress.phase(f"reading {table}" + (f" ({label})" if label else ""), rows=rows):
            # the checks in numpy on the rows as read (a third faster than SQLite evaluating
            # them per row), where every integer column came as integers; else in the query
            got = self._read_checked(select, params, checks, rows) if bad else None
            if got is None:
                df = self.query(f"{select} AND {ok}", params)
        if got is not None:
            df, dropped = got
            self._note_dropped(table, decl, label or decl.label, [w for _, w in bad], dropped, len(df))
        elif bad:
            self._count_dropped(table, decl, label or decl.label, narrow, params, bad, len(df))
        if decl.unique and decl.unique in present and len(df):
            dup = df.duplicated(decl.unique, keep="first").to_numpy()
            if dup.any():
                self.note(f"{table}: {int(dup.sum()):,} rows repeat the {decl.unique} of an earlier row: the first of each kept")
                df = df[~dup].reset_index(drop=True)
        return df

    def _declared(self, decl: S.Table, table: str
                  ) -> tuple[list[str], list[tuple[str, str]], list[tuple[str, ...]], set[str]]:
        """What reading ``decl`` from ``table`` selects (``exprs``), the SQL and numpy
        checks of a row that cannot be read (``bad``, ``checks``: the same checks,
        in the same order) and the declared columns the export has (``present``);
        a required column missing or of the wrong type is :class:`NotAnExport`."""
        have = self.columns(table)
        exprs: list[str] = []
        bad: list[tuple[str, str]] = []  # (SQL true for a row that cannot be read, why)
        checks: list[tuple[str, ...]] = []  # the same checks for numpy: (kind, column[, column])
        present: set[str] = set()
        for c in decl.cols:
            src = next((n for n in c.names if n in have), None)
            if src is None:
                if c.required:
                    raise NotAnExport(
                        self.path,
                        f"table {table} has no column {c.name}: the export is trimmed or hand-made; "
                        "export the .nsys-rep again with `nsys export --type sqlite`",
                    )
                exprs.append(f'NULL AS "{c.name}"')
                self.note(f"{table} has no column {c.name}: read as empty")
                continue
            present.add(c.name)
            if src != c.name:
                self.note(f"{table} has no column {c.name}: {src} read instead")
            q = f'"{src}"'
            if c.type == S.TEXT:
                exprs.append(f'CAST({q} AS TEXT) AS "{c.name}"')
            elif c.type == S.REAL:
                exprs.append(f'CAST({q} AS REAL) AS "{c.name}"')
            else:
                if c.required and _affinity(have[src]) in ("TEXT", "REAL"):
                    raise NotAnExport(
                        self.path,
                        f"column {c.name} of table {table} is declared {have[src]}, not INTEGER; "
                        "export the .nsys-rep again with `nsys export --type sqlite`",
                    )
                exprs.append(f'{q} AS "{c.name}"')
                if not c.null:
                    bad.append((f"{q} IS NULL", f"had no {c.name}"))
                    checks.append(("null", c.name))
                bad.append((f"typeof({q}) NOT IN ('integer', 'null')", f"had a {c.name} that is not an integer"))
                checks.append(("integer", c.name))
                if c.check == "nonneg":
                    bad.append((f"{q} < 0", f"had a negative {c.name}"))
                    checks.append(("negative", c.name))
        if decl.span and set(decl.span) <= present:
            s, e = (f'"{next(n for n in decl.col(x).names if n in have)}"' for x in decl.span)
            bad.append((f"{e} < {s}", f"ended before they started ({decl.span[1]} < {decl.span[0]})"))
            checks.append(("span", *decl.span))
        return exprs, bad, checks, present

    def row_estimate(self, table: str) -> int | None:
        """About how many rows ``table`` holds (its largest rowid: an index lookup,
        not a scan; exact for an export, whose rows are never deleted)."""
        try:
            with self._lock:
                n = self.con.execute(f'SELECT MAX(rowid) FROM "{table}"').fetchone()[0]
        except sqlite3.Error:
            return None  # a WITHOUT ROWID table, or a read that fails later with its own error
        return int(n) if isinstance(n, int) else 0

    def _count_dropped(self, table: str, decl: S.Table, label: str, narrow: str, params: tuple,
                       bad: list[tuple[str, str]], kept: int) -> None:
        total = int(self.execute(f'SELECT COUNT(*) FROM "{table}" WHERE {narrow}', params)[0][0])
        if kept == total:
            return
        case = " ".join(f"WHEN COALESCE({b}, 0) THEN {i}" for i, (b, _) in enumerate(bad))
        rows = self.execute(
            f'SELECT CASE {case} ELSE -1 END AS why, COUNT(*) FROM "{table}" WHERE {narrow} GROUP BY why '
            "ORDER BY COUNT(*) DESC",
            params,
        )
        counts = [0] * len(bad)
        for i, n in rows:
            if i >= 0:
                counts[int(i)] = int(n)
        self._note_dropped(table, decl, label, [w for _, w in bad], counts, kept)

    def _note_dropped(self, table: str, decl: S.Table, label: str, why: list[str], counts: list[int],
                      kept: int) -> None:
        """Say how many rows each check left out (``counts``: per check, the rows it
        was the first to fail); no row left of a vital table is :class:`NotAnExport`,
        naming the check most rows failed."""
        total = kept + sum(counts)
        if kept == total:
            return
        if kept == 0 and decl.vital:
            first = max(range(len(counts)), key=lambda i: (counts[i], -i))
            raise NotAnExport(
                self.path,
                f"all {total:,} {label} rows of {table} {why[first]}: nothing left to read; export the .nsys-rep again",
            )
        for i, n in enumerate(counts):
            if n:
                self.note(f"{n:,} of {total:,} {label} rows {why[i]}: left out")

    def _read_checked(self, sql: str, params: tuple, checks: list[tuple[str, ...]], rows: int | None = None
                      ) -> tuple[pd.DataFrame, list[int]] | None:
        """The rows of ``sql`` that pass ``checks``, checked in numpy, and per check the
        rows it was the first to fail (the query's own order of checks); None when
        this cannot decide (no ADBC, a driver error, no row, an integer column that
        came as another type, no row passing): the query then checks in SQL.
        ``rows``: about how many rows it returns at most (its arrays' first size)."""
        try:
            import adbc_driver_sqlite.dbapi as adbc
        except ImportError:
            return None
        try:
            cols = _fetch_columns(adbc, self.uri, sql, params, rows)
        except Exception:  # noqa: BLE001 - the SQL path re-runs it and raises what applies
            return None
        if cols is None:
            return None
        got = _check_rows(cols, checks)
        if got is None:
            return None
        left, counts = got
        if not left.any():
            return None
        return cols.frame(None if left.all() else left), counts

    def stream(self, decl: S.Table, batch_rows: int = 1 << 16, by: str | None = None) -> "Iterator[pd.DataFrame]":
        """The rows of ``decl``'s table that read as declared, as :meth:`read` keeps
        them, a frame of at most ``batch_rows`` rows at a time, in rowid order, or
        with ``by`` (a declared column) in that column's order, ties in rowid order:
        the rows :meth:`read` gives, stably sorted by it, sorted by SQLite on the way
        out (its sorter spills to temporary files: no frame of the table is held
        for the sort; 8.7M OS calls, +0.9 s to the read); the
        rows left out are noted (as :meth:`read` notes them) once the last batch is
        through. Raises :class:`CannotStream` (possibly after some batches) where
        the rows cannot be checked batch by batch in numpy: no ADBC, a driver error,
        an integer column that came as another type, no row left, no table. The
        caller then reads the table whole (:meth:`read`), which decides."""
        table = self.resolve(decl)
        if table is None or decl.unique:
            raise CannotStream(f"no table {decl.name}" if table is None else "a lookup table")
        try:
            import adbc_driver_sqlite.dbapi as adbc
        except ImportError:
            raise CannotStream("no ADBC driver") from None
        exprs, bad, checks, _ = self._declared(decl, table)
        # ``by`` names a result column (the declared name, whatever the export calls it)
        order = f'"{by}", rowid' if by else "rowid"
        select = f'SELECT {", ".join(exprs)} FROM "{table}" ORDER BY {order}'
        rows = self.row_estimate(table) if progress.enabled() else None
        kept, dropped = 0, [0] * len(bad)
        with progress.phase(f"reading {table}", rows=rows):
            try:
                con = adbc.connect(self.uri)
                cur = con.cursor()
                cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(batch_rows)})
                cur.execute(select)
                batches = cur.fetch_record_batch()
            except Exception as exc:  # noqa: BLE001 - the whole read re-runs it and raises what applies
                raise CannotStream(f"driver: {exc}") from None
            try:
                # closed before the cursor: its thread may be inside the driver
                with ReadAhead(batches, failed=lambda exc: CannotStream(f"driver: {exc}")) as ahead:  # as above
                    for batch in ahead:
                        cols = _Columns(batches.schema)
                        cols.add(batch)
                        del batch
                        got = _check_rows(cols, checks)
                        if got is None:
                            raise CannotStream("an integer column came as another type")
                        left, counts = got
                        dropped = [a + b for a, b in zip(dropped, counts)]
                        n = int(left.sum())
                        if n:
                            kept += n
                            yield cols.frame(None if n == cols.rows else left)
            finally:
                cur.close()
                con.close()
        if kept == 0:
            raise CannotStream("no row left")
        self._note_dropped(table, decl, decl.label, [w for _, w in bad], dropped, kept)

    def lookup(self, decl: S.Table, key: str, value: str) -> pd.Series:
        """A lookup table as a Series key -> value (empty when absent); duplicated keys: the first."""
        df = self.read(decl)
        if df is None or df.empty:
            return pd.Series(dtype=object)
        return pd.Series(df[value].to_numpy(dtype=object), index=df[key].to_numpy())

    def note(self, text: str) -> None:
        with self._lock:  # prefetch() reads tables on several threads
            if text not in self.notes:
                self.notes.append(text)


class ReadAhead:
    """The record batches of ``batches`` read and validated one step ahead on a
    thread of their own: the driver steps SQLite and builds each batch with
    Python's lock released, so the next batch is read while the caller works on
    this one (the API calls of a 2 GB export: the driver's 5.8 s then overlap
    the 3.5 s the stream spends on its batches). At most ``depth`` batches wait.
    Iterated (or :meth:`next`, which raises ``StopIteration`` at the end), it
    hands the batches over in order, then raises what reading raised
    (``validate(full=True)``: the driver passes broken UTF-8 through), or
    ``failed`` of it when given; :meth:`close` (or leaving the ``with``) stops
    the thread and waits for it."""

    _END = object()

    def __init__(self, batches: Iterator[pa.RecordBatch], depth: int = 2,
                 failed: "Callable[[BaseException], BaseException] | None" = None) -> None:
        import queue

        self._failed = failed
        self._queue: "queue.Queue[object]" = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(batches,), name="nsysparse-read-ahead", daemon=True)
        self._thread.start()

    def _run(self, batches: Iterator[pa.RecordBatch]) -> None:
        import queue

        while not self._stop.is_set():
            try:
                item: object = next(batches)
                item.validate(full=True)  # type: ignore[attr-defined]
            except StopIteration:
                item = self._END
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, who decides
                item = exc
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.05)
                    break
                except queue.Full:
                    continue
            if item is self._END or isinstance(item, BaseException):
                return

    def next(self) -> pa.RecordBatch:
        item = self._queue.get()
        if item is self._END:
            self._queue.put(item)  # a later call ends too
            raise StopIteration
        if isinstance(item, BaseException):
            self._queue.put(item)
            if self._failed is None:
                raise item
            raise self._failed(item) from None
        return item  # type: ignore[return-value]

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        while True:
            try:
                yield self.next()
            except StopIteration:
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> "ReadAhead":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CannotStream(Exception):
    """:meth:`Reader.stream` cannot check this table's rows batch by batch: read it whole."""


def _check_rows(cols: "_Columns", checks: list[tuple[str, ...]]) -> tuple[np.ndarray, list[int]] | None:
    """Which rows of ``cols`` pass ``checks`` (:meth:`Reader._declared`), and per
    check the rows it was the first to fail (in the query's own order of checks);
    None when an integer column came as another type (SQLite's typeof decides then)."""
    by_name = dict(zip(cols.names, range(len(cols.names))))
    integer = {c[1] for c in checks if c[0] == "integer"}
    if any(not cols.is_integer(by_name[n]) for n in integer):
        return None  # a REAL or TEXT value among the integers
    left = np.ones(cols.rows, dtype=bool)
    counts = []
    for kind, *names in checks:
        i = [by_name[n] for n in names]
        if kind == "integer":  # every value came as an integer (or NULL)
            counts.append(0)
            continue
        if kind == "null":
            fails = cols.null_mask(i[0])
        elif kind == "negative":
            fails = (cols.values(i[0]) < 0) & ~cols.null_mask(i[0])
        else:  # span: end before start, both known
            fails = (cols.values(i[1]) < cols.values(i[0])) & ~cols.null_mask(i[0]) & ~cols.null_mask(i[1])
        fails &= left
        counts.append(int(fails.sum()))
        left &= ~fails
    return left, counts


def _fetch_frame(adbc, uri: str, sql: str, params: tuple) -> pd.DataFrame | None:
    """One query through ADBC into the frame ``Reader.query`` describes, or None for
    no row (:func:`_fetch_columns`, then :meth:`_Columns.frame`)."""
    cols = _fetch_columns(adbc, uri, sql, params)
    return None if cols is None else cols.frame()


def _fetch_columns(adbc, uri: str, sql: str, params: tuple, rows: int | None = None) -> "_Columns | None":
    """One query through ADBC as columns, or None for no row. Rows stream in
    record batches, and each batch's numeric columns go into their numpy arrays at
    once (integers with their NULLs as 0 beside a mask; the batch is then freed), so a
    table is never held as Arrow columns and a pandas frame both. ``rows``: the
    arrays' first size (:class:`_Columns`)."""
    with adbc.connect(uri) as con, con.cursor() as cur:
        # a big first batch: type inference sees 64k rows, not 1k
        cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": "65536"})
        cur.execute(sql, tuple(params) if params else None)
        batches = cur.fetch_record_batch()
        cols = _Columns(batches.schema, rows)
        # the driver passes text through unchecked: a broken UTF-8 string (old
        # exports hold some) fails ReadAhead's validation and the sqlite3 path
        # replaces its bytes
        with ReadAhead(batches) as ahead:
            for batch in ahead:
                cols.add(batch)
                del batch
    return cols if cols.rows else None


_MAX_CAPACITY = 1 << 26  # rows an array is first sized for at most (512 MB of int64, only touched pages resident)


class _Columns:
    """The columns of one query's rows, as read: numeric ones written into one
    numpy array each as the batches come (integers' NULLs as 0, with a mask),
    any other type as its Arrow chunks. ``capacity``, the rows expected (a
    table's largest rowid), sizes the arrays at once: no chunk per batch is kept
    and no concatenation doubles the column at the end (2 GB: the 512 KB chunks
    of 15M rows were copied twice and, held in the heap until concatenated,
    left it 800 MB larger); untouched capacity is never resident. Past it (or
    without it) an array doubles."""

    def __init__(self, schema: pa.Schema, capacity: int | None = None) -> None:
        self.schema = schema
        self.names = schema.names
        self.numeric = [pa.types.is_integer(f.type) or pa.types.is_floating(f.type) for f in schema]
        self.chunks: list[list] = [[] for _ in self.names]  # the Arrow chunks of the other columns
        self._values: list[np.ndarray | None] = [None] * len(self.names)
        self._masks: list[np.ndarray | None] = [None] * len(self.names)
        # a rowid far past the rows (a hand-made or damaged export) sizes nothing: doubling then
        self.capacity = max(0, min(capacity or 0, _MAX_CAPACITY))
        self.rows = 0

    def add(self, batch: pa.RecordBatch) -> None:
        n, at = batch.num_rows, self.rows
        if at + n > self.capacity:
            self._grow(max(at + n, 2 * self.capacity))
        for i, col in enumerate(batch.columns):
            if not self.numeric[i]:
                self.chunks[i].append(col)
                continue
            if col.null_count:
                if self._masks[i] is None:
                    self._masks[i] = np.zeros(self.capacity, dtype=bool)
                self._masks[i][at:at + n] = col.is_null().to_numpy(zero_copy_only=False)
                if pa.types.is_integer(col.type):
                    col = col.fill_null(0)
            v = col.to_numpy(zero_copy_only=False)  # a view of the batch where it can: copied below
            out = self._values[i]
            if out is None:
                out = self._values[i] = np.empty(self.capacity, dtype=v.dtype)
            elif out.dtype != v.dtype:
                out = self._values[i] = out.astype(np.result_type(out.dtype, v.dtype))
            out[at:at + n] = v
        self.rows += n

    def _grow(self, capacity: int) -> None:
        for arrays in (self._values, self._masks):
            for i, a in enumerate(arrays):
                if a is not None:
                    grown = np.zeros(capacity, dtype=a.dtype) if a.dtype == bool else np.empty(capacity, dtype=a.dtype)
                    grown[:self.rows] = a[:self.rows]
                    arrays[i] = grown
        self.capacity = capacity

    def is_integer(self, i: int) -> bool:
        """Whether column ``i`` came as integers: the driver types a column by its
        first batch (an all-NULL integer column too) and fails on a later value of
        another type."""
        return pa.types.is_integer(self.schema.field(i).type)

    def values(self, i: int) -> np.ndarray:
        """Column ``i`` (numeric) as one array, NULLs as 0 (NaN in a float column)."""
        v = self._values[i]
        if v is None:  # no row
            return np.zeros(0, dtype=np.float64 if pa.types.is_floating(self.schema.field(i).type) else np.int64)
        return v[:self.rows]

    def has_nulls(self, i: int) -> bool:
        return self._masks[i] is not None

    def null_mask(self, i: int) -> np.ndarray:
        """Which rows of column ``i`` (numeric) are NULL."""
        m = self._masks[i]
        return np.zeros(self.rows, dtype=bool) if m is None else m[:self.rows]

    def frame(self, keep: np.ndarray | None = None) -> pd.DataFrame:
        """The rows (those ``keep`` marks) as ``Reader.query``'s frame: numbers as
        ``Table.to_pandas`` gives them (int64; float64 where a column holds a NULL),
        an all-NULL column as object None (as ``read_sql_query``), text and any other
        type through ``to_pandas`` of its Arrow chunks, unchanged."""
        rows = self.rows if keep is None else int(keep.sum())
        cols: dict[int, object] = {}  # by position: a query may repeat a column name
        for i in range(len(self.names)):
            if self.numeric[i]:
                nulls = self.null_mask(i) if self.has_nulls(i) else None
                v = self.values(i)
                self._values[i] = self._masks[i] = None
                if keep is not None:
                    v = v[keep]
                    nulls = None if nulls is None else nulls[keep]
                n_null = 0 if nulls is None else int(nulls.sum())
                if n_null == rows:
                    cols[i] = _all_null(rows)
                    continue
                if n_null:
                    v = v.astype(np.float64)  # as Arrow converts an integer column with NULLs
                    v[nulls] = np.nan
                cols[i] = pd.Series(v, copy=False)
                continue
            arr = pa.chunked_array(self.chunks[i], self.schema.field(i).type)
            self.chunks[i] = []
            if keep is not None:
                arr = arr.filter(pa.array(keep))
            cols[i] = _all_null(rows) if arr.null_count == rows else arr.to_pandas()
            del arr
        df = pd.DataFrame(cols, copy=False)  # not copied into 2-D blocks: each column stays its own array
        df.columns = pd.Index(self.names)
        pa.default_memory_pool().release_unused()  # what to_pandas of text borrowed goes back now
        return df


def _all_null(rows: int) -> pd.Series:
    """An all-NULL column as ``read_sql_query`` gives it: object, None in every row
    (an object array starts as None: no list of a million Nones made first)."""
    return pd.Series(np.empty(rows, dtype=object), dtype=object, copy=False)  # no inference: 0.8 s at 14M rows


def categorical(lookup: pd.Series, ids: pd.Series) -> pd.Categorical:
    """``lookup`` values of ``ids`` as a Categorical: each distinct id is looked up
    once, and millions of kernel rows share a few hundred names."""
    codes, uniq_ids = pd.factorize(ids.to_numpy())
    values = lookup.reindex(uniq_ids).to_numpy(dtype=object)
    vcodes, categories = pd.factorize(values)  # ids that share a string share a category
    return pd.Categorical.from_codes(recode(codes, vcodes), categories=pd.Index(categories, dtype=object))


class GrowingCategorical:
    """:func:`categorical` of a column that arrives a batch at a time: ``codes(ids)``
    of each batch are its codes against :attr:`categories` as they stand then,
    which only ever grow at the end, so every earlier code stays valid, and the
    codes and categories at the end are :func:`categorical`'s of the whole column
    (tests/test_call_stream.py)."""

    def __init__(self, lookup: pd.Series) -> None:
        self.lookup = lookup
        self._code_of_id: dict[object, int] = {}
        self._code_of_value: dict[str, int] = {}
        self._values: list[str] = []

    def codes(self, ids: pd.Series | np.ndarray) -> np.ndarray:
        """The codes of one batch of ids (-1: an id with no value), int32."""
        codes, uniq = pd.factorize(np.asarray(ids))
        fresh = [i for i in uniq.tolist() if i not in self._code_of_id]  # per distinct id, not per row
        if fresh:
            values = self.lookup.reindex(fresh).to_numpy(dtype=object)
            for i, v in zip(fresh, values):
                if v is None or (isinstance(v, float) and np.isnan(v)):
                    self._code_of_id[i] = -1
                    continue
                code = self._code_of_value.setdefault(v, len(self._values))
                if code == len(self._values):
                    self._values.append(v)
                self._code_of_id[i] = code
        table = np.fromiter((self._code_of_id[i] for i in uniq.tolist()), np.int32, len(uniq))
        return recode(codes, table).astype(np.int32, copy=False)

    @property
    def categories(self) -> pd.Index:
        return pd.Index(self._values, dtype=object)


def recode(codes: np.ndarray, lookup: np.ndarray) -> np.ndarray:
    """``lookup[codes]`` with code -1 (missing) kept as -1 (and as -1 when ``lookup`` is empty)."""
    codes = np.asarray(codes)
    if len(lookup) == 0:
        return np.full(codes.shape, -1, dtype=np.int64)
    lookup = np.asarray(lookup)
    table = np.empty(lookup.size + 1, dtype=lookup.dtype)  # one take: code -1 reads the -1 put last
    table[:-1] = lookup
    table[-1] = -1
    return table[codes]


def _check_not_truncated(path: Path) -> None:
    """A file shorter than its header's page count x page size was cut short.

    Cheap (reads the 100-byte header), unlike ``PRAGMA quick_check`` which reads
    every page of a gigabyte trace.
    """
    with path.open("rb") as fh:
        header = fh.read(100)
    if len(header) < 100:
        raise NotADatabase(path, "is truncated (shorter than a SQLite header); export the .nsys-rep again")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # the in-header size is valid only when the change counter matches "version-valid-for"
    valid = header[24:28] == header[92:96] and pages > 0
    if valid and path.stat().st_size < pages * page_size:
        raise NotADatabase(
            path, f"is truncated ({path.stat().st_size} of {pages * page_size} bytes); copy or export it again"
        )
