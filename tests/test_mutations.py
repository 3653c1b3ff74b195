"""Mutated copies of small real exports: every malformed input has one clean answer.

Each case copies ``tiny_matmul_copy.sqlite`` (kernels, copies, API calls, NVTX,
ENUM tables), mutates the copy with plain SQL, runs the CLI in-process and
asserts: no traceback, the documented exit code, the whole one-line message
(sqlite-utils style), the input byte-identical, nothing created beside it and
no partial output folder. The loader's notes for partial damage are asserted
on :attr:`Trace.notes`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from nsysparse import schema as S
from nsysparse.cli import main
from nsysparse.errors import NotAnExport
from nsysparse.trace import open_trace
from tests.conftest import DATA

SRC = DATA / "tiny_matmul_copy.sqlite"
K, M, R = S.T_KERNEL, S.T_MEMCPY, S.T_RUNTIME
REEXPORT = "export the .nsys-rep again with `nsys export --type sqlite`"


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _copy(tmp_path: Path, name: str = "t.sqlite") -> Path:
    p = tmp_path / "in" / name
    p.parent.mkdir()
    shutil.copy2(SRC, p)
    return p


def _sql(p: Path, *stmts: str) -> None:
    con = sqlite3.connect(p)
    for s in stmts:
        con.execute(s)
    con.commit()
    con.close()


def _count(table: str, where: str = "1") -> int:
    con = sqlite3.connect(f"file:{SRC}?mode=ro", uri=True)
    n = con.execute(f'SELECT COUNT(*) FROM "{table}" WHERE {where}').fetchone()[0]
    con.close()
    return n


def _report(p: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run ``report`` in-process; check everything a failure or success must hold."""
    out = tmp_path / "out"
    before, listing = _sha(p), sorted(os.listdir(p.parent))
    code = main(["report", str(p), "--out", str(out), "--no-charts", "--format", "json"])
    o, err = capsys.readouterr()
    assert "Traceback" not in err + o, err
    assert _sha(p) == before
    assert sorted(os.listdir(p.parent)) == listing  # no -wal, -shm or -journal beside it
    if code == 0:
        assert (out / "summary.json").exists()
        return code, ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert not out.exists() and not [q for q in tmp_path.iterdir() if q.name.startswith(".out.")]
    return code, lines[0]


def _drop_column(p: Path, table: str, column: str) -> None:
    """Drop ``column`` whatever it is (ALTER TABLE refuses a key or indexed column)."""
    keep = ", ".join(f'"{c}"' for c in _columns(table) if c != column)
    _sql(p, f'CREATE TABLE "_new" AS SELECT {keep} FROM "{table}"', f'DROP TABLE "{table}"',
         f'ALTER TABLE "_new" RENAME TO "{table}"')


def _loosen(p: Path, table: str) -> None:
    """Recreate ``table`` without its NOT NULL and UNIQUE constraints, so that the
    values a broken writer could leave there can be written."""
    _sql(p, f'CREATE TABLE "_new" AS SELECT * FROM "{table}"', f'DROP TABLE "{table}"',
         f'ALTER TABLE "_new" RENAME TO "{table}"')


def _columns(table: str) -> list[str]:
    con = sqlite3.connect(f"file:{SRC}?mode=ro", uri=True)
    cols = [r[0] for r in con.execute("SELECT name FROM pragma_table_info(?)", (table,))]
    con.close()
    return cols


# ---- tables and columns dropped ------------------------------------------------------------

def _has(table: str) -> bool:
    return _count("sqlite_master", f"type = 'table' AND name = '{table}'") > 0


_PRESENT = [d for d in S.TABLES if _has(d.name)]


@pytest.mark.parametrize("table", [d.name for d in _PRESENT])
def test_any_one_table_dropped_still_reports(table, tmp_path, capsys):
    p = _copy(tmp_path)
    _sql(p, f'DROP TABLE "{table}"')
    code, msg = _report(p, tmp_path, capsys)
    assert code == 0, msg


_REQUIRED = [(d.name, c.name) for d in _PRESENT for c in d.cols if c.required and c.name in _columns(d.name)]
_OPTIONAL = [(d.name, c.name) for d in _PRESENT for c in d.cols
             if not c.required and len(c.names) == 1 and c.name in _columns(d.name)]


