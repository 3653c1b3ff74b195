"""Exports from the wild, schema 2.9.1 to 3.25: each read equals plain SQL on the same file.

Real old exports (tests/data/external, licences in SOURCES.md) and old-schema
files derived here from the project's own fixtures: the metadata table under its
pre-2023.3 name, no ENUM tables, no globalPid, no metadata at all. Each test
checks plain-SQL truths (kernel count and total time, bytes per copyKind) and
that the link kinds decoded without ENUM tables equal those the ENUM tables give.
"""

from __future__ import annotations

import lzma
import shutil
import sqlite3
from pathlib import Path

import pytest

from nsysparse import schema as S
from nsysparse.errors import NotAnExport
from nsysparse.trace import open_trace
from tests.conftest import DATA

EXTERNAL = DATA / "external"
ENUMS = (S.T_ENUM_MEMCPY, S.T_ENUM_MEMKIND, S.T_ENUM_SYNC)


def _sql_truths(p: Path) -> tuple[int, int, dict[int, int]]:
    con = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
    n, total = con.execute(f"SELECT COUNT(*), COALESCE(SUM(end - start), 0) FROM {S.T_KERNEL}").fetchone()
    per_kind = dict(con.execute(f"SELECT copyKind, SUM(bytes) FROM {S.T_MEMCPY} GROUP BY copyKind").fetchall())
    con.close()
    return n, total, per_kind


def _assert_truths(t, p: Path) -> None:
    n, total, per_kind = _sql_truths(p)
    assert len(t.kernels) == n and int(t.kernels["dur_ns"].sum()) == total
    got = {S.MEMCPY_OPER_CODES.get(k, "?"): v for k, v in per_kind.items()}
    assert t.memcpy.groupby("copy_kind")["bytes"].sum().to_dict() == got


def _links(t) -> list[tuple]:
    m = t.memcpy
    return sorted(zip(m["copy_kind"], m["src_kind"], m["dst_kind"], m["bytes"]))


def _derive(tmp_path: Path, src: Path, *stmts: str) -> Path:
    p = tmp_path / f"derived-{src.name}"
    shutil.copy2(src, p)
    con = sqlite3.connect(p)
    for s in stmts:
        con.execute(s)
    con.commit()
    con.close()
    return p


def _drop_col(table: str, column: str, cols: list[str]) -> list[str]:
    keep = ", ".join(c for c in cols if c != column)
    return [f"CREATE TABLE _n AS SELECT {keep} FROM {table}", f"DROP TABLE {table}", f"ALTER TABLE _n RENAME TO {table}"]


def _cols(p: Path, table: str) -> list[str]:
    con = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
    cols = [r[0] for r in con.execute("SELECT name FROM pragma_table_info(?)", (table,))]
    con.close()
    return cols


