"""Pandera models as the data contract of every warehouse table, run as blocking asset checks.

dagster-pandera turns a model into a Dagster type (a failed type check fails the step and
records no check), so it is used only for what it does well: deriving the column schema the
UI shows. Validation runs inside partition-aware asset checks that read the stored partition.
"""


import copy
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import duckdb
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.parquet as pq
from dagster_pandera import pandera_schema_to_dagster_type
# a check evaluation logged per partition names the materialization it judged; Dagster 1.13 keeps
# the type of that pointer out of its public namespace
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationTargetMaterializationData

from billing_assets.lib.lake import BillingLake
from billing_assets.lib.memory import give_back_memory


def column_schema(model: type[pa.DataFrameModel]) -> dg.TableSchema:
    """The model's columns, types, descriptions and constraints as Dagster shows them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return pandera_schema_to_dagster_type(model).metadata["schema"].schema


def table_metadata(table: str, model: type[pa.DataFrameModel]) -> dict:
    """Definition metadata of a warehouse table: its columns (from the pandera model), name, and
    where its contract is written (docs/tables.md is generated from these)."""
    return {"dagster/column_schema": column_schema(model), "dagster/table_name": f"warehouse.{table}",
            "contract": dg.MetadataValue.text(f"{model.__module__}.{model.__name__}")}


def as_frame(table: pa_arrow.Table) -> pd.DataFrame:
    """Arrow-backed pandas: decimals stay exact, nullable integers stay integers."""
    return table.to_pandas(types_mapper=pd.ArrowDtype)


def markdown_preview(table: pa_arrow.Table, rows: int = 10) -> dg.MetadataValue:
    return dg.MetadataValue.md(table.slice(0, rows).to_pandas().to_markdown(index=False))


VALIDATION_BATCH_ROWS = 200_000  # pandera holds about 3 KiB a row while it validates
# DuckDB beside the job: a bounded share of memory, spilling to disk past it
DUCKDB_CONFIG = {"memory_limit": "512MB", "threads": 2, "preserve_insertion_order": "false"}


def parquet_relation(path: str) -> str:
    """DuckDB's read of a local Parquet file, as SQL (a view cannot take a parameter)."""
    return "read_parquet('" + path.replace("'", "''") + "')"


def _batches(source: pa_arrow.Table | str, batch_rows: int):
    if isinstance(source, str):
        # the next batch is decoded while this one is validated (decoding releases the GIL;
        # pandera does not), one batch ahead at most
        batches = pq.ParquetFile(source).iter_batches(batch_size=batch_rows)
        with ThreadPoolExecutor(max_workers=1) as pool:
            ahead = pool.submit(next, batches, None)
            while (batch := ahead.result()) is not None:
                ahead = pool.submit(next, batches, None)
                yield pa_arrow.Table.from_batches([batch])
        return
    for start in range(0, max(source.num_rows, 1), batch_rows):
        yield source.slice(start, batch_rows)


def _repeated(source: pa_arrow.Table | str, columns: list[str]) -> tuple[int, list[str]]:
    """Rows of ``source`` (a table, or a Parquet file's path) whose ``columns`` repeat, found by
    DuckDB (which spills past its memory limit): (how many distinct repeated keys, a sample)."""
    names = ", ".join(f'"{name}"' for name in columns)
    with duckdb.connect(config=DUCKDB_CONFIG) as connection:
        if isinstance(source, str):
            relation = parquet_relation(source)
        else:
            connection.register("source_table", source)
            relation = "source_table"
        repeated = connection.sql(f"SELECT {names}, count(*) AS n FROM {relation} GROUP BY ALL HAVING n > 1 "
                                  f"ORDER BY {names}").fetchall()
    return len(repeated), [str(dict(zip(columns, row[:-1]))) for row in repeated[:20]]


