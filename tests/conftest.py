"""Shared fixtures: the real traces in ``tests/data`` and a builder of tiny ones.

- ``data_dir``: ``tests/data`` (real exports, truth files, ``nsys-stats/<name>/`` CSVs).
- ``fixture_path(name)``: path of ``tests/data/<name>.sqlite``.
- ``builder``: a :class:`tests.builders.TraceBuilder` writing ``tmp_path/trace.sqlite``
  (pid 100); ``make_builder(name, **kw)`` makes more in the same ``tmp_path``.
- ``edge``: the ``edge`` fixture opened once per session.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS.parent) not in sys.path:  # `from tests.builders import ...` without an install
    sys.path.insert(0, str(TESTS.parent))

from tests.builders import TraceBuilder  # noqa: E402

DATA = TESTS / "data"
FIXTURES = sorted(p.stem for p in DATA.glob("*.sqlite"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes over 20 s; deselect with -m 'not slow'")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def fixture_path() -> Callable[[str], Path]:
    def path(name: str) -> Path:
        p = DATA / f"{name}.sqlite"
        assert p.exists(), f"missing test data {p}"
        return p

    return path


@pytest.fixture(scope="session")
def truth() -> Callable[[str], dict[str, Any]]:
    def load(name: str) -> dict[str, Any]:
        return json.loads((DATA / f"{name}.truth.json").read_text())

    return load


@pytest.fixture
def builder(tmp_path: Path) -> TraceBuilder:
    return TraceBuilder(tmp_path / "trace.sqlite", pid=100)


@pytest.fixture
def make_builder(tmp_path: Path) -> Callable[..., TraceBuilder]:
    def make(name: str = "trace", **kw: Any) -> TraceBuilder:
        kw.setdefault("pid", 100)
        return TraceBuilder(tmp_path / f"{name}.sqlite", **kw)

    return make


@pytest.fixture(scope="session")
def edge():
    from nsysparse import open_trace

    with open_trace(DATA / "edge.sqlite") as t:
        yield t
