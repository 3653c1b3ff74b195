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
        cats = [c for c, t in self.dtypes.items() if isinstance(t, pd.CategoricalDtype)]
        df = pq.read_table(self.path, read_dictionary=cats).to_pandas()
        return df.astype(self.dtypes)


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

    def in_memory(self) -> dict[str, pd.DataFrame]:
        """The tables held in memory (a spilled table is not read back)."""
        return {k: v for k, v in self._t.items() if not isinstance(v, Spilled)}
