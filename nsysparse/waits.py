"""Host wait (bubble ratio): time each step's thread spends inside wait ranges."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from . import intervals as iv


def wait_ranges(ranges: pd.DataFrame, pattern: str, exclude_text: str | None = None) -> pd.DataFrame:
    """NVTX ranges whose text matches ``pattern`` (``re.search``, case-sensitive).

    Ranges whose text is ``exclude_text`` (the step range) never count as waits.
    """
    r = ranges
    if r.empty:
        return r
    rx = re.compile(pattern)
    texts = pd.Series(r["text"].unique())
    hits = set(texts[texts.map(lambda t: rx.search(t) is not None)])  # per distinct name, not per row
    hits.discard(exclude_text)
    return r[r["text"].isin(hits)]


def step_wait_ns(waits: pd.DataFrame, steps: pd.DataFrame) -> np.ndarray:
    """Per step: |union of wait ranges on the step's thread, clipped to the step| in ns.

    The union, never the sum: engines nest a C++ barrier inside a Python one of
    the same name, and a sum would count it twice.
    """
    return iv.clipped_union_by_thread(waits, steps)
