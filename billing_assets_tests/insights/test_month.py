"""A hand-worked month through Dagster and the S3 server: a plan change mid-month, a discount, a
minimum true-up, then late usage that an adjustment invoice corrects. The statement ties to the
documents, `billing explain` to an independent count over the raw objects, and the page renders
in headless Chromium with one chart mark per metered day."""

import csv
import io
import json
import os
import time
import uuid
from pathlib import Path

import boto3
import dagster as dg
import pytest

from billing_assets.cli import main
from billing_assets.insights.render import statement_html
from billing_assets_tests.conftest import reference_files
from billing_assets_tests.invoicing.test_assets import AFTER_GRACE, run
from billing_assets_tests.servers import chromium_and_driver, chromium_session
from billing_assets_tests.usage.helpers import event

PLANS = """\
plans:
  - plan_id: basic
    currency: USD
    base_fee: "10.00"
    charges:
      - {meter: egress_gb, model: per_unit, unit_price: "0.10"}
  - plan_id: pro
    currency: USD
    base_fee: "49.00"
    minimum_commitment: "100.00"
    charges:
      - {meter: api_requests, model: graduated, tiers: [{up_to: 2, unit_price: "0"}, {up_to: null, unit_price: "0.50"}]}
      - {meter: egress_gb, model: per_unit, unit_price: "0.08"}
"""
# globex: basic for 1–10 January, pro with 10 % off from the 11th; acme stays on pro all month
CONTRACTS = ("contract_id,customer_id,plan_id,start_date,end_date,discount_percent\n"
             "c-g1,globex,basic,2026-01-01,2026-01-11,\nc-g2,globex,pro,2026-01-11,,10\nc-acme,acme,pro,2026-01-01,,\n")
DOCS = "documents/2026-01/globex/"
ROOT = Path(__file__).resolve().parents[2]
BROWSER = chromium_and_driver()


def lines(*items: str) -> bytes:
    return "".join(item + "\n" for item in items).encode()


def usage(event_id, day, meter="egress_gb", quantity="1", customer="globex", **extra):
    return event(event_id=event_id, customer_id=customer, meter=meter, quantity=quantity,
                 timestamp=f"{day}T10:00:00Z", **extra)


RAW = {
    "raw/usage/dt=2026-01-05/a.jsonl": lines(usage("g1", "2026-01-05", quantity="100"),
                                             usage("x1", "2026-01-05", quantity="7", customer="acme")),
    "raw/usage/dt=2026-01-20/a.jsonl": lines(
        usage("g2", "2026-01-20", quantity="30"), usage("g3", "2026-01-20", quantity="20"),
        usage("r1", "2026-01-20", meter="api_requests", quantity=...),
        usage("r2", "2026-01-20", meter="api_requests", quantity=...),
        usage("r3", "2026-01-20", meter="api_requests", quantity=...),
        usage("g2", "2026-01-20", quantity="30"),                       # a duplicate of line 1
        usage("bad", "2026-01-20", quantity="-1"),                      # invalid_quantity, globex's
        usage("x2", "2026-01-20", quantity="3", customer="acme")),
}
LATE = {"raw/usage/dt=2026-01-25/late.jsonl": lines(usage("g4", "2026-01-25", quantity="1000"))}


def get(s3, bucket, key) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


