"""The declaration in schema.py is the one source: of each SELECT, each empty
frame, each built frame's columns and dtypes, and of lacks()."""

from __future__ import annotations

import pytest

from nsysparse import schema as S
from nsysparse.trace import open_trace
from tests.conftest import DATA

OUT = {"nvtx_ranges": S.NVTX_RANGES_OUT, "marks": S.MARKS_OUT, **{d.key: d.out for d in S.TABLES if d.out}}


def _shape(df) -> list[tuple[str, str]]:
    return [(c, str(d)) for c, d in df.dtypes.items()]


@pytest.mark.parametrize("key", sorted(OUT))
def test_built_and_empty_frames_are_the_declared_shape(key, make_builder):
    declared = [(c, "category" if d == "category" else d) for c, d in OUT[key]]
    b = make_builder("bare")
    b.api("cudaFree", 10, 20)  # CUDA activity, nothing else
    with open_trace(b.write()) as empty:
        assert _shape(getattr(empty, key)) == declared
    for name in ("graphs", "edge"):
        with open_trace(DATA / f"{name}.sqlite") as t:
            frame = getattr(t, key)
            assert _shape(frame) == declared, name


def test_memcpy_and_memset_bytes_are_int64_empty_or_not(make_builder):
    b = make_builder("bare")
    b.api("cudaFree", 10, 20)
    with open_trace(b.write()) as t, open_trace(DATA / "edge.sqlite") as e:
        assert str(t.memset["bytes"].dtype) == str(e.memset["bytes"].dtype) == "int64"
        assert str(t.memcpy["bytes"].dtype) == str(e.memcpy["bytes"].dtype) == "int64"


def test_lacks_comes_from_the_declaration(make_builder):
    b = make_builder("bare", enums=False)
    b.api("cudaFree", 10, 20)
    with open_trace(b.write()) as t:
        assert t.lacks() == [d.lacks for d in S.TABLES if d.lacks and d.name != S.T_RUNTIME]
        assert t.lacks() == ["NVTX ranges (trace with `-t cuda,nvtx`)", "kernels", "memory copies"]


def test_os_calls(fixture_path):
    with open_trace(fixture_path("edge")) as t:
        o = t.os_calls
        assert len(o) > 0 and (o["dur_ns"] == o["end_ns"] - o["start_ns"]).all()
        assert o["name"].notna().all()


def test_every_declared_column_name_is_unique_per_table():
    for d in S.TABLES:
        names = [c.name for c in d.cols]
        assert len(names) == len(set(names)), d.name
