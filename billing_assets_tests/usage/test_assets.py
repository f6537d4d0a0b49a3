"""The daily job run for real: Dagster instance on disk, moto's S3 server on loopback."""

import gzip

import dagster as dg
import pyarrow as pa

from billing_assets.definitions import defs
from billing_assets.lib.lake import BillingLake
from billing_assets.metering.checks import ties_to_events
from billing_assets.resources import billing_lake
from billing_assets.usage.checks import conservation
from billing_assets_tests.conftest import reference_files
from billing_assets_tests.usage.conftest import DAY, PREFIX, run_day
from billing_assets_tests.usage.helpers import event

def metadata_of(result, asset):
    for event_record in result.get_asset_materialization_events():
        materialization = event_record.event_specific_data.materialization
        if materialization.asset_key == dg.AssetKey(asset):
            return {key: value.value for key, value in materialization.metadata.items()}
    raise AssertionError(f"{asset} not materialised")


def test_a_day_materialises_with_every_check_passing(seeded, s3, bucket):
    with dg.instance_for_test() as instance:
        result = run_day(instance)
        assert result.success
        checks = {evaluation.check_name: evaluation.passed for evaluation in result.get_asset_check_evaluations()}
        assert checks == {
            "usage_events_matches_contract": True, "quarantined_events_matches_contract": True,
            "duplicate_events_matches_contract": True, "usage_lines_conserved": True,
            "metered_usage_matches_contract": True, "metered_usage_ties_to_events": True,
            "sla_report_matches_contract": True, "usage_alerts_matches_contract": True,
            # one day of history: every row is insufficient_history, so nothing to warn of
            "usage_anomalies_matches_contract": True, "anomalies_cover_active_contracts": True,
            "no_unexplained_usage_anomalies": True,
            # BILLING_PROVIDER unset: the ledger is empty and ties trivially
            "provider_sync_matches_contract": True, "provider_sync_adds_up": True,
            "provider_sync_acknowledged": True,
        }
        assert all(evaluation.partition == DAY for evaluation in result.get_asset_check_evaluations())
        usage = metadata_of(result, "usage_events")
        # 7 lines: a1 a2 a3 b1 accepted; a1 again a duplicate; "{not json" and hooli quarantined
        assert (usage["lines_read"], usage["accepted"], usage["duplicates"], usage["quarantined"]) == (7, 4, 1, 2)
        assert usage["quarantined/malformed_json"] == 1 and usage["quarantined/no_active_contract"] == 1
        assert usage["unreadable_objects"] == [PREFIX + "part-3.jsonl.gz"]
        assert usage["dagster/row_count"] == 4
        assert metadata_of(result, "quarantined_events")["dagster/row_count"] == 3  # two lines and one file
        assert metadata_of(result, "metered_usage")["dagster/row_count"] == 3  # acme × 3 meters
    listed = {item["Key"] for item in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert {f"warehouse/{table}/dt={DAY}/part-00000.parquet"
            for table in ("usage_events", "quarantined_events", "duplicate_events", "metered_usage")} <= listed
    assert f"quarantine/usage/dt={DAY}/files/part-3.jsonl.gz" in listed
    quarantined = gzip.decompress(s3.get_object(Bucket=bucket, Key=f"quarantine/usage/dt={DAY}/lines.jsonl.gz")["Body"].read())
    assert b'"line": "{not json"' in quarantined


def test_rematerialising_a_day_gives_identical_bytes(seeded, s3, bucket):
    keys = [f"warehouse/{table}/dt={DAY}/part-00000.parquet"
            for table in ("usage_events", "quarantined_events", "duplicate_events", "metered_usage")]
    keys.append(f"quarantine/usage/dt={DAY}/lines.jsonl.gz")
    with dg.instance_for_test() as instance:
        assert run_day(instance).success
        first = [s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys]
        assert run_day(instance).success
        second = [s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys]
    assert first == second


def test_a_late_file_reingests_the_whole_day(seeded, put):
    with dg.instance_for_test() as instance:
        assert metadata_of(run_day(instance), "usage_events")["accepted"] == 4
        put({PREFIX + "late.jsonl": (event(event_id="late-1") + "\n" + event(event_id="b1", quantity="1") + "\n").encode()})
        usage = metadata_of(run_day(instance), "usage_events")
    assert (usage["lines_read"], usage["accepted"], usage["duplicates"]) == (9, 5, 2)


def test_a_broken_reference_file_fails_the_run_naming_file_and_row(put, day_objects):
    broken = "contract_id,customer_id,plan_id,start_date,end_date,discount_percent\nc1,acme,pro,2026-01-01,,\nc2,acme,pro,2026-01-03,,\n"
    put(reference_files(contracts_csv=broken) | day_objects)
    with dg.instance_for_test() as instance:
        result = run_day(instance)
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        assert "reference/contracts.csv, line 3: contract 'c2' overlaps contract 'c1' of customer 'acme'" in str(
            failure.event_specific_data.error.message)
        assert not result.get_asset_materialization_events()  # nothing downstream ran on it


def test_single_run_backfill_covers_a_range_in_one_run(put, day_objects):
    next_day = {key.replace(DAY, "2026-01-06"): body for key, body in day_objects.items() if key.endswith("part-1.jsonl")}
    next_day = {key: body.replace(b"2026-01-05", b"2026-01-06") for key, body in next_day.items()}
    put(reference_files() | day_objects | next_day)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [asset for asset in defs.assets if isinstance(asset, dg.AssetsDefinition)] + list(defs.asset_checks),
            selection=dg.AssetSelection.groups("usage", "metering"),
            instance=instance, resources=defs.resources,
            tags={"dagster/asset_partition_range_start": DAY, "dagster/asset_partition_range_end": "2026-01-06"},
        )
        assert result.success
        partitions = sorted(e.event_specific_data.materialization.partition
                            for e in result.get_asset_materialization_events()
                            if e.event_specific_data.materialization.asset_key == dg.AssetKey("metered_usage"))
        assert partitions == [DAY, "2026-01-06"]
        assert len(instance.get_runs()) == 1
        # each day's checks are recorded against that day, as a one-day run records them
        conserved = sorted((e.partition, e.passed) for e in result.get_asset_check_evaluations()
                           if e.check_name == "usage_lines_conserved" and e.partition)
        assert conserved == [(DAY, True), ("2026-01-06", True)]
        check_key = dg.AssetCheckKey(dg.AssetKey("usage_events"), "usage_lines_conserved")
        stored = instance.event_log_storage.get_asset_check_execution_history(check_key, limit=10)
        assert {record.event.asset_check_evaluation.partition for record in stored if record.event} >= {DAY, "2026-01-06"}