@pytest.fixture(scope="module")
def month(s3_endpoint):
    """The month run once for the module's tests (each run is tens of seconds): (draft, issued,
    corrected) statements of globex, the S3 client and the bucket."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in (("AWS_ENDPOINT_URL", s3_endpoint), ("AWS_ACCESS_KEY_ID", "testing"),
                            ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_DEFAULT_REGION", "us-east-1"),
                            ("BILLING_BUCKET", f"billing-test-{uuid.uuid4().hex[:12]}")):
            patch.setenv(name, value)
        bucket = os.environ["BILLING_BUCKET"]
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=bucket)

        def put(objects):
            for key, body in objects.items():
                s3.put_object(Bucket=bucket, Key=key, Body=body)

        put(reference_files(plans_yaml=PLANS, contracts_csv=CONTRACTS) | RAW)
        with dg.instance_for_test() as instance:
            for day in ("2026-01-05", "2026-01-20"):
                run(instance, "daily_usage_job", day)
            run(instance, "monthly_billing_job", "2026-01", as_of="2026-01-21T00:00:00+00:00")
            run(instance, "statements_job", "2026-01")
            draft = json.loads(get(s3, bucket, f"{DOCS}statement.json"))
            run(instance, "monthly_billing_job", "2026-01")  # after the grace period: issued
            run(instance, "statements_job", "2026-01")
            issued = json.loads(get(s3, bucket, f"{DOCS}statement.json"))
            time.sleep(1.1)  # S3 times are whole seconds: the late day is metered after the invoice
            put(LATE)
            run(instance, "daily_usage_job", "2026-01-25")
            run(instance, "monthly_billing_job", "2026-01")
            run(instance, "statements_job", "2026-01")
        yield draft, issued, json.loads(get(s3, bucket, f"{DOCS}statement.json")), s3, bucket


def amounts(statement) -> dict:
    return {(line["contract_id"], line["line_type"], line["meter"]): line["amount_minor"] for line in statement["lines"]}


def test_the_statement_of_a_month_with_a_plan_change_a_discount_a_minimum_and_a_correction(month):
    draft, issued, corrected, s3, bucket = month
    # by hand. c-g1 (basic, 10 of 31 days): egress 100 × 0.10 = 10.00; base 10.00 × 10/31 = 3.2258 → 3.23.
    # c-g2 (pro, 21 days): egress 50 × 0.08 = 4.00; api 3 requests, 2 free, 1 × 0.50; base 49 × 21/31 =
    # 33.1935 → 33.19; subtotal 37.69, discount −3.769 → −3.77; minimum 100 × 21/31 = 67.74 → true-up
    # 67.74 − 33.92 = 33.82. Total 13.23 + 37.69 − 3.77 + 33.82 = 80.97
    expected = {("c-g1", "usage", "egress_gb"): 1000, ("c-g1", "base_fee", None): 323,
                ("c-g2", "usage", "api_requests"): 50, ("c-g2", "usage", "egress_gb"): 400,
                ("c-g2", "base_fee", None): 3319, ("c-g2", "discount", None): -377,
                ("c-g2", "minimum_true_up", None): 3382}
    assert amounts(draft) == expected and draft["total_minor"] == 8097
    assert (draft["status"], draft["as_of"], draft["name"]) == ("month_to_date", "2026-01-20", "Globex")
    assert draft["forecast"]["low_minor"] <= draft["forecast"]["expected_minor"] <= draft["forecast"]["high_minor"]
    assert (issued["status"], issued["total_minor"], issued["forecast"], issued["corrections"]) == ("final", 8097, None, [])

    # 1,000 GB more on the 25th: egress 84.00; subtotal 117.69, discount −11.77, no true-up any more:
    # 13.23 + 117.69 − 11.77 = 119.15, billed by ADJ-202601-globex-1 for 119.15 − 80.97 = 38.18
    assert corrected["total_minor"] == 11915 and corrected["status"] == "final"
    assert amounts(corrected) == {key: value for key, value in expected.items() if key[1] != "minimum_true_up"} | {
        ("c-g2", "usage", "egress_gb"): 8400, ("c-g2", "discount", None): -1177}
    [correction] = corrected["corrections"]
    assert (correction["document_number"], correction["amount_minor"], correction["days"], correction["meters"]) == (
        "ADJ-202601-globex-1", 3818, ["2026-01-25"], ["egress_gb"])
    assert correction["reasons"] == ["late or corrected usage"]
    adjustment = json.loads(get(s3, bucket, f"{DOCS}ADJ-202601-globex-1.json"))
    assert adjustment["amount_minor"] == correction["amount_minor"]

    # the CSVs tie: the lines to what is owed now, each contract's days to its line's quantity
    rows = list(csv.DictReader(io.StringIO(get(s3, bucket, f"{DOCS}statement-lines.csv").decode())))
    assert sum(int(row["amount_minor"]) for row in rows) == 11915
    days = list(csv.DictReader(io.StringIO(get(s3, bucket, f"{DOCS}statement-usage.csv").decode())))
    egress = {row["day"]: row["quantity"] for row in days if row["meter"] == "egress_gb"}
    assert egress == {"2026-01-05": "100", "2026-01-20": "50", "2026-01-25": "1000"}
    by_line = {(row["contract_id"], row["meter"]): row["quantity"] for row in rows if row["line_type"] == "usage"}
    assert by_line[("c-g1", "egress_gb")] == "100" and by_line[("c-g2", "egress_gb")] == "1050"
    html = get(s3, bucket, f"{DOCS}statement.html").decode()
    for text in ("Globex", "prorated by 10/31 days", "discount of 10 %", "subtotal of USD 117.69", "USD 119.15",
                 "ADJ-202601-globex-1", "2026-01-25"):
        assert text in html


def count_raw(s3, bucket, customer: str, meter: str, days: set[str]) -> int:
    """Accepted events, counted independently: parse every raw line, keep first copies of each
    (source, event_id) per day, drop negative quantities (the one bad line here)."""
    seen, count = set(), 0
    for key in sorted(RAW | LATE):
        day = key.split("dt=")[1][:10]
        for text in get(s3, bucket, key).decode().splitlines():
            record = json.loads(text)
            if (day, record.get("source", ""), record["event_id"]) in seen:
                continue
            seen.add((day, record.get("source", ""), record["event_id"]))
            if (record["customer_id"], record["meter"]) == (customer, meter) and day in days \
                    and not str(record.get("quantity", "1")).startswith("-"):
                count += 1
    return count


def test_explain_traces_each_line_to_its_days_and_events(month, capsys):
    *_, s3, bucket = month
    assert main(["explain", "INV-202601-globex", "--json", "--events", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["customer_id"], result["total_minor"], result["corrected_by"]) == ("globex", 8097, ["ADJ-202601-globex-1"])
    lines = {(line["contract_id"], line["line_type"], line["meter"]): line for line in result["lines"]}
    late_days = {"2026-01-11", "2026-01-20", "2026-01-25"}
    g2 = lines[("c-g2", "usage", "egress_gb")]
    assert g2["events"]["count"] == count_raw(s3, bucket, "globex", "egress_gb", late_days) == 3
    assert [day["day"] for day in g2["days"]] == ["2026-01-20", "2026-01-25"]
    assert [(e["object_key"], e["line_number"]) for e in g2["events"]["first"]] == [
        ("raw/usage/dt=2026-01-20/a.jsonl", 1), ("raw/usage/dt=2026-01-20/a.jsonl", 2)]
    g1 = lines[("c-g1", "usage", "egress_gb")]
    assert g1["events"]["count"] == count_raw(s3, bucket, "globex", "egress_gb", {"2026-01-05"}) == 1
    assert lines[("c-g2", "usage", "api_requests")]["events"]["count"] == 3
    # what was not billed: globex's own bad line and duplicate, never acme's events
    assert result["not_billed"]["by_reason"] == {"invalid_quantity": 1} and result["not_billed"]["duplicates"] == 1
    assert "x1" not in json.dumps(result) and "x2" not in json.dumps(result)

    assert main(["explain", "ADJ-202601-globex-1", "--meter", "egress_gb"]) == 0
    text = capsys.readouterr().out
    assert "USD 80.00 (billed USD 4.00, owed USD 84.00)" in text and "accepted events: 3" in text
    assert main(["explain", "INV-202601-wayne"]) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "no document INV-202601-wayne" in error


@pytest.mark.skipif(BROWSER is None, reason="no Chromium + chromedriver (Debian: chromium chromium-driver)")
def test_the_statement_page_in_a_real_browser(month, tmp_path):
    *_, s3, bucket = month
    artifacts = Path(os.environ.get("BILLING_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "statements"
    artifacts.mkdir(parents=True, exist_ok=True)
    page = tmp_path / "statement.html"
    page.write_bytes(get(s3, bucket, f"{DOCS}statement.html"))
    days = list(csv.DictReader(io.StringIO(get(s3, bucket, f"{DOCS}statement-usage.csv").decode())))
    owed = sum(int(row["amount_minor"]) for row in csv.DictReader(
        io.StringIO(get(s3, bucket, f"{DOCS}statement-lines.csv").decode())))
    with chromium_session(BROWSER, 1200, 2400) as browser:
        browser.get(page.as_uri())
        browser.save_screenshot(str(artifacts / "globex-2026-01.png"))
        for meter in ("egress_gb", "api_requests"):
            marks = browser.find_elements("css selector", f"svg[aria-label^='{meter} per day'] rect.mark")
            assert len(marks) == sum(row["meter"] == meter for row in days)
        total = browser.find_element("css selector", "tr.total td.amount").text
        assert total == f"USD {owed // 100:,}.{owed % 100:02d}" == "USD 119.15"
        assert browser.find_elements("tag name", "script") == []
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
        browser.save_screenshot(str(artifacts / "globex-2026-01-print.png"))
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "screen"})
        # the month as it stood on the 20th: month to date, and the forecast with its interval
        draft = month[0]
        page.write_text(statement_html(draft))
        browser.get(page.as_uri())
        browser.save_screenshot(str(artifacts / "globex-2026-01-month-to-date.png"))
        summary = browser.find_element("css selector", ".summary").text
        low, high = (draft["forecast"][f"{name}_minor"] for name in ("low", "high"))
        assert "Month to date\nUSD 80.97" in summary
        assert f"90 % interval USD {low // 100:,}.{low % 100:02d} – USD {high // 100:,}.{high % 100:02d}" in summary
