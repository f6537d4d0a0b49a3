"""Alerts and limits: crossing days worked out by hand, moved by a late file, undone by a
correction (a retraction beside the notice); the outbox written once whatever re-runs; the
entitlements file; a broken alerts.yaml named by file, entry and problem."""

import json

import dagster as dg
import pytest

from billing_assets.reference.alerts import load_alerts
from billing_assets.reference.loading import ReferenceDataError, load_reference
from billing_assets_tests.conftest import CONTRACTS, reference_files
from billing_assets.definitions import defs
from billing_assets_tests.usage.conftest import QUIET
from billing_assets_tests.usage.helpers import event

ALERTS = """\
alerts:
  - {alert_id: egress-30, plan_id: pro, meter: egress_gb, kind: usage, threshold: "30"}
  - {alert_id: spend-7, customer_id: acme, kind: spend, threshold: "7.00"}
limits:
  - {plan_id: pro, meter: egress_gb, soft_limit: "15", hard_limit: "25"}
"""
OUTBOX = "alerts/2026-01/acme/"


def day_file(day: int, gigabytes: str, name: str = "a.jsonl") -> dict:
    stamp = f"2026-01-{day:02d}"
    return {f"raw/usage/dt={stamp}/{name}": (event(event_id=f"e{day}-{name}", quantity=gigabytes,
                                                    timestamp=f"{stamp}T10:00:00Z") + "\n").encode()}


def listing(s3, bucket, prefix):
    return {item["Key"]: item["LastModified"] for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])}


