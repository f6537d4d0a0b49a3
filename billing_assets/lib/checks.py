"""Pandera models as the data contract of every warehouse table, run as blocking asset checks.

dagster-pandera turns a model into a Dagster type (a failed type check fails the step and
records no check), so it is used only for what it does well: deriving the column schema the
UI shows. Validation runs inside partition-aware asset checks that read the stored partition.
"""


import copy
import warnings
from collections.abc import Callable

import dagster as dg
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.compute as pc
from dagster_pandera import pandera_schema_to_dagster_type

from billing_assets.lib.lake import BillingLake


def column_schema(model: type[pa.DataFrameModel]) -> dg.TableSchema:
    """The model's columns, types, descriptions and constraints as Dagster shows them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return pandera_schema_to_dagster_type(model).metadata["schema"].schema


def table_metadata(table: str, model: type[pa.DataFrameModel]) -> dict:
    """Definition metadata of a warehouse table: its columns (from the pandera model) and name."""
    return {"dagster/column_schema": column_schema(model), "dagster/table_name": f"warehouse.{table}"}


def as_frame(table: pa_arrow.Table) -> pd.DataFrame:
    """Arrow-backed pandas: decimals stay exact, nullable integers stay integers."""
    return table.to_pandas(types_mapper=pd.ArrowDtype)


def markdown_preview(table: pa_arrow.Table, rows: int = 10) -> dg.MetadataValue:
    return dg.MetadataValue.md(table.slice(0, rows).to_pandas().to_markdown(index=False))


VALIDATION_BATCH_ROWS = 500_000


def validate_against(model: type[pa.DataFrameModel], table: pa_arrow.Table,
                     batch_rows: int = VALIDATION_BATCH_ROWS) -> tuple[bool, dict]:
    """(passed, metadata) for one stored table. Rows are validated ``batch_rows`` at a time (a
    day of tens of millions of events never becomes one pandas frame); the model's table-wide
    uniqueness is then checked over the whole table by Arrow's group-by."""
    row_schema = copy.deepcopy(model.to_schema())
    unique, row_schema.unique = row_schema.unique, None
    cases = []
    for start in range(0, max(table.num_rows, 1), batch_rows):
        try:
            row_schema.validate(as_frame(table.slice(start, batch_rows)), lazy=True)
        except pa.errors.SchemaErrors as errors:
            cases.append(errors.failure_cases.assign(index=lambda frame, start=start: frame["index"] + start)
                         if "index" in errors.failure_cases else errors.failure_cases)
    if unique and table.num_rows:
        counts = table.group_by(list(unique)).aggregate([([], "count_all")])
        repeated = counts.filter(pc.greater(counts.column("count_all"), 1))
        if repeated.num_rows:
            cases.append(pd.DataFrame({
                "schema_context": "DataFrameSchema", "column": ", ".join(unique),
                "check": f"unique {list(unique)}", "check_number": None,
                "failure_case": [str(row) for row in repeated.slice(0, 20).to_pylist()], "index": None}))
    if cases:
        failures = pd.concat(cases, ignore_index=True)
        return False, {
            "failures": len(failures),
            "failure_sample": dg.MetadataValue.md(failures.head(20).to_markdown(index=False)),
        }
    return True, {"dagster/row_count": table.num_rows}


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
        evaluate=lambda lake, partition: validate_against(model, lake.read_table(table, partition)),
    )


def partition_check(
    *,
    asset: dg.AssetKey | str,
    name: str,
    description: str,
    partitions_def: dg.PartitionsDefinition,
    evaluate: Callable[[BillingLake, str], tuple[bool, dict]],
) -> dg.AssetChecksDefinition:
    """A blocking, partition-aware check. A single-run backfill evaluates every partition of its
    range: each partition's outcome is recorded against that partition (so the UI shows it per
    day), and the run's result fails if any of them does."""

    @dg.asset_check(asset=asset, name=name, description=description, blocking=True, partitions_def=partitions_def)
    def _check(context: dg.AssetCheckExecutionContext, lake: BillingLake) -> dg.AssetCheckResult:
        keys = context.op_execution_context.partition_keys
        outcomes = {key: evaluate(lake, key) for key in keys}
        failed = [key for key, (passed, _) in outcomes.items() if not passed]
        if len(keys) == 1:
            passed, metadata = outcomes[keys[0]]
            return dg.AssetCheckResult(passed=passed, metadata=metadata)
        for key, (passed, metadata) in outcomes.items():
            context.op_execution_context.log_event(dg.AssetCheckEvaluation(
                asset_key=context.check_specs[0].asset_key, check_name=name, passed=passed,
                metadata=metadata, partition=key))
        return dg.AssetCheckResult(
            passed=not failed,
            metadata={"partitions_checked": len(keys), "failed_partitions": ", ".join(failed) or "none"},
        )

    return _check