def validate_against(model: type[pa.DataFrameModel], source: pa_arrow.Table | str,
                     batch_rows: int = VALIDATION_BATCH_ROWS) -> tuple[bool, dict]:
    """(passed, metadata) for one stored table (or the path of its Parquet file). Rows are
    validated ``batch_rows`` at a time (a day of tens of millions of events is never one pandas
    frame, nor held whole); the model's table-wide uniqueness is checked over every row by DuckDB,
    first, so that the two never hold their memory at once."""
    row_schema = copy.deepcopy(model.to_schema())
    unique, row_schema.unique = row_schema.unique, None
    cases, rows = [], 0
    if unique:  # first, and its memory given back before pandera's batches take theirs
        count, sample = _repeated(source, list(unique))
        give_back_memory()
        if count:
            cases.append(pd.DataFrame({
                "schema_context": "DataFrameSchema", "column": ", ".join(unique),
                "check": f"unique {list(unique)}", "check_number": None, "failure_case": sample, "index": None}))
    for batch in _batches(source, batch_rows):
        try:
            row_schema.validate(as_frame(batch), lazy=True)
        except pa.errors.SchemaErrors as errors:
            cases.append(errors.failure_cases.assign(index=lambda frame, start=rows: frame["index"] + start)
                         if "index" in errors.failure_cases else errors.failure_cases)
        rows += batch.num_rows
    if cases:
        failures = pd.concat(cases, ignore_index=True)
        return False, {
            "failures": len(failures),
            "failure_sample": dg.MetadataValue.md(failures.head(20).to_markdown(index=False)),
        }
    return True, {"dagster/row_count": rows}


def _validate_stored(model: type[pa.DataFrameModel], table: str) -> Callable[[BillingLake, str], tuple[bool, dict]]:
    def evaluate(lake: BillingLake, partition: str) -> tuple[bool, dict]:
        with lake.local_partition(table, partition) as path:
            return validate_against(model, path)
    return evaluate


def pandera_asset_check(
    *,
    asset: dg.AssetKey | str,
    table: str,
    model: type[pa.DataFrameModel],
    partitions_def: dg.PartitionsDefinition,
) -> dg.AssetChecksDefinition:
    """A blocking check that validates every partition the run materialised against ``model``."""
    return partition_check(
        asset=asset,
        name=f"{table}_matches_contract",
        description=f"Every row of `{table}` satisfies the pandera model `{model.__name__}`.",
        partitions_def=partitions_def,
        evaluate=_validate_stored(model, table),
    )


def _target(instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition: str):
    """The partition's latest materialization, which its evaluation judged: without it the UI takes
    the evaluation for one of an older materialization and shows the partition as never checked
    (Dagster links a check's own result to it, but not an evaluation logged per partition)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition]), limit=1).records
    if not records:
        return None
    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=records[0].storage_id, run_id=records[0].run_id, timestamp=records[0].timestamp)


def partition_check(
    *,
    asset: dg.AssetKey | str,
    name: str,
    description: str,
    partitions_def: dg.PartitionsDefinition,
    evaluate: Callable[[BillingLake, str], tuple[bool, dict]],
    blocking: bool = True,
) -> dg.AssetChecksDefinition:
    """A partition-aware check, blocking unless said otherwise (then a failure is a warning:
    statistical findings are for people to look at, never a reason to stop the chain). A
    single-run backfill evaluates every partition of its range: each partition's outcome is
    recorded against that partition (so the UI shows it per day), and the run's result fails if
    any of them does."""
    severity = dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN

    @dg.asset_check(asset=asset, name=name, description=description, blocking=blocking, partitions_def=partitions_def)
    def _check(context: dg.AssetCheckExecutionContext, lake: BillingLake) -> dg.AssetCheckResult:
        keys = context.op_execution_context.partition_keys
        outcomes = {}
        for key in keys:
            outcomes[key] = evaluate(lake, key)
            give_back_memory()
        failed = [key for key, (passed, _) in outcomes.items() if not passed]
        if len(keys) == 1:
            passed, metadata = outcomes[keys[0]]
            return dg.AssetCheckResult(passed=passed, metadata=metadata, severity=severity)
        asset_key = context.check_specs[0].asset_key
        for key, (passed, metadata) in outcomes.items():
            context.op_execution_context.log_event(dg.AssetCheckEvaluation(
                asset_key=asset_key, check_name=name, passed=passed, metadata=metadata, partition=key,
                severity=severity, target_materialization_data=_target(context.instance, asset_key, key)))
        return dg.AssetCheckResult(
            passed=not failed, severity=severity,
            metadata={"partitions_checked": len(keys), "failed_partitions": ", ".join(failed) or "none"},
        )

    return _check
