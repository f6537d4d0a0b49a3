"""Ledger rows (frozen dataclasses) to and from Arrow tables of the matching schema."""

import io
from dataclasses import astuple, fields

import pyarrow as pa
import pyarrow.parquet as pq


def check_schema(schema: pa.Schema, row_type: type) -> pa.Schema:
    """``schema``, asserted to name the row type's fields in order."""
    assert schema.names == [field.name for field in fields(row_type)], (schema.names, row_type)
    return schema


def to_table(rows: list, schema: pa.Schema) -> pa.Table:
    columns = list(zip(*(astuple(row) for row in rows))) or [[] for _ in schema.names]
    return pa.Table.from_arrays([pa.array(column, type=field.type) for column, field in zip(columns, schema)],
                                schema=schema)


def from_table(table: pa.Table, row_type: type) -> list:
    return [row_type(**row) for row in table.select([field.name for field in fields(row_type)]).to_pylist()]


def read_rows(lake, table: str, partition: str, row_type: type) -> list | None:
    """A ledger's stored partition as rows, None when it was never written."""
    body = lake.get_bytes_or_none(lake.partition_key(table, partition))
    return None if body is None else from_table(pq.read_table(io.BytesIO(body)), row_type)


def latest_provider_rows(ledger: list | None) -> tuple[str, list]:
    """The provider a ledger was last written for (its rows are the newest) and that provider's rows."""
    provider = ledger[-1].provider if ledger else "none"
    return provider, [row for row in ledger or [] if row.provider == provider]