def lake() -> BillingLake:
    return billing_lake()


def test_conservation_check_catches_a_lost_line(seeded):
    with dg.instance_for_test() as instance:
        assert run_day(instance).success
    store = lake()
    events = store.read_table("usage_events", DAY)
    store.write_table("usage_events", DAY, events.slice(1))  # one accepted event vanishes
    passed, metadata = conservation(store, DAY)
    assert not passed and metadata["unaccounted_lines"] == 1


def test_a_check_failing_beside_another_still_blocks_metering(seeded):
    # usage_events' contract and conservation run in one step, side by side: a lost line fails
    # the recount alone, each check keeps its own verdict, and metering of the day does not run
    with dg.instance_for_test() as instance:
        assert run_day(instance).success
        store = lake()
        store.write_table("usage_events", DAY, store.read_table("usage_events", DAY).slice(1))
        result = dg.materialize(
            [asset for asset in defs.assets if isinstance(asset, dg.AssetsDefinition)] + list(defs.asset_checks),
            selection=dg.AssetSelection.checks_for_assets("usage_events") | dg.AssetSelection.assets("metered_usage"),
            instance=instance, resources=defs.resources, partition_key=DAY, raise_on_error=False)
        verdicts = {e.check_name: (e.passed, e.severity) for e in result.get_asset_check_evaluations()}
        assert verdicts["usage_lines_conserved"] == (False, dg.AssetCheckSeverity.ERROR)
        assert verdicts["usage_events_matches_contract"] == (True, dg.AssetCheckSeverity.ERROR)
        assert "metered_usage_matches_contract" not in verdicts
        assert not [e for e in result.get_asset_materialization_events()
                    if e.event_specific_data.materialization.asset_key == dg.AssetKey("metered_usage")]


def test_metering_tie_check_catches_a_changed_quantity(seeded):
    with dg.instance_for_test() as instance:
        assert run_day(instance).success
    store = lake()
    metered = store.read_table("metered_usage", DAY)
    rows = metered.to_pylist()
    for row in rows:
        if row["meter"] == "egress_gb":
            row["quantity"] += 1
    store.write_table("metered_usage", DAY, pa.Table.from_pylist(rows, schema=metered.schema))
    passed, metadata = ties_to_events(store, DAY)
    assert not passed and metadata["breaks"] == 1 and "egress_gb" in metadata["first_breaks"]


def test_a_failed_run_leaves_the_previous_partition_readable(seeded, s3, bucket, monkeypatch):
    key = f"warehouse/usage_events/dt={DAY}/part-00000.parquet"
    with dg.instance_for_test() as instance:
        assert run_day(instance).success
        before = s3.get_object(Bucket=bucket, Key=key)["Body"].read()

        def crash(*args, **kwargs):
            raise RuntimeError("the node died mid-ingest")

        monkeypatch.setattr("billing_assets.usage.assets.ingest_into", crash)
        assert not run_day(instance).success
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == before


def test_a_json_number_reaches_metered_usage_unchanged(put):
    line = ('{"event_id":"exact","timestamp":"2026-01-05T10:00:00Z","meter":"egress_gb","customer_id":"acme",'
            '"quantity":12345678.123456789}\n')
    put(reference_files() | {PREFIX + "exact.jsonl": line.encode()})
    with dg.instance_for_test() as instance:
        assert run_day(instance).success
    store = billing_lake()
    metered = store.read_table("metered_usage", DAY).to_pylist()
    assert [(row["meter"], str(row["quantity"])) for row in metered] == [("egress_gb", "12345678.123456789")]
    for table in ("usage_events", "metered_usage"):
        schema = store.read_table(table, DAY).schema
        assert not [field.name for field in schema if pa.types.is_floating(field.type)], table


def test_metering_tie_check_catches_a_lost_metered_row_and_a_changed_count(seeded):
    with dg.instance_for_test() as instance:
        assert run_day(instance).success
    store = lake()
    metered = store.read_table("metered_usage", DAY)
    rows = sorted(metered.to_pylist(), key=lambda row: (row["customer_id"], row["meter"]))
    lost, changed = rows[0], rows[1]
    changed["event_count"] += 2
    store.write_table("metered_usage", DAY, pa.Table.from_pylist(rows[1:], schema=metered.schema))
    passed, metadata = ties_to_events(store, DAY)
    key = (lost["customer_id"], lost["meter"])
    assert not passed and metadata["breaks"] == 2
    assert f"{key}: {lost['event_count']} accepted events but no metered row" in metadata["first_breaks"]
    assert f"event_count {changed['event_count']} vs {changed['event_count'] - 2} accepted" in metadata["first_breaks"]
