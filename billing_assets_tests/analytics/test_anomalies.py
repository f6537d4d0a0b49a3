"""`usage_anomalies` rows from hand-built metered days, with the revenue at risk worked out by
hand from the demo price book (pro: egress 0.08 a GB, base fee 49.00, minimum 100.00)."""

from datetime import date, timedelta
from decimal import Decimal

import pyarrow as pa
import pytest

from billing_assets.analytics.anomalies import anomaly_rows, history_days
from billing_assets.demo.synthetic import reference_objects
from billing_assets.metering.aggregate import METERED_USAGE_SCHEMA
from billing_assets.reference.loading import ReferenceDataError, load_reference
from billing_assets.reference.suppressions import SUPPRESSIONS_KEY, load_suppressions

DAY = date(2026, 10, 29)  # a Thursday, with 34 metered days before it
CONTRACTS = [("ct-acme-1", "acme", "pro", "2026-01-01", "", "")]
CUSTOMERS = [("acme", "Acme Corp", "USD")]
REFERENCE = load_reference(reference_objects(customers=CUSTOMERS, contracts=CONTRACTS, alerts=None,
                                             allocations=[("10.0.0.0/8", "acme", "2025-01-01", "")]).get)


def _day(day: date, gigabytes: str | None, events: int = 40) -> pa.Table:
    rows = [] if gigabytes is None else [{
        "day": day, "customer_id": "acme", "meter": "egress_gb", "aggregation": "sum",
        "quantity": Decimal(gigabytes), "event_count": events, "latest_timestamp": None,
        "latest_event_id": None, "distinct_values": None}]
    return pa.Table.from_pylist(rows, schema=METERED_USAGE_SCHEMA)


def _usage(today: str | None, before: str = "100") -> dict:
    return {day: _day(day, before if day < DAY else today) for day in history_days(DAY)}


def test_a_stopped_meter_priced_through_the_plan():
    table = anomaly_rows(DAY, _usage(None), REFERENCE)
    rows = {row["meter"]: row for row in table.to_pylist()}
    # the pro plan prices six meters: each judged, the five without any usage as zero
    assert sorted(rows) == ["active_users", "api_requests", "build_minutes", "egress_gb", "seats", "storage_gb_hours"]
    assert {rows[m]["kind"] for m in rows if m != "egress_gb"} == {"normal"}
    egress = rows["egress_gb"]
    assert egress["kind"] == "stopped_reporting" and egress["contract_id"] == "ct-acme-1"
    assert egress["observed"] == 0 and egress["baseline"] == 100
    assert egress["baseline_days"] == "2026-10-01,2026-10-08,2026-10-15,2026-10-22"
    # October so far: 28 days × 100 GB = 2,800 GB at 0.08 = 224.00; with the day at its usual
    # 100 GB: 2,900 GB = 232.00; base fee and minimum (49 + 224 > 100) cancel: 8.00 at risk
    assert egress["revenue_at_risk_minor"] == 800 and egress["currency"] == "USD"
    assert "No egress_gb events for 1 day" in egress["explanation"] and "USD 8.00 less" in egress["explanation"]
    assert rows["api_requests"]["revenue_at_risk_minor"] is None


def test_a_spike_is_over_billing_at_risk_and_a_normal_day_carries_none():
    egress = {row["meter"]: row for row in anomaly_rows(DAY, _usage("700"), REFERENCE).to_pylist()}["egress_gb"]
    # 600 GB above usual at 0.08: the month would bill 48.00 more if the spike is not real
    assert egress["kind"] == "spike" and egress["revenue_at_risk_minor"] == -4800
    assert "USD 48.00 more" in egress["explanation"]
    normal = {row["meter"]: row for row in anomaly_rows(DAY, _usage("104"), REFERENCE).to_pylist()}["egress_gb"]
    assert normal["kind"] == "normal" and normal["revenue_at_risk_minor"] is None


