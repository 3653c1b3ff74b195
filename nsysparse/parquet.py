"""Tables to Parquet: one writer for every table nsysparse writes, in slices,
with the provenance every output carries in the file's key-value metadata."""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__


def file_metadata(input: dict[str, Any], settings: dict[str, Any]) -> dict[str, str]:
    """What every output file carries: tool version, the input's nsys version,
    schema and sha256, the settings (``Settings.to_dict()``)."""
    return {
        "nsysparse_version": __version__,
        "nsys_version": str(input["nsys_version"]),
        "export_schema": str(input["schema_version"]),
        "input_sha256": str(input["sha256"]),
        "settings": json.dumps(settings, sort_keys=True),
    }


CHUNK_ROWS = 1 << 19  # rows converted to Arrow at a time: a table's file is written in slices of this


class Cancelled(Exception):
    """A write stopped by its ``cancel`` event (the file is left unfinished)."""


def write_parquet(df: pd.DataFrame, path: Path, meta: dict[str, str], chunk_rows: int | None = None,
                  cancel: threading.Event | None = None) -> None:
    """One table to Parquet, with ``meta`` in the file's key-value metadata.

    The frame goes to Arrow one slice of ``chunk_rows`` rows at a time, each
    written as it is made: a table of millions of API calls never exists twice
    in memory. Categorical columns go to Parquet as the dictionaries they are
    (Parquet stores text dictionary-encoded anyway), not spelled out a string
    per row first (a kernel name per launch: 4x slower), while the file's Arrow
    schema (``ARROW:schema``, written by hand as Arrow writes it) says plain
    values, so every trace's file has one schema. The file holds the same
    schema, metadata and values as one ``from_pandas`` of the whole frame with
    its categoricals cast to values (tests/test_scale.py), in more row groups.
    ``cancel`` set stops the write between slices (raises :class:`Cancelled`).
    """
    step = chunk_rows or CHUNK_ROWS
    schema = arrow_schema(df, meta)  # what the file says
    encoded = pa.Schema.from_pandas(df, preserve_index=False).remove_metadata()  # what is written
    kv = {**(schema.metadata or {}), b"ARROW:schema": base64.b64encode(schema.serialize().to_pybytes())}
    with pq.ParquetWriter(path, encoded, store_schema=False) as writer:
        for lo in range(0, max(len(df), 1), step):
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"{path}: stopped")
            part = pa.Table.from_pandas(df.iloc[lo:lo + step], preserve_index=False)
            writer.write_table(part.replace_schema_metadata(None).cast(encoded))
        writer.add_key_value_metadata(kv)


def arrow_schema(df: pd.DataFrame, meta: dict[str, str] | None = None) -> pa.Schema:
    """The Arrow schema of :func:`arrow_table` of ``df`` (types inferred over the
    whole frame, so a slice of all-null text still gets its column's type), with
    ``meta`` added to its key-value metadata as ``nsysparse.<key>``."""
    schema = pa.Schema.from_pandas(df, preserve_index=False)
    fields = [f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f for f in schema]
    merged = {**(schema.metadata or {}), **{f"nsysparse.{k}".encode(): v.encode() for k, v in (meta or {}).items()}}
    return pa.schema(fields, metadata=merged)


def arrow_table(df: pd.DataFrame, schema: pa.Schema | None = None) -> pa.Table:
    """``df`` as an Arrow table whose categorical columns are plain strings, so every
    trace's file has one schema (decoded in Arrow's C++, not row by row in Python);
    with ``schema`` (:func:`arrow_schema`), exactly that schema."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    for i, f in enumerate(table.schema):
        if pa.types.is_dictionary(f.type):
            table = table.set_column(i, f.name, table.column(i).cast(f.type.value_type))
    if schema is not None:
        table = table.cast(schema.remove_metadata()).replace_schema_metadata(schema.metadata)
    return table
