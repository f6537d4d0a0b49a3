"""Monthly invoicing run for real (Dagster instance, S3 server): drafts, issue, immutability,
corrections after late data and after a retroactive contract change."""

import json

import dagster as dg
import pytest

from billing_assets.definitions import defs
from billing_assets_tests.conftest import CONTRACTS, reference_files
from billing_assets_tests.usage.conftest import QUIET
from billing_assets_tests.usage.helpers import event

MONTH = "2026-01"
BEFORE_GRACE = "2026-02-01T23:59:59+00:00"  # month end + 24 h not yet passed
AFTER_GRACE = "2026-02-02T00:00:00+00:00"
DOCS = "documents/2026-01/globex/"


def day_file(day: str, *lines: str) -> dict:
    return {f"raw/usage/dt={day}/usage.jsonl": "".join(line + "\n" for line in lines).encode()}


def usage(event_id: str, gigabytes: str, day: str = "2026-01-05") -> str:
    return event(event_id=event_id, customer_id="globex", quantity=gigabytes, timestamp=f"{day}T10:00:00Z")


def run(instance, job: str, partition: str, as_of: str = AFTER_GRACE):
    config = dict(QUIET)
    if job == "monthly_billing_job":
        config = config | {"resources": {"billing_policy": {"config": {"as_of": as_of}}}}
    result = defs.resolve_job_def(job).execute_in_process(partition_key=partition, instance=instance,
                                                          raise_on_error=False, run_config=config)
    assert result.success, [e.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return result


def table(s3, bucket, name, partition=MONTH):
    import io

    import pyarrow.parquet as pq
    key = f"warehouse/{name}/month={partition}/part-00000.parquet"
    return pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read())).to_pylist()


def documents(s3, bucket):
    """The issued documents (the usage statement beside them is a view, rewritten at will)."""
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=DOCS).get("Contents", [])
    return {item["Key"].rsplit("/", 1)[1]: s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            for item in listed if not item["Key"].rsplit("/", 1)[1].startswith("statement")}


@pytest.fixture
def month_with_usage(put):
    put(reference_files() | day_file("2026-01-05", usage("g1", "1000")))


def globex(rows):
    return next(row for row in rows if row["customer_id"] == "globex")


def test_drafts_before_grace_then_issued_once(month_with_usage, s3, bucket):
    with dg.instance_for_test() as instance:
        run(instance, "daily_usage_job", "2026-01-05")
        run(instance, "monthly_billing_job", MONTH, as_of=BEFORE_GRACE)
        draft = globex(table(s3, bucket, "invoices"))
        # globex (pro, 10 % off): 1000 GB × 0.08 = 80.00, base 49.00 → 129.00; discount −12.90 → 116.10
        assert (draft["invoice_number"], draft["status"], draft["total_minor"]) == ("INV-202601-globex", "draft", 11610)
        assert documents(s3, bucket) == {}
        run(instance, "monthly_billing_job", MONTH)
        issued = globex(table(s3, bucket, "invoices"))
        assert (issued["status"], issued["total_minor"]) == ("issued", 11610)
        first = documents(s3, bucket)
        assert sorted(first) == ["INV-202601-globex.html", "INV-202601-globex.json"]
        html = first["INV-202601-globex.html"].decode()
        # each line with its amount: egress 80.00, base fee 49.00, discount −12.90; total 116.10
        for text in ("egress_gb × 1000", "1000 × 0.08", "USD 80.00", "Base fee", "USD 49.00", "USD -12.90",
                     "Total: USD 116.10"):
            assert text in html
        assert json.loads(first["INV-202601-globex.json"])["total_minor"] == 11610
        invoice_bytes = s3.get_object(Bucket=bucket, Key="warehouse/invoices/month=2026-01/part-00000.parquet")["Body"].read()
        run(instance, "monthly_billing_job", MONTH)  # nothing changed: nothing new, same bytes
        assert documents(s3, bucket) == first
        assert s3.get_object(Bucket=bucket, Key="warehouse/invoices/month=2026-01/part-00000.parquet")["Body"].read() == invoice_bytes


def test_late_usage_after_issue_becomes_an_adjustment_invoice(month_with_usage, put, s3, bucket):
    with dg.instance_for_test() as instance:
        run(instance, "daily_usage_job", "2026-01-05")
        run(instance, "monthly_billing_job", MONTH)
        issued_document = documents(s3, bucket)["INV-202601-globex.json"]
        put(day_file("2026-01-20", usage("g2", "250", day="2026-01-20")))
        run(instance, "daily_usage_job", "2026-01-20")
        run(instance, "monthly_billing_job", MONTH)
        docs = documents(s3, bucket)
        assert docs["INV-202601-globex.json"] == issued_document  # the issued invoice never changes
        adjustment = json.loads(docs["ADJ-202601-globex-1.json"])
        # 250 GB more × 0.08 = 20.00; 10 % discount on it −2.00 → 18.00
        assert adjustment["amount_minor"] == 1800
        assert [(line["line_type"], line["difference_minor"]) for line in adjustment["lines"]] == [
            ("usage", 2000), ("discount", -200)]
        assert globex(table(s3, bucket, "invoices"))["total_minor"] == 11610
        assert [(row["document_number"], row["kind"], row["amount_minor"]) for row in table(s3, bucket, "invoice_adjustments")] == [
            ("ADJ-202601-globex-1", "adjustment_invoice", 1800)]


def test_a_retroactive_discount_becomes_a_credit_note(month_with_usage, put, s3, bucket):
    with dg.instance_for_test() as instance:
        run(instance, "daily_usage_job", "2026-01-05")
        run(instance, "monthly_billing_job", MONTH)
        put(reference_files(contracts_csv=CONTRACTS.replace("c-globex,globex,pro,2026-01-01,,10",
                                                            "c-globex,globex,pro,2026-01-01,,20")))
        run(instance, "monthly_billing_job", MONTH)
        docs = documents(s3, bucket)
        credit = json.loads(docs["CN-202601-globex-1.json"])
        # discount 10 % → 20 % of 129.00: −12.90 → −25.80, a credit of 12.90
        assert (credit["kind"], credit["amount_minor"], credit["invoice_number"]) == ("credit_note", -1290, "INV-202601-globex")
        assert [(row["document_number"], row["amount_minor"], row["currency"]) for row in table(s3, bucket, "refunds")] == [
            ("CN-202601-globex-1", 1290, "USD")]
        html = docs["CN-202601-globex-1.html"].decode()
        assert "Credit note CN-202601-globex-1" in html and "Total: USD -12.90" in html
        assert "Corrects invoice INV-202601-globex" in html


def test_a_contract_removed_after_issue_is_credited_in_full_and_the_invoice_stays(month_with_usage, put, s3, bucket):
    with dg.instance_for_test() as instance:
        run(instance, "daily_usage_job", "2026-01-05")
        run(instance, "monthly_billing_job", MONTH)
        put(reference_files(contracts_csv="\n".join(line for line in CONTRACTS.splitlines()
                                                    if not line.startswith("c-globex")) + "\n"))
        run(instance, "monthly_billing_job", MONTH)
        credit = json.loads(documents(s3, bucket)["CN-202601-globex-1.json"])
        assert credit["amount_minor"] == -11610  # everything billed on INV-202601-globex
        assert globex(table(s3, bucket, "invoices")) == {
            "invoice_number": "INV-202601-globex", "customer_id": "globex", "month": MONTH, "currency": "USD",
            "total_minor": 11610, "status": "issued"}