# what reads each table (a report reads some only for charts, or when another table is there)
_READ_BY = {"strings": lambda t: t.strings, "enum_memcpy": lambda t: t.enum_labels(S.T_ENUM_MEMCPY),
            "enum_memkind": lambda t: t.enum_labels(S.T_ENUM_MEMKIND), "enum_sync": lambda t: t.enum_labels(S.T_ENUM_SYNC),
            "nvtx": lambda t: t.nvtx_ranges, "meta": lambda t: t.meta, "analysis": lambda t: t.capture_end_ns}


@pytest.mark.parametrize("table, column", _REQUIRED)
def test_required_column_dropped_is_exit_5_naming_it(table, column, tmp_path, capsys):
    p = _copy(tmp_path)
    _drop_column(p, table, column)
    want = f"{p}: table {table} has no column {column}: the export is trimmed or hand-made; {REEXPORT}"
    code, msg = _report(p, tmp_path, capsys)
    assert (code, msg) in ((5, want), (0, ""))  # 0: the report does not read that table
    decl = next(d for d in _PRESENT if d.name == table)
    with pytest.raises(NotAnExport) as e:
        t = open_trace(p)
        _READ_BY.get(decl.key, lambda t: getattr(t, decl.key))(t)
    assert str(e.value) == want


@pytest.mark.parametrize("table, column", _OPTIONAL)
def test_optional_column_dropped_reports_with_a_note(table, column, tmp_path, capsys):
    p = _copy(tmp_path)
    _drop_column(p, table, column)
    code, msg = _report(p, tmp_path, capsys)
    assert code == 0, msg
    with open_trace(p) as t:
        t.prefetch(), t.gpus
        assert f"{table} has no column {column}: read as empty" in t.notes


def test_wrong_declared_type_is_exit_5(tmp_path, capsys):
    p = _copy(tmp_path)
    _sql(p, f'ALTER TABLE "{K}" RENAME COLUMN start TO s0', f'ALTER TABLE "{K}" ADD COLUMN start TEXT',
         f'UPDATE "{K}" SET start = s0')
    code, msg = _report(p, tmp_path, capsys)
    assert (code, msg) == (5, f"{p}: column start of table {K} is declared TEXT, not INTEGER; {REEXPORT}")


def test_wrong_nvtx_columns_under_a_unicode_path(tmp_path, capsys):
    p = _copy(tmp_path, "tëst ☃ #1.sqlite")
    _sql(p, f"DROP TABLE {S.T_NVTX}", f"CREATE TABLE {S.T_NVTX} (a INTEGER, b TEXT)", f"INSERT INTO {S.T_NVTX} VALUES (1, 'x')")
    code, msg = _report(p, tmp_path, capsys)
    assert (code, msg) == (5, f"{p}: table {S.T_NVTX} has no column start: the export is trimmed or hand-made; {REEXPORT}")


# ---- values that cannot be read as declared ---------------------------------------------------

BAD = {"null": "NULL", "text": "'abc'", "blob": "x'00ff'", "negative": "-5", "huge": "9223372036854775808"}
_LABEL = {K: "kernel", M: "memcpy"}


def _why(column: str, value: str, null_ok: bool) -> str | None:
    """Why a row with ``value`` in ``column`` cannot be read (None: it can)."""
    if value == "null":
        return None if null_ok else f"had no {column}"
    if value in ("text", "blob", "huge"):  # SQLite stores an integer past int64 as a real
        return f"had a {column} that is not an integer"
    if column == "end":
        return "ended before they started (end < start)"
    if column == "bytes":
        return "had a negative bytes"
    return None


_CELLS = [(K, c) for c in ("start", "end", "deviceId", "streamId", "correlationId", "demangledName")] + [
    (M, c) for c in ("bytes", "copyKind", "globalPid")]


