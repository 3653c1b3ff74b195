"""The loader's row checks run in numpy on the rows as read (Reader._read_checked)
and, where that cannot decide, in the query itself: both must keep the same rows
in the same dtypes and say the same notes, on damaged tables of one batch and
of many (the driver reads 65,536 rows a batch)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from nsysparse import reader
from nsysparse import schema as S
from nsysparse.trace import open_trace
from tests.conftest import DATA

SRC = DATA / "tiny_matmul_copy.sqlite"
R = S.T_RUNTIME
MANY = 150_000  # three batches of API calls


def _grow(con: sqlite3.Connection) -> None:
    """MANY more API calls, copies of the first row shifted in time."""
    con.execute(f'''INSERT INTO "{R}" (start, "end", eventClass, globalTid, correlationId, nameId, returnValue)
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {MANY})
        SELECT r.start + n.i * 1000, r."end" + n.i * 1000, r.eventClass, r.globalTid, 10000000 + n.i, r.nameId,
               r.returnValue FROM n, (SELECT * FROM "{R}" ORDER BY rowid LIMIT 1) AS r''')


# (what, SQL on the copy); rowids past 70,000 lie in a later batch than the first
DAMAGE = {
    "clean": [],
    "null start": [f'UPDATE "{R}" SET start = NULL WHERE rowid % 97 = 0'],
    "end before start": [f'UPDATE "{R}" SET "end" = start - 1 WHERE rowid % 89 = 0'],
    "null and backwards": [f'UPDATE "{R}" SET start = NULL WHERE rowid % 7 = 0',
                           f'UPDATE "{R}" SET "end" = start - 5 WHERE rowid % 5 = 0'],
    "null in a later batch": [f'UPDATE "{R}" SET "end" = NULL WHERE rowid = 120000'],
    "null optional in a later batch": [f'UPDATE "{R}" SET correlationId = NULL WHERE rowid > 100000'],
    "text in a later batch": [f'UPDATE "{R}" SET start = \'x\' WHERE rowid = 140000'],
    "real in the first batch": [f'UPDATE "{R}" SET start = start + 0.5 WHERE rowid = 3'],
    "real in a later batch": [f'UPDATE "{R}" SET "end" = "end" + 0.5 WHERE rowid = 90000'],
}


@pytest.fixture(scope="module")
def grown(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return grown_export(tmp_path_factory.mktemp("grown"))


def grown_export(folder: Path) -> Path:
    """tiny_matmul_copy with MANY more API calls, its tables without NOT NULL constraints."""
    p = folder / "grown.sqlite"
    shutil.copy2(SRC, p)
    con = sqlite3.connect(p)
    # without its NOT NULL constraints, so the damage below can be written
    con.execute(f'CREATE TABLE "_loose" AS SELECT * FROM "{R}"')
    con.execute(f'DROP TABLE "{R}"')
    con.execute(f'ALTER TABLE "_loose" RENAME TO "{R}"')
    _grow(con)
    con.commit()
    con.close()
    return p


def damaged(source: Path, what: str, folder: Path) -> Path:
    """A copy of ``source`` in ``folder`` with DAMAGE[what] done to it."""
    p = folder / "t.sqlite"
    shutil.copy2(source, p)
    con = sqlite3.connect(p)
    for stmt in DAMAGE[what]:
        con.execute(stmt)
    con.commit()
    con.close()
    return p


# where the numpy checks decide on the API calls; elsewhere the driver cannot type them as integers
NUMPY_DECIDES = {"clean", "null start", "end before start", "null and backwards", "null in a later batch",
                 "null optional in a later batch"}


def _read(path: Path, numpy_checks: bool, monkeypatch: pytest.MonkeyPatch,
          decided: list[str] | None = None) -> tuple[dict[str, pd.DataFrame], list[str]]:
    real = reader.Reader._read_checked

    def spy(self, sql, *a, **k):
        got = real(self, sql, *a, **k)
        if got is not None and decided is not None:
            decided.append(sql)
        return got

    with monkeypatch.context() as m:
        m.setattr(reader.Reader, "_read_checked", spy if numpy_checks else (lambda *a, **k: None))
        with open_trace(path) as t:
            frames = {d.key: t._rd.read(d) for d in S.TABLES if t._rd.resolve(d) is not None}
            return frames, t.notes


@pytest.mark.parametrize("what", list(DAMAGE))
def test_checks_in_numpy_equal_checks_in_the_query(what: str, grown: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    p = damaged(grown, what, tmp_path)
    decided: list[str] = []
    fast, fast_notes = _read(p, True, monkeypatch, decided)
    assert any(f'FROM "{R}"' in sql for sql in decided) == (what in NUMPY_DECIDES)
    slow, slow_notes = _read(p, False, monkeypatch)
    assert sorted(fast) == sorted(slow)
    for key in slow:
        pd.testing.assert_frame_equal(fast[key], slow[key], check_exact=True, obj=key)
    assert fast_notes == slow_notes
    api = slow["api_calls"]
    if what == "clean":
        assert len(api) == MANY + 1144 and not any("left out" in n for n in slow_notes)
    elif what.startswith(("null start", "end before", "null and", "null in", "text in", "real in")):
        assert len(api) < MANY + 1144 and any("CUDA API call rows" in n and "left out" in n for n in slow_notes), slow_notes


def test_integers_that_came_as_integers_take_the_numpy_path(grown: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path is taken on a clean table (this test fails if it silently falls back)."""
    calls: list[bool] = []
    real = reader.Reader._read_checked

    def spy(self, *a, **k):
        got = real(self, *a, **k)
        calls.append(got is not None)
        return got

    monkeypatch.setattr(reader.Reader, "_read_checked", spy)
    with open_trace(grown) as t:
        assert len(t.api_calls) == MANY + 1144
    assert calls and all(calls)
