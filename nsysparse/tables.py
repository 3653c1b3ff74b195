"""A report's tables: each held in memory, or written to its Parquet file
already (spilled) and read back from that file when asked for.

A long trace's raw API calls are the largest table a report holds (15.5M calls,
0.9 GB, in a 2 GB export), and most of their columns (the correlation id, the
return value, the duration) are only ever written out. ``build_report(...,
spill_to=FOLDER)`` writes that table to its Parquet file as soon as it is read
and analyses the few columns it needs; the report's :class:`Tables` then hold a
:class:`Spilled` for it, which reads the file back, with the frame's own dtypes,
whenever someone asks for the table. A report folder writer links the spilled
file into the folder rather than writing it again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from .parquet import write_parquet


@dataclass
class Spilled:
    """A table written to ``path``: ``rows`` rows of ``dtypes`` (column -> the
    frame's dtype, in column order)."""

    path: Path
    rows: int
    dtypes: dict[str, object]

    def frame(self) -> pd.DataFrame:
        """The table as it was in memory: same columns, dtypes (categories in their
        order) and values."""
        return self._read()

    def window(self, lo: int, hi: int) -> pd.DataFrame:
        """The rows that overlap ``[lo, hi)`` (``start_ns < hi`` and ``end_ns > lo``),
        as :meth:`frame` has them: only the row groups whose times can hold one are read."""
        f = pq.ParquetFile(self.path, read_dictionary=self._categorical())
        md, names = f.metadata, f.schema_arrow.names
        s, e = names.index("start_ns"), names.index("end_ns")
        groups = []
        for g in range(md.num_row_groups):  # a row group's statistics say whether a row of it can overlap
            rg = md.row_group(g)
            first, last = rg.column(s).statistics, rg.column(e).statistics
            if rg.num_rows and not (first is not None and first.has_min_max and first.min >= hi) \
                    and not (last is not None and last.has_min_max and last.max <= lo):
                groups.append(g)
        df = f.read_row_groups(groups).to_pandas() if groups else f.schema_arrow.empty_table().to_pandas()
        return overlapping(df, lo, hi).reset_index(drop=True).astype(self.dtypes)

    def _categorical(self) -> list[str]:
        return [c for c, t in self.dtypes.items() if isinstance(t, pd.CategoricalDtype)]

    def _read(self) -> pd.DataFrame:
        df = pq.read_table(self.path, read_dictionary=self._categorical()).to_pandas()
        return df.astype(self.dtypes)


def overlapping(df: pd.DataFrame, lo: int, hi: int) -> pd.DataFrame:
    """The rows of ``df`` that overlap ``[lo, hi)``: ``start_ns < hi`` and ``end_ns > lo``."""
    return df[(df["start_ns"].to_numpy() < hi) & (df["end_ns"].to_numpy() > lo)]


def spill(df: pd.DataFrame, path: Path, meta: dict[str, str], cancel: threading.Event | None = None) -> Spilled:
    """Write ``df`` to ``path`` as the report folder would (``meta``: the file's
    provenance) and return the handle that reads it back; ``cancel`` set stops
    the write between slices (:class:`nsysparse.parquet.Cancelled`)."""
    write_parquet(df, path, meta, cancel=cancel)
    return Spilled(Path(path), len(df), dict(df.dtypes.items()))


class Tables(MutableMapping[str, pd.DataFrame]):
    """Table name -> DataFrame, in insertion order; a :class:`Spilled` value is
    read back from its file on each access (nothing of it stays in memory)."""

    def __init__(self, tables: Mapping[str, pd.DataFrame | Spilled] | None = None) -> None:
        self._t: dict[str, pd.DataFrame | Spilled] = dict(tables or {})

    def __getitem__(self, name: str) -> pd.DataFrame:
        v = self._t[name]
        return v.frame() if isinstance(v, Spilled) else v

    def __setitem__(self, name: str, value: pd.DataFrame | Spilled) -> None:  # type: ignore[override]
        self._t[name] = value

    def __delitem__(self, name: str) -> None:
        del self._t[name]

    def __contains__(self, name: object) -> bool:  # Mapping's would read a spilled table back to answer
        return name in self._t

    def __iter__(self) -> Iterator[str]:
        return iter(self._t)

    def __len__(self) -> int:
        return len(self._t)

    def __repr__(self) -> str:
        return "Tables(" + ", ".join(f"{k}: {self.rows(k)} rows" + (" (spilled)" if self.spilled(k) else "")
                                     for k in self._t) + ")"

    def rows(self, name: str) -> int:
        """The table's row count, without reading a spilled table back."""
        v = self._t[name]
        return v.rows if isinstance(v, Spilled) else len(v)

    def spilled(self, name: str) -> Spilled | None:
        """The handle of a spilled table, or None for one held in memory."""
        v = self._t[name]
        return v if isinstance(v, Spilled) else None

    def window(self, name: str, lo: int, hi: int) -> pd.DataFrame:
        """The rows of table ``name`` (with ``start_ns`` and ``end_ns``) that overlap
        ``[lo, hi)``, in table order; of a spilled table, only those are read back."""
        v = self._t[name]
        return v.window(lo, hi) if isinstance(v, Spilled) else overlapping(v, lo, hi)

    def in_memory(self) -> dict[str, pd.DataFrame]:
        """The tables held in memory (a spilled table is not read back)."""
        return {k: v for k, v in self._t.items() if not isinstance(v, Spilled)}