def read(s3, bucket, key):
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def days(instance, first, last=None):
    """One run over days ``first`` to ``last`` of January, as `billing run` does (a single-run backfill)."""
    start, end = f"2026-01-{first:02d}", f"2026-01-{(last or first):02d}"
    result = defs.resolve_job_def("daily_usage_job").execute_in_process(
        instance=instance, raise_on_error=False, run_config=QUIET,
        tags={"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end})
    assert result.success, [e.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"]


def test_crossings_are_notified_once_moved_by_late_data_and_retracted_by_a_correction(put, s3, bucket):
    put(reference_files(alerts_yaml=ALERTS) | day_file(1, "10") | day_file(2, "10") | day_file(3, "10"))
    with dg.instance_for_test() as instance:
        days(instance, 1, 3)
        # by hand: egress month to date 10, 20, 30 → 30 is reached (exactly) on the 3rd. Spend on day d is
        # egress 0.80·d plus the base fee 49 × d/31, rounded: 2.38, 4.76, 2.40 + 4.74 = 7.14 → the 3rd
        notices = {key.rsplit("/", 1)[1]: read(s3, bucket, key) for key in listing(s3, bucket, OUTBOX)}
        assert sorted(notices) == ["egress-30.2026-01.json", "spend-7.2026-01.json"]
        assert (notices["egress-30.2026-01.json"]["crossed_on"], notices["egress-30.2026-01.json"]["value"]) == ("2026-01-03", "30")
        assert (notices["spend-7.2026-01.json"]["crossed_on"], notices["spend-7.2026-01.json"]["value"]) == ("2026-01-03", "7.14")
        entitlement = read(s3, bucket, "entitlements/acme.json")
        assert entitlement["meters"]["egress_gb"] == {"used": "30", "soft_limit": "15", "hard_limit": "25",
                                                      "state": "hard_exceeded", "as_of": "2026-01-03"}
        before = listing(s3, bucket, "alerts/")
        days(instance, 2, 3)  # re-materialising writes nothing new
        assert listing(s3, bucket, "alerts/") == before

        # a late file for the 1st: 110 on day 1 alone. The table now says the 1st; the notice
        # already sent stands (write-once)
        put(day_file(1, "100", name="late.jsonl"))
        days(instance, 1)
        import io

        import pyarrow.parquet as pq
        table = pq.read_table(io.BytesIO(s3.get_object(
            Bucket=bucket, Key="warehouse/usage_alerts/dt=2026-01-01/part-00000.parquet")["Body"].read())).to_pylist()
        assert {(row["alert_id"], row["crossed_on"], row["state"]) for row in table} == {
            ("egress-30", "2026-01-01", "open"), ("spend-7", "2026-01-01", "open")}  # 8.80 + 1.58 = 10.38
        assert listing(s3, bucket, "alerts/") == before

        # a correction: acme's contract really began on the 3rd, so the 1st and 2nd are held back
        # (no_active_contract) and the month to date is 10 GB, spend 0.80 + 49 × 1/31 = 2.38
        put(reference_files(alerts_yaml=ALERTS, contracts_csv=CONTRACTS.replace("c-acme,acme,pro,2026-01-01",
                                                                                "c-acme,acme,pro,2026-01-03")))
        days(instance, 1, 3)
        names = sorted(key.rsplit("/", 1)[1] for key in listing(s3, bucket, OUTBOX))
        assert names == ["egress-30.2026-01-retracted.json", "egress-30.2026-01.json",
                         "spend-7.2026-01-retracted.json", "spend-7.2026-01.json"]
        assert read(s3, bucket, f"{OUTBOX}egress-30.2026-01-retracted.json")["state"] == "retracted"
        assert read(s3, bucket, "entitlements/acme.json")["meters"]["egress_gb"]["state"] == "ok"
        after = listing(s3, bucket, "alerts/")
        days(instance, 3)
        assert listing(s3, bucket, "alerts/") == after


@pytest.mark.parametrize("text, where, problem", [
    ("alerts:\n  - {alert_id: a, plan_id: gold, meter: egress_gb, kind: usage, threshold: '1'}\n", "alert 1",
     "plan_id 'gold' is not in reference/plans.yaml"),
    ("alerts:\n  - {alert_id: a, plan_id: pro, kind: usage, threshold: '1'}\n", "alert 1", "meter None is not in"),
    ("alerts:\n  - {alert_id: a, plan_id: pro, meter: egress_gb, kind: usage, threshold: 1000}\n", "alert 1",
     "threshold must be a quoted decimal string"),
    ("alerts:\n  - {alert_id: a, customer_id: acme, kind: commitment, threshold_percent: '80'}\n"
     "  - {alert_id: a, customer_id: acme, kind: spend, threshold: '5'}\n", "alert 2", "alert_id 'a' is used twice"),
    ("alerts:\n  - {alert_id: a, plan_id: pro, kind: commitment, threshold_percent: '80'}\n", "alert 1",
     "plan 'pro' has no minimum_commitment"),
    ("limits:\n  - {plan_id: pro, meter: egress_gb, soft_limit: '30', hard_limit: '20'}\n", "limit 1",
     "soft_limit 30 is above hard_limit 20"),
    ("alerts:\n  - {alert_id: a, customer_id: acme, plan_id: pro, kind: spend, threshold: '5'}\n", "alert 1",
     "exactly one of plan_id and customer_id"),
])
def test_a_broken_alerts_file_names_the_entry_and_the_problem(text, where, problem):
    files = reference_files(alerts_yaml=text)
    with pytest.raises(ReferenceDataError) as raised:
        load_alerts(files.get, load_reference(files.get))
    assert (raised.value.file, raised.value.row) == ("reference/alerts.yaml", where)
    assert problem in raised.value.problem


def test_a_commitment_alert_compares_exactly_and_shows_the_share_to_two_places():
    from datetime import date
    from decimal import Decimal

    from billing_assets.insights.alerts import value_on
    from billing_assets.insights.charges import ContractTerms
    from billing_assets.rating.pricing import Charge
    from billing_assets.reference.alerts import Alert

    # a 3-day "month", egress at 0.01 a GB, a minimum of 10.00: 200 GB is 2.00, 20 % exactly;
    # 66.7 GB is 0.667 → 0.67 (the line rounds once), 6.7 %; against a 3.00 minimum 22.333… %
    terms = ContractTerms("c", "p", "USD", date(2026, 1, 1), date(2026, 1, 3), 3, 3, "", "", "10.00",
                          {"egress_gb": Charge("egress_gb", "per_unit", unit_price=Decimal("0.01"))}, "acme")
    usage = [{"day": date(2026, 1, 1), "meter": "egress_gb", "quantity": Decimal("200")}]
    alert = Alert("a", "commitment", Decimal("20"), customer_id="acme")
    value, text = value_on(alert, [terms], usage, {"egress_gb": "sum"}, date(2026, 1, 1))
    assert value == 20 and text == "20"  # 2.00 of 10.00, reached exactly
    usage = [{"day": date(2026, 1, 1), "meter": "egress_gb", "quantity": Decimal("66.7")}]  # 0.67 → 6.7 %
    value, text = value_on(alert, [terms], usage, {"egress_gb": "sum"}, date(2026, 1, 1))
    assert (value, text) == (Decimal("6.7"), "6.7")
    three = ContractTerms(**{**terms.__dict__, "minimum_commitment": "3.00"})  # 0.67 of 3.00 = 22.333… %
    value, text = value_on(alert, [three], usage, {"egress_gb": "sum"}, date(2026, 1, 1))
    assert value > Decimal("22.33") and text == "22.33"


def test_a_plans_limit_holds_over_the_days_the_customer_is_on_that_plan():
    from datetime import date
    from decimal import Decimal

    from billing_assets.insights.alerts import entitlements
    from billing_assets.insights.charges import ContractTerms
    from billing_assets.reference.alerts import AlertsConfig, Limit

    def contract(plan, first, last):
        return ContractTerms(f"c-{plan}", plan, "USD", date(2026, 1, first), date(2026, 1, last), last - first + 1, 31,
                             "", "", "", {}, "globex")

    terms = [contract("starter", 1, 10), contract("pro", 11, 31)]
    usage = [{"day": date(2026, 1, day), "meter": "api", "quantity": Decimal(100)} for day in (2, 5, 9, 12)]
    config = AlertsConfig(limits=(Limit("api", Decimal(150), Decimal(250), plan_id="starter"),))
    on_5th = entitlements(config, {"globex": terms}, {"globex": usage}, {"api": "count"}, "2026-01", date(2026, 1, 5))
    assert on_5th["globex"]["meters"]["api"] == {"used": "200", "soft_limit": "150", "hard_limit": "250",
                                                      "state": "soft_exceeded", "as_of": "2026-01-05"}
    on_10th = entitlements(config, {"globex": terms}, {"globex": usage}, {"api": "count"}, "2026-01", date(2026, 1, 10))
    assert on_10th["globex"]["meters"]["api"]["used"] == "300"  # the 12th is on pro, not counted
    assert entitlements(config, {"globex": terms}, {"globex": usage}, {"api": "count"}, "2026-01", date(2026, 1, 12)) == {}