@pytest.fixture(scope="module")
def external(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("external")
    files = {}
    for xz in sorted(EXTERNAL.glob("*.sqlite.xz")):
        p = out / xz.name[:-3]
        with lzma.open(xz) as src, p.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        files[p.stem] = p
    return files


# ---- real exports ------------------------------------------------------------------------


def test_every_external_export_reads_as_sql_says(external):
    for p in external.values():
        with open_trace(p) as t:
            t.prefetch()
            _assert_truths(t, p)
            assert "Unknown" not in set(t.memcpy["copy_kind"])
            assert t.schema_version != "unknown" and t.nsys_version != "unknown"


def test_schema_2_9_1_without_enum_tables(external):
    p = external["extra-p+extrap__tests__data__nsight__nsys_db__con_kernel"]
    with open_trace(p) as t:
        assert (t.schema_version, t.nsys_version) == ("2.9.1", "2022.1.1.61")
        assert t.identity()["schema_version"] == "2.9.1"
        assert _links(t)[0][:3] == ("Device-to-Host", "Device", "Pinned")
        assert {k[:3] for k in _links(t)} == {("Device-to-Host", "Device", "Pinned"), ("Host-to-Device", "Pinned", "Device")}
        assert "the export has no ENUM_CUDA_MEMCPY_OPER: copy kinds decoded from the codes nsys documents there" in t.notes


@pytest.mark.parametrize("name", ["hpcgroup+pipit__pipit__tests__data__cloverleaf-nsys__perlmutter-cloverleaf-cuda",
                                  "NVIDIA+Fuser__report1"])
def test_codes_decode_as_the_enum_tables_do(name, external, tmp_path):
    src = external[name]
    p = _derive(tmp_path, src, *(f"DROP TABLE {e}" for e in ENUMS))
    with open_trace(src) as a, open_trace(p) as b:
        assert _links(a) == _links(b) and len(_links(a)) > 0
        assert list(a.sync_events["sync_type"]) == list(b.sync_events["sync_type"])
        _assert_truths(b, p)


# ---- old schemas derived from the project's fixtures -------------------------------------------

SRC = DATA / "tiny_matmul_copy.sqlite"


def test_old_metadata_table_name(tmp_path):
    p = _derive(tmp_path, SRC, f"ALTER TABLE {S.T_META} RENAME TO {S.T_META_OLD}",
                f"UPDATE {S.T_META_OLD} SET value = '3.1.2' WHERE name = 'EXPORT_SCHEMA_VERSION'")
    with open_trace(p) as t:
        assert (t.nsys_version, t.schema_version) == ("2025.3.2.0", "3.1.2")
        _assert_truths(t, p)


def test_no_enum_tables(tmp_path):
    p = _derive(tmp_path, SRC, *(f"DROP TABLE {e}" for e in ENUMS))
    with open_trace(SRC) as a, open_trace(p) as b:
        assert _links(a) == _links(b)
        assert ("Host-to-Device", "Pinned", "Device") in {k[:3] for k in _links(b)}
        _assert_truths(b, p)


def test_no_global_pid_in_gpu_tables(tmp_path):
    stmts = _drop_col(S.T_KERNEL, "globalPid", _cols(SRC, S.T_KERNEL)) + _drop_col(S.T_MEMCPY, "globalPid", _cols(SRC, S.T_MEMCPY))
    p = _derive(tmp_path, SRC, *stmts)
    with open_trace(SRC) as a, open_trace(p) as b:
        assert list(a.kernels["pid"]) == list(b.kernels["pid"])
        assert list(a.kernels["api"].astype(str)) == list(b.kernels["api"].astype(str))
        _assert_truths(b, p)
        assert f"{S.T_KERNEL} has no column globalPid: read as empty" in b.notes


def test_no_global_pid_with_two_processes_is_exit_5(tmp_path):
    stmts = _drop_col(S.T_KERNEL, "globalPid", _cols(SRC, S.T_KERNEL)) + [
        f"UPDATE {S.T_RUNTIME} SET globalTid = globalTid + (1 << 24) WHERE rowid % 2 = 0"]
    p = _derive(tmp_path, SRC, *stmts)
    with pytest.raises(NotAnExport) as e:
        open_trace(p).kernels
    assert str(e.value) == (f"{p}: table {S.T_KERNEL} has no column globalPid and the trace holds 2 processes: "
                            "its GPU ops cannot be matched to their calls; export the .nsys-rep again")


def test_no_metadata_table(tmp_path):
    p = _derive(tmp_path, SRC, f"DROP TABLE {S.T_META}")
    with open_trace(p) as t:
        assert t.identity()["schema_version"] == "unknown" and t.nsys_version == "unknown"
        assert t.notes[0] == ("the export has no metadata table (META_DATA_EXPORT or EXPORT_META_DATA): "
                              "nsys version and schema unknown")
        _assert_truths(t, p)


def test_schema_older_than_supported(tmp_path):
    p = _derive(tmp_path, SRC, f"UPDATE {S.T_META} SET value = '2.8.0' WHERE name = 'EXPORT_SCHEMA_VERSION'")
    with pytest.raises(NotAnExport) as e:
        open_trace(p)
    assert str(e.value) == (f"{p}: export schema 2.8.0 is older than supported (2.9 to 3.x); "
                            "export the .nsys-rep again with Nsight Systems 2022.1 or later")


def test_3x_export_without_cuda_tables_says_t_cuda(tmp_path):
    drops = [f"DROP TABLE {t}" for t in S.CUDA_TABLES if t in ("CUPTI_ACTIVITY_KIND_KERNEL", "CUPTI_ACTIVITY_KIND_MEMCPY",
                                                               "CUPTI_ACTIVITY_KIND_RUNTIME")]
    p = _derive(tmp_path, SRC, f"ALTER TABLE {S.T_META} RENAME TO {S.T_META_OLD}", *drops)
    with pytest.raises(NotAnExport) as e:
        open_trace(p)
    assert str(e.value) == f"{p}: holds no CUDA activity: was the trace taken with `-t cuda` (nsys profile -t cuda,nvtx)?"


def test_recorded_tells_absent_from_empty(tmp_path):
    p = _derive(tmp_path, SRC, f"DROP TABLE {S.T_KERNEL}", f"DELETE FROM {S.T_MEMCPY}")
    with open_trace(p) as t:
        assert not t.recorded("kernels") and not t.has_kernels and t.kernels.empty
        assert t.recorded("memcpy") and t.has_copies and t.memcpy.empty
        assert t.recorded("api_calls") and not t.recorded("os_calls")
        assert t.lacks() == ["kernels"]