def test_unmetered_days_are_unknown_not_zero():
    usage = {day: (_day(day, "100") if day >= DAY - timedelta(days=10) else None) for day in history_days(DAY)}
    egress = {row["meter"]: row for row in anomaly_rows(DAY, usage, REFERENCE).to_pylist()}["egress_gb"]
    assert egress["kind"] == "insufficient_history"  # 10 known days of the 28


def _suppressions(text: str):
    return load_suppressions({SUPPRESSIONS_KEY: text.encode()}.get, REFERENCE)


def test_a_known_migration_is_marked_not_flagged():
    entries = _suppressions("customer_id,meter,from,to,why\nacme,egress_gb,2026-10-28,2026-10-30,moving to the v2 gateway\n")
    egress = {row["meter"]: row for row in anomaly_rows(DAY, _usage(None), REFERENCE, entries).to_pylist()}["egress_gb"]
    assert egress["kind"] == "stopped_reporting" and egress["suppressed_by"] == "moving to the v2 gateway"
    later = _suppressions("customer_id,meter,from,to,why\nacme,,2026-10-30,2026-10-31,later\n")
    assert {row["meter"]: row for row in anomaly_rows(DAY, _usage(None), REFERENCE, later).to_pylist()}[
        "egress_gb"]["suppressed_by"] is None


@pytest.mark.parametrize("text, where, problem", [
    ("customer,meter,from,to,why\n", "line 1", "the header must be"),
    ("customer_id,meter,from,to,why\nwayne,,2026-10-01,2026-10-02,x\n", "line 2", "'wayne' is not in"),
    ("customer_id,meter,from,to,why\nacme,teleport,2026-10-01,2026-10-02,x\n", "line 2", "'teleport' is not in"),
    ("customer_id,meter,from,to,why\nacme,,2026-10-01,2026-10-02,x\nacme,,20261001,2026-10-02,x\n", "line 3",
     "from must be a YYYY-MM-DD date"),
    ("customer_id,meter,from,to,why\nacme,,2026-10-05,2026-10-02,x\n", "line 2", "is after to"),
    ("customer_id,meter,from,to,why\nacme,,2026-10-01,2026-10-02, \n", "line 2", "why is empty"),
])
def test_a_bad_suppressions_file_fails_loudly(text, where, problem):
    with pytest.raises(ReferenceDataError) as raised:
        _suppressions(text)
    assert raised.value.file == SUPPRESSIONS_KEY and raised.value.row == where and problem in raised.value.problem


def test_scoring_only_the_series_that_moved_judges_as_scoring_every_day():
    import numpy as np

    from billing_assets.analytics.anomalies import judge
    from billing_assets.analytics.detect import Thresholds, classify, score_day

    rng = np.random.default_rng(7)
    quantity = rng.poisson(200, (300, 35)).astype(float)
    quantity[:40, -7:] *= 0.3  # held drops: level shifts
    quantity[40:80, -1] *= 3  # one-day spikes
    quantity[80:90, -3:] = 0  # stopped
    known = rng.random(quantity.shape) > 0.05
    is_count = rng.random(300) > 0.3
    thresholds = Thresholds()
    every_day = classify([score_day(quantity, quantity, known, is_count, column) for column in range(28, 35)], thresholds)
    kinds, _ = judge(quantity, quantity, known, is_count, thresholds)
    assert list(kinds) == list(every_day)
    assert {"level_shift", "spike", "stopped_reporting", "normal"} <= set(kinds)


def test_a_day_not_metered_yet_is_not_judged():
    usage = _usage("100") | {DAY: None}  # 34 usual days, and the day itself never ingested
    rows = anomaly_rows(DAY, usage, REFERENCE).to_pylist()
    assert {row["kind"] for row in rows} == {"insufficient_history"}
    assert all(row["explanation"] == "Not judged: 2026-10-29 is not metered yet." for row in rows)
