"""remediation_impact through Dagster and the S3 server, worked by hand: hooli's usage arrives
from 5 January but its contract starts on the 10th, so three lines are held back; the month is
issued; billing operations back-dates the contract to the 1st (R-1), the days are run again and
the held-back lines are released. The re-rating delta is priced here by hand, independently of
the platform's rating; a second remediation scoped to one meter from the 10th counts only that."""

import io
import json
from decimal import ROUND_HALF_UP, Decimal

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from billing_assets.reference.loading import ReferenceDataError, load_reference
from billing_assets.reference.remediations import load_remediations
from billing_assets_tests.conftest import CONTRACTS, reference_files
from billing_assets_tests.invoicing.test_assets import AFTER_GRACE, BEFORE_GRACE, run
from billing_assets_tests.usage.helpers import event

MONTH = "2026-01"
ONBOARDED_10TH = CONTRACTS + "c-hooli,hooli,pro,2026-01-10,,\n"
BACKDATED = CONTRACTS + "c-hooli,hooli,pro,2026-01-01,,\n"
REMEDIATIONS = ("remediation_id,description,start_date,customer_id,meter\n"
                "R-1,hooli's contract back-dated to 1 January as agreed,2026-01-01,hooli,\n"
                "R-2,egress producer fix,2026-01-10,,egress_gb\n")


def _usage(event_id, day, gigabytes, customer="hooli"):
    return event(event_id=event_id, customer_id=customer, quantity=gigabytes, timestamp=f"{day}T10:00:00Z")


RAW = {
    "raw/usage/dt=2026-01-05/a.jsonl": "\n".join([
        _usage("h1", "2026-01-05", "10"), _usage("h2", "2026-01-05", "5"), _usage("a1", "2026-01-05", "100", "acme"),
        _usage("h1", "2026-01-05", "10")]).encode() + b"\n",  # the last a duplicate of the first
    "raw/usage/dt=2026-01-12/a.jsonl": (_usage("h3", "2026-01-12", "7") + "\n").encode(),
}


def _impact(s3, bucket) -> dict:
    body = s3.get_object(Bucket=bucket, Key=f"warehouse/remediation_impact/month={MONTH}/part-00000.parquet")["Body"]
    return {(row["remediation_id"], row["currency"]): row for row in pq.read_table(io.BytesIO(body.read())).to_pylist()}


def _cents(amount: Decimal) -> int:
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def test_a_backdated_onboarding_releases_held_back_lines_and_its_delta_is_exact(put, s3, bucket):
    put(reference_files(contracts_csv=ONBOARDED_10TH) | RAW
        | {"reference/remediations.csv": REMEDIATIONS.encode()})
    with dg.instance_for_test() as instance:
        for day in ("2026-01-05", "2026-01-12"):
            run(instance, "daily_usage_job", day)
        run(instance, "monthly_billing_job", MONTH, as_of=BEFORE_GRACE)
        draft = _impact(s3, bucket)[("R-1", "USD")]
        assert draft["status"] == "month_not_issued" and draft["rerating_delta_minor"] is None
        assert draft["quarantined_lines_after"] == 3 and draft["quarantined_lines_before"] is None
        assert "not issued yet" in draft["explanation"]

        run(instance, "monthly_billing_job", MONTH)  # issued: the "before" is recorded now
        put({"reference/contracts.csv": BACKDATED.encode()})
        run(instance, "daily_usage_job", "2026-01-05")
        run(instance, "monthly_billing_job", MONTH)
        rows = _impact(s3, bucket)

    # by hand: issued with 22 of 31 days (10th–31st) of the 49.00 base fee and h3's 7 GB at 0.08;
    # back-dated, all 31 days and h1 + h2 + h3 = 22 GB
    issued = _cents(Decimal("49.00") * 22 / 31) + _cents(Decimal(7) * Decimal("0.08"))
    now = _cents(Decimal("49.00")) + _cents(Decimal(22) * Decimal("0.08"))
    assert (issued, now) == (3533, 5076)
    r1 = rows[("R-1", "USD")]
    assert r1["status"] == "measured"
    # h1, h2 and the copy of h1 were held back (each line is checked on its own before dedupe);
    # now h1 and h2 are accepted and the copy is a duplicate
    assert (r1["quarantined_lines_before"], r1["quarantined_lines_after"], r1["released_lines"]) == (3, 0, 3)
    assert json.loads(r1["quarantined_by_reason_before"]) == {"no_active_contract": 3}
    assert json.loads(r1["released_by_reason"]) == {"no_active_contract": 3}
    assert (r1["accepted_events_before"], r1["accepted_events_after"]) == (1, 3)
    assert (r1["duplicate_lines_before"], r1["duplicate_lines_after"]) == (0, 1)
    assert (r1["billed_before_minor"], r1["billed_after_minor"], r1["rerating_delta_minor"]) == (issued, now, now - issued)
    assert (r1["adjustment_invoice_minor"], r1["credit_note_minor"]) == (now - issued, 0)
    assert json.loads(r1["corrections"]) == ["ADJ-202601-hooli-1"] and r1["invoices_corrected"] == 1
    assert "3 lines held back when 2026-01 was issued are released (no_active_contract 3)" in r1["explanation"]
    assert "+USD 15.43 (ADJ-202601-hooli-1)" in r1["explanation"]

    # egress of every customer from the 10th: nothing of the 5th counts; hooli's egress line
    # went 0.56 → 1.76 (its 5th-of-January gigabytes are billed on that line), acme's did not move
    r2 = rows[("R-2", "USD")]
    assert (r2["quarantined_lines_before"], r2["released_lines"], r2["accepted_events_after"]) == (0, 0, 1)
    assert r2["billed_before_minor"] == _cents(Decimal(100) * Decimal("0.08")) + 56
    # every USD invoice is in its scope (acme, globex with no egress line, hooli); initech's is EUR
    assert r2["rerating_delta_minor"] == 176 - 56 and r2["invoices_in_scope"] == 3
    assert (rows[("R-2", "EUR")]["invoices_in_scope"], rows[("R-2", "EUR")]["rerating_delta_minor"]) == (1, 0)
    assert set(rows) == {("R-1", "USD"), ("R-2", "USD"), ("R-2", "EUR")}

    # acme's, globex's and hooli's contracts started in January; hooli's invoice was corrected, so
    # it is still waiting (the others' days run to the documents' write time, on the clock)
    body = s3.get_object(Bucket=bucket, Key=f"warehouse/billing_kpis/month={MONTH}/part-00000.parquet")["Body"].read()
    usd = next(row for row in pq.read_table(io.BytesIO(body)).to_pylist() if row["currency"] == "USD")
    assert (usd["contracts_onboarded"], usd["onboardings_awaiting_right_invoice"]) == (3, 1)
    assert usd["onboarding_to_first_right_days"] > 0