@pytest.mark.parametrize("share", ["all", "some"])
@pytest.mark.parametrize("value", list(BAD))
@pytest.mark.parametrize("table, column", _CELLS)
def test_bad_values(table, column, value, share, tmp_path, capsys):
    p = _copy(tmp_path)
    _loosen(p, table)
    total = _count(table)
    where = "1" if share == "all" else "rowid = (SELECT MIN(rowid) FROM t0)".replace("t0", f'"{table}"')
    _sql(p, f'UPDATE "{table}" SET "{column}" = {BAD[value]} WHERE {where}')
    decl = next(d for d in _PRESENT if d.name == table)
    why = _why(column, value, decl.col(column).null)
    code, msg = _report(p, tmp_path, capsys)
    if why is not None and share == "all":
        assert (code, msg) == (5, f"{p}: all {total:,} {_LABEL[table]} rows of {table} {why}: nothing left to read; "
                                  "export the .nsys-rep again")
        return
    assert code == 0, msg
    with open_trace(p) as t:
        frame = t.kernels if table == K else t.memcpy
        if why is None:
            assert len(frame) == total
        else:
            assert len(frame) == total - 1
            assert f"1 of {total:,} {_LABEL[table]} rows {why}: left out" in t.notes


def test_bytes_near_int64_do_not_overflow(tmp_path, capsys):
    p = _copy(tmp_path)
    _sql(p, f'UPDATE "{M}" SET bytes = 4611686018427387904')  # 2**62 each: their sum is past int64
    code, msg = _report(p, tmp_path, capsys)
    assert code == 0, msg
    with open_trace(p) as t:
        assert sum(int(b) for b in t.memcpy["bytes"]) == _count(M) * 2**62


@pytest.mark.parametrize("table, key", [(S.T_STRINGS, "id"), (S.T_ENUM_MEMCPY, "id"), (S.T_GPU, "cuDevice"),
                                        (S.T_THREADS, "globalTid")])
def test_duplicated_lookup_ids_first_wins(table, key, tmp_path, capsys):
    p = _copy(tmp_path)
    n = _count(table)
    _loosen(p, table)
    text = "value" if table == S.T_STRINGS else "label" if table == S.T_ENUM_MEMCPY else None
    _sql(p, f'CREATE TABLE dup AS SELECT * FROM "{table}"',
         *( [f"UPDATE dup SET {text} = 'WRONG'"] if text else []),
         f'INSERT INTO "{table}" SELECT * FROM dup', "DROP TABLE dup")
    code, msg = _report(p, tmp_path, capsys)
    assert code == 0, msg
    with open_trace(p) as t:
        t.prefetch(), t.gpus, t.threads
        assert f"{table}: {n:,} rows repeat the {key} of an earlier row: the first of each kept" in t.notes
        assert "WRONG" not in set(t.kernels["name"].astype(str)) | set(t.memcpy["copy_kind"])


# ---- the file itself ----------------------------------------------------------------------------


def test_wal_mode_input_creates_nothing_beside_it(tmp_path, capsys):
    p = _copy(tmp_path)
    _sql(p, "PRAGMA journal_mode=WAL")
    assert sorted(os.listdir(p.parent)) == [p.name]
    code, msg = _report(p, tmp_path, capsys)
    assert code == 0, msg


def test_locked_database_says_locked(tmp_path, capsys):
    p = _copy(tmp_path)
    writer = sqlite3.connect(p, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    try:
        out = tmp_path / "out"
        before = _sha(p)
        code = main(["report", str(p), "--out", str(out), "--no-charts"])
        _, err = capsys.readouterr()
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert (code, err.strip()) == (4, f"{p}: is locked by a program writing it; wait for it to finish, or read a copy")
    assert _sha(p) == before and not out.exists()


def _corrupt_root_page(p: Path, table: str) -> None:
    con = sqlite3.connect(p)
    root, = con.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    size, = con.execute("PRAGMA page_size").fetchone()
    con.close()
    with p.open("r+b") as fh:
        fh.seek((root - 1) * size)
        fh.write(b"\xff" * size)


@pytest.mark.parametrize("table", [M, S.T_META, S.T_STRINGS])
def test_corrupt_page_is_exit_4(table, tmp_path, capsys):
    p = _copy(tmp_path)
    _corrupt_root_page(p, table)
    code, msg = _report(p, tmp_path, capsys)
    assert code == 4
    assert msg.startswith(f"{p}: is corrupt (") and msg.endswith("); export the .nsys-rep again"), msg
