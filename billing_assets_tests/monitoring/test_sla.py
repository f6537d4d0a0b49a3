"""SLA freshness: the metering deadline per day, issuing on time per month, and the daily report.

Deadline arithmetic is judged with fixed clocks; the checks themselves run against a real
instance and the S3 server, whose LastModified is the real clock, so their clocks are set
relative to it."""

from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest

from billing_assets.invoicing.policy import BillingPolicy
from billing_assets.lib.lake import StoredObject
from billing_assets.monitoring.checks import invoices_issued_on_time, metered_by_deadline
from billing_assets.monitoring.sla import SlaPolicy, judge_day
from billing_assets.resources import billing_lake
from billing_assets_tests.conftest import reference_files

UTC = timezone.utc
DEADLINE = datetime(2026, 10, 6, 6, tzinfo=UTC)  # 2026-10-05 is due at 06:00 the next day


def landed(*times: datetime) -> list[StoredObject]:
    return [StoredObject(f"raw/usage/dt=2026-10-05/{n}.jsonl", 1, f"etag{n}", at) for n, at in enumerate(times)]


def test_the_default_deadline_is_six_the_next_morning():
    assert SlaPolicy().metered_deadline("2026-10-05") == DEADLINE
    assert SlaPolicy(metered_by_hour=2).metered_deadline("2026-12-31") == datetime(2027, 1, 1, 2, tzinfo=UTC)


@pytest.mark.parametrize(("metered", "severity"), [
    ([DEADLINE - timedelta(seconds=1)], "met"),
    ([DEADLINE], "met"),                               # at the deadline is on time
    ([DEADLINE + timedelta(seconds=1)], "missed"),
    ([datetime(2026, 10, 5, 23, tzinfo=UTC)], "missed"),  # metered before the last on-time file landed
    ([], "missed"),
])
def test_a_day_is_met_only_by_a_metering_after_its_last_on_time_file_and_by_the_deadline(metered, severity):
    files = landed(datetime(2026, 10, 5, 12, tzinfo=UTC), datetime(2026, 10, 6, 1, tzinfo=UTC))
    assert judge_day("2026-10-05", files, metered, DEADLINE).severity == severity


def test_files_after_the_deadline_are_the_producers_lateness():
    on_time_then_late = landed(datetime(2026, 10, 5, 12, tzinfo=UTC), DEADLINE + timedelta(hours=3))
    assert judge_day("2026-10-05", on_time_then_late, [datetime(2026, 10, 6, 2, tzinfo=UTC)], DEADLINE).severity == "met"
    all_late = landed(DEADLINE + timedelta(hours=3))
    assert judge_day("2026-10-05", all_late, [], DEADLINE).severity == "producer_late"
    assert judge_day("2026-10-05", [], [], DEADLINE).severity == "no_files"


def _metered_check(instance, sla: SlaPolicy):
    return metered_by_deadline(dg.build_asset_check_context(instance=instance), billing_lake(), sla)


def test_metered_by_deadline_passes_fails_and_warns(put, bucket):
    now = datetime.now(UTC)
    today = now.date().isoformat()
    put({f"raw/usage/dt={today}/a.jsonl": b"{}\n"})
    judged_tomorrow = (now.replace(hour=7, minute=0, second=0, microsecond=0) + timedelta(days=1)).isoformat()
    with dg.instance_for_test() as instance:
        missed = _metered_check(instance, SlaPolicy(as_of=judged_tomorrow, lookback_days=1))
        assert (missed.passed, missed.severity) == (False, dg.AssetCheckSeverity.ERROR)
        assert f"{today}: files landed by" in missed.description

        instance.report_runless_asset_event(dg.AssetMaterialization("metered_usage", partition=today))
        met = _metered_check(instance, SlaPolicy(as_of=judged_tomorrow, lookback_days=1))
        assert met.passed, met.description

        yesterday = (now.date() - timedelta(days=1)).isoformat()  # no files at all: a warning, not a miss
        warned = _metered_check(instance, SlaPolicy(as_of=judged_tomorrow, lookback_days=2))
        assert (warned.passed, warned.severity) == (False, dg.AssetCheckSeverity.WARN)
        assert f"{yesterday}: no usage landed" in warned.description


def _issued_check(instance, sla: SlaPolicy):
    return invoices_issued_on_time(dg.build_asset_check_context(instance=instance), sla, BillingPolicy(grace_hours=24))


def test_invoices_issued_on_time_needs_every_invoice_issued_by_grace_end_plus_six_hours():
    now = datetime.now(UTC)
    month = now.strftime("%Y-%m")
    following = (now.replace(day=28) + timedelta(days=5)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    just_due = (following + timedelta(hours=24 + 6)).isoformat()  # grace 24 h, then 6 h to issue
    not_yet = (following + timedelta(hours=24 + 6) - timedelta(seconds=1)).isoformat()
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization("metered_usage", partition=f"{month}-01"))
        instance.report_runless_asset_event(dg.AssetMaterialization(
            "invoices", partition=month, metadata={"invoices_draft": 3, "invoices_issued": 0}))
        assert _issued_check(instance, SlaPolicy(as_of=not_yet)).passed  # not due yet
        late = _issued_check(instance, SlaPolicy(as_of=just_due))
        assert not late.passed and f"{month}: invoices not all issued by" in late.description

        instance.report_runless_asset_event(dg.AssetMaterialization(
            "invoices", partition=month, metadata={"invoices_draft": 0, "invoices_issued": 3}))
        assert _issued_check(instance, SlaPolicy(as_of=just_due)).passed


def test_the_daily_sla_report_names_each_file_and_its_lateness(put):
    from billing_assets_tests.usage.conftest import run_day

    day = "2026-01-05"
    put(reference_files() | {f"raw/usage/dt={day}/a.jsonl": b"{}\n", f"raw/usage/dt={day}/b.jsonl": b"[]\n"})
    with dg.instance_for_test() as instance:
        assert run_day(instance, day).success
        [metered] = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("metered_usage"), asset_partitions=[day]), limit=1).records
    rows = billing_lake().read_table("sla_report", day).to_pylist()
    assert [row["object_key"] for row in rows] == [f"raw/usage/dt={day}/a.jsonl", f"raw/usage/dt={day}/b.jsonl"]
    deadline = datetime(2026, 1, 6, 6, tzinfo=UTC)
    assert all(row["deadline"] == deadline and row["landed_after_deadline"] for row in rows)  # landed today
    assert all(not row["landed_after_invoicing"] and row["invoices_issued_at"] is None for row in rows)
    expected_lateness = int(metered.timestamp - deadline.timestamp())
    assert abs(rows[0]["metered_lateness_seconds"] - expected_lateness) <= 1
