"""The loader reads tables on several threads through one sqlite3 connection:
every read must see its own rows (a shared prepared statement once made a column
probe come back empty on a 16-core GPU host: "table ... has no column start")."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from nsysparse.reader import Reader

DATA = Path(__file__).parent / "data"
TABLES = ["CUPTI_ACTIVITY_KIND_KERNEL", "CUPTI_ACTIVITY_KIND_RUNTIME", "CUPTI_ACTIVITY_KIND_MEMCPY", "NVTX_EVENTS",
          "StringIds", "ThreadNames", "TARGET_INFO_GPU", "ENUM_CUDA_MEM_KIND"]


def _hammer(reader: Reader, rounds: int = 40) -> list[str]:
    want = {t: dict(reader.columns(t)) for t in TABLES}
    counts = {t: reader.execute(f'SELECT count(*) FROM "{t}"')[0][0] for t in TABLES}
    wrong: list[str] = []
    barrier = threading.Barrier(len(TABLES))

    def work(t: str) -> None:
        barrier.wait()
        for _ in range(rounds):
            reader._columns.pop(t, None)  # probe again, as a fresh trace does
            if reader.columns(t) != want[t]:
                wrong.append(f"{t}: columns")
            if reader.execute(f'SELECT count(*) FROM "{t}"')[0][0] != counts[t]:
                wrong.append(f"{t}: rows")
            if len(reader.query(f'SELECT * FROM "{t}" LIMIT 5')) != min(5, counts[t]):
                wrong.append(f"{t}: query")

    threads = [threading.Thread(target=work, args=(t,)) for t in TABLES]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return wrong


@pytest.fixture()
def no_adbc(monkeypatch):
    """The GPU host has no ADBC driver: every query goes through the shared sqlite3 connection."""
    monkeypatch.setitem(sys.modules, "adbc_driver_sqlite", None)
    monkeypatch.setitem(sys.modules, "adbc_driver_sqlite.dbapi", None)


def test_concurrent_reads_on_one_connection_each_see_their_rows(no_adbc) -> None:
    reader = Reader(DATA / "offload_disk.sqlite")
    assert _hammer(reader) == []