@pytest.mark.parametrize(("body", "problem"), [
    ("remediation_id,description,start_date\nR-1,x,2026-01-01\n", "the header must be"),
    ("remediation_id,description,start_date,customer_id,meter\nR 1,x,2026-01-01,,\n", "remediation_id must be"),
    ("remediation_id,description,start_date,customer_id,meter\nR-1,x,2026-01-01,,\nR-1,y,2026-01-02,,\n",
     "'R-1' is already on line 2"),
    ("remediation_id,description,start_date,customer_id,meter\nR-1, ,2026-01-01,,\n", "description is empty"),
    ("remediation_id,description,start_date,customer_id,meter\nR-1,x,2026-02-30,,\n", "start_date must be"),
    ("remediation_id,description,start_date,customer_id,meter\nR-1,x,2026-01-01,nobody,\n", "'nobody' is not in"),
    ("remediation_id,description,start_date,customer_id,meter\nR-1,x,2026-01-01,,cpu\n", "'cpu' is not in"),
])
def test_a_broken_remediations_file_names_file_line_and_problem(body, problem):
    reference = load_reference(reference_files().get)
    with pytest.raises(ReferenceDataError) as error:
        load_remediations({"reference/remediations.csv": body.encode()}.get, reference)
    assert problem in str(error.value) and str(error.value).startswith("reference/remediations.csv, line ")


def _outcomes(*rows):
    from billing_assets.metering.outcomes import LINE_OUTCOMES_SCHEMA

    return pa.Table.from_pylist([dict(zip(("day", "customer_id", "meter", "outcome", "reason", "lines"), row))
                                 | {"quantity": None} for row in rows], schema=LINE_OUTCOMES_SCHEMA)


def test_lines_of_no_known_customer_are_counted_never_priced_and_a_month_without_record_says_so():
    from datetime import date

    from billing_assets.analytics.remediation import MonthDocuments, remediation_rows
    from billing_assets.reference.remediations import Remediation

    fix = Remediation("R-9", "JSON encoder fixed", date(2026, 1, 10), None, None)
    before = _outcomes(("2026-01-09", None, None, "quarantined", "malformed_json", 40),   # before its start: not in scope
                       ("2026-01-10", None, None, "quarantined", "malformed_json", 7),
                       ("2026-01-10", "acme", "egress_gb", "accepted", None, 5))
    now = _outcomes(("2026-01-09", None, None, "quarantined", "malformed_json", 40),
                    ("2026-01-10", None, None, "quarantined", "malformed_json", 2),
                    ("2026-01-10", "acme", "egress_gb", "accepted", None, 10))
    invoice = {"currency": "USD", "lines": [{"line_type": "usage", "meter": "egress_gb", "amount_minor": 40}]}
    documents = MonthDocuments({"acme": invoice}, {})
    rows = {row["currency"]: row for row in remediation_rows(MONTH, [fix], before, now, documents, {"acme": "USD"})}
    none, usd = rows["XXX"], rows["USD"]
    assert (none["quarantined_lines_before"], none["quarantined_lines_after"], none["released_lines"]) == (7, 2, 5)
    assert none["rerating_delta_minor"] is None and none["billed_before_minor"] is None
    assert (usd["accepted_events_before"], usd["accepted_events_after"], usd["rerating_delta_minor"]) == (5, 10, 0)
    assert usd["billed_before_minor"] == 40 and "re-rating changed nothing billed" in usd["explanation"]

    unrecorded = remediation_rows(MONTH, [fix], None, now, documents, {"acme": "USD"})
    assert {row["status"] for row in unrecorded} == {"no_record_at_issue"}
    assert all(row["released_lines"] is None and "was not recorded" in row["explanation"] for row in unrecorded)
    # a remediation from February has nothing to say about January
    assert remediation_rows(MONTH, [Remediation("R-2", "x", date(2026, 2, 1), None, None)], before, now,
                            documents, {}) == []
