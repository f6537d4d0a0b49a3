"""Orb through its official SDK against the local Orb (fake_orb.py): usage synced exactly once
(within a backfill when the day is past the grace period), exact decimals on the wire, lost
answers and rate limits, refunds as credit notes made once, and Orb's view read back. Figures
are worked out by hand from what each test sends."""

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import dagster as dg
import pytest

from billing_assets.providers.ledger import plan, settle, to_send
from billing_assets.providers.orb_api import OrbProvider, event_json, major_text
from billing_assets.providers.refunds import plan as plan_refunds
from billing_assets.providers.reconciliation import usage_rows
from billing_assets_tests.conftest import reference_files
from billing_assets_tests.providers.fake_orb import FakeOrb, serving
from billing_assets_tests.usage.helpers import event
from billing_assets_tests.providers.test_sync import AS_OF, EXPECTED, LINES, MAPPING, checks, day_file, ledger, sync

KEY = "orb_test_fake"  # pragma: allowlist secret
DAY = date(2026, 1, 5)
NOON = datetime(2026, 1, 5, 12, tzinfo=timezone.utc)


@pytest.fixture
def orb_account():
    fake = FakeOrb(now=datetime.fromisoformat(AS_OF))
    with serving(fake) as url:
        yield fake, url
    assert fake.problems == []  # every request and answer matched Orb's published types


def client(url: str, retries: int = 2) -> OrbProvider:
    return OrbProvider(KEY, url, retries)


def rows_for(quantities: dict, ledger_rows=(), now=NOON + timedelta(hours=1)):
    return plan(DAY, quantities, list(ledger_rows), "orb", {"acme": "ext_acme", "globex": "ext_globex"}, now)


def test_a_day_past_the_grace_period_goes_in_one_backfill_exactly_once_and_late_data_as_the_difference(
        put, s3, bucket, orb_account):
    fake, url = orb_account
    provider = {"kind": "orb", "orb_api_key": KEY, "endpoint": url}
    mapping = MAPPING.replace("cus_", "ext_") + "initech,ext_initech\n"
    put(reference_files(provider_customers_csv=mapping) | day_file(*LINES))
    with dg.instance_for_test() as instance:
        result = sync(instance, provider)  # 18 h after the day's noon: past Orb's 12 h grace period
        assert result.success and all(checks(result).values()), checks(result)
        assert {(r["status"], r["provider"]) for r in ledger(s3, bucket)} == {("acknowledged", "orb")}
        assert [(b["timeframe_start"], b["timeframe_end"], b["status"]) for b in fake.backfills.values()] == [
            ("2026-01-05T00:00:00+00:00", "2026-01-06T00:00:00+00:00", "reflected")]
        assert {(c, m): fake.held(f"ext_{c}", m) for c, m in EXPECTED} == EXPECTED
        before = len(fake.requests)
        assert sync(instance, provider).success and len(fake.requests) == before  # a re-run sends nothing

        # late: acme 0.25 GB more; globex's g1 again (a duplicate: nothing)
        put(day_file(event(event_id="e3", quantity="0.25"), event(event_id="g1", customer_id="globex", quantity="2"),
                     name="late.jsonl"))
        result = sync(instance, provider)
        assert result.success and all(checks(result).values()), checks(result)
    assert fake.held("ext_acme", "egress_gb") == Decimal("2.00")
    assert [sent["idempotency_key"] for sent in fake.events.values()][-1] == "usage:2026-01-05:acme:egress_gb:2"
    assert fake.events["usage:2026-01-05:acme:egress_gb:2"]["properties"] == {"quantity": Decimal("0.25")}
    assert [b["status"] for b in fake.backfills.values()] == ["reflected", "reflected"]


def test_quantities_travel_as_exact_decimal_literals_and_a_correction_may_be_negative(orb_account):
    fake, url = orb_account
    fake.now = NOON + timedelta(hours=1)  # within Orb's grace period of the day's noon
    exact, too_long = Decimal("123456789.123456"), Decimal("12345678.123456789")  # 15 and 17 significant digits
    first = rows_for({("acme", "egress_gb"): exact, ("globex", "egress_gb"): Decimal(5)})
    done = client(url).send_usage(first, NOON + timedelta(hours=1))
    assert {row.status for row in done.values()} == {"acknowledged"}
    assert '"properties": {"quantity": 123456789.123456}' in event_json(first[0])
    assert fake.held("ext_acme", "egress_gb") == exact  # exactly the literal written, no float on the way
    ledger_rows = settle(first, done)
    corrected = rows_for({("acme", "egress_gb"): exact, ("globex", "egress_gb"): Decimal(2),
                          ("acme", "api_requests"): too_long}, ledger_rows)
    done = client(url).send_usage(corrected, NOON + timedelta(hours=2))
    statuses = {(row.customer_id, row.meter): (row.status, row.quantity_sent) for row in done.values()}
    assert statuses == {("globex", "egress_gb"): ("acknowledged", Decimal(-3)),
                        ("acme", "api_requests"): ("failed", too_long)}
    assert fake.held("ext_globex", "egress_gb") == Decimal(2)  # 5 then -3: Orb sums the correction
    assert "17 significant digits; Orb takes at most 15" in done[("orb", corrected[0].identifier)].failure_reason
    assert fake.backfills == {}  # within the grace period: no backfill


def test_a_lost_answer_is_resent_under_the_same_key_and_counted_once_and_429_is_waited_out(orb_account):
    fake, url = orb_account
    fake.now = NOON + timedelta(hours=1)  # within Orb's grace period of the day's noon
    rows = rows_for({("acme", "egress_gb"): Decimal("1.75"), ("globex", "egress_gb"): Decimal(2)})
    fake.faults += [("POST /ingest", "lose", 0)]
    done = client(url, retries=0).send_usage(rows, NOON + timedelta(hours=1))
    assert {row.status for row in done.values()} == {"sent"}  # it arrived; nobody knows yet
    ledger_rows = settle(rows, done)
    fake.faults += [("POST /ingest", "429", 1)]
    again = client(url, retries=1).send_usage(to_send(ledger_rows, "orb", {}), NOON + timedelta(hours=2))
    assert {row.status for row in again.values()} == {"acknowledged"}
    assert [path for method, path in fake.requests if path == "/ingest"] == ["/ingest"] * 3
    assert len(fake.events) == 2 and fake.held("ext_acme", "egress_gb") == Decimal("1.75")


def test_a_backfill_left_open_by_a_crash_is_reused_and_an_unmapped_customer_waits(orb_account):
    fake, url = orb_account
    late = NOON + timedelta(days=2)
    fake.now = late
    rows = rows_for({("acme", "egress_gb"): Decimal(1), ("initech", "egress_gb"): Decimal(4)}, now=late)
    provider = client(url)
    provider._backfill(DAY)  # opened, then the process died
    done = provider.send_usage(rows, late)
    outcomes = {row.customer_id: (row.status, row.retryable) for row in done.values()}
    assert outcomes == {"acme": ("acknowledged", False), "initech": ("failed", True)}
    assert [b["status"] for b in fake.backfills.values()] == ["reflected"]  # the one opened, now closed
    assert fake.held("ext_acme", "egress_gb") == Decimal(1)


def test_a_late_days_unanswered_send_goes_again_into_its_backfill_and_a_refused_one_leaves_none_open(orb_account):
    fake, url = orb_account
    late = NOON + timedelta(days=2)
    fake.now = late
    rows = rows_for({("acme", "egress_gb"): Decimal(1)}, now=late)
    fake.faults += [("POST /ingest", "lose", 0)]
    done = client(url, retries=0).send_usage(rows, late)
    assert [row.status for row in done.values()] == ["sent"]
    assert [b["status"] for b in fake.backfills.values()] == ["pending"]  # held open for the re-send
    again = client(url).send_usage(to_send(settle(rows, done), "orb", {}), late)
    assert [row.status for row in again.values()] == ["acknowledged"] and fake.held("ext_acme", "egress_gb") == 1
    assert [b["status"] for b in fake.backfills.values()] == ["reflected"]

    more = rows_for({("acme", "egress_gb"): Decimal(2)}, settle(rows, again), now=late)
    fake.faults += [("POST /events/backfills/bf_2/close", "500", 0)]  # the events are in, the backfill stays open
    [unclosed] = client(url, retries=0).send_usage(more, late).values()
    assert unclosed.status == "sent" and unclosed.failure_reason.startswith("backfill bf_2 not closed")
    [closed] = client(url).send_usage([unclosed], late).values()
    assert closed.status == "acknowledged" and fake.held("ext_acme", "egress_gb") == 2

    more = rows_for({("acme", "egress_gb"): Decimal(3)}, settle(rows, again) + [closed], now=late)
    fake.faults += [("POST /ingest", "429", 0)] * 2  # refused on both tries: not taken
    [refused] = client(url, retries=1).send_usage(more, late).values()
    assert (refused.status, refused.retryable) == ("failed", True)
    assert [b["status"] for b in fake.backfills.values()] == ["reflected"] * 3  # none left pending


def _credit_note(invoice_number: str, amount_minor: int, currency: str = "USD"):
    [row] = plan_refunds([{"document_number": "CN-202601-acme-1", "invoice_number": invoice_number,
                           "customer_id": "acme", "amount_minor": amount_minor, "currency": currency}],
                         [], "orb", {"acme": "ext_acme"}, NOON)
    return row


def test_a_refund_is_one_credit_note_split_over_the_lines_whatever_answers_are_lost(orb_account):
    fake, url = orb_account
    fake.add_invoice("ext_acme", "INV-202601-acme", [("li_fee", "10.00"), ("li_usage", "3.00")],
                     datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 2, 1, tzinfo=timezone.utc))
    row = _credit_note("INV-202601-acme", 1200)  # 12.00: all of the larger line, 2.00 of the other
    fake.faults += [("POST /credit_notes", "lose", 0)]
    [first] = client(url, retries=0).request_refunds([row], NOON).values()
    assert first.status == "requested" and first.failure_reason.startswith("no answer from Orb")
    [second] = client(url).request_refunds([first], NOON).values()  # found by its memo, not made again
    fake._idempotent.clear()  # Orb keeps idempotency keys for a while only: the memo still finds it
    [third] = client(url).request_refunds([row], NOON).values()
    assert [(n["memo"], n["total"], [(line["id"].split(":")[0], line["amount"]) for line in n["line_items"]])
            for n in fake.credit_notes] == [("CN-202601-acme-1", "12.00", [("li_fee", "10.00"), ("li_usage", "2.00")])]
    assert second.status == third.status == "succeeded" and second.provider_refund_id == "cn_1"
    assert second.provider_payment_id == "inv_1"


def test_a_refund_the_invoice_cannot_carry_fails_with_the_reason(orb_account):
    fake, url = orb_account
    fake.add_invoice("ext_acme", "INV-202601-acme", [("li_fee", "10.00")], datetime(2026, 1, 1, tzinfo=timezone.utc),
                     datetime(2026, 2, 1, tzinfo=timezone.utc), currency="EUR")
    [missing] = client(url).request_refunds([_credit_note("INV-202601-other", 100)], NOON).values()
    [currency] = client(url).request_refunds([_credit_note("INV-202601-acme", 100)], NOON).values()
    [too_much] = client(url).request_refunds([_credit_note("INV-202601-acme", 1001, "EUR")], NOON).values()
    assert (missing.status, missing.retryable) == ("failed", True)
    assert missing.failure_reason == "no Orb invoice of ext_acme carries metadata invoice_number=INV-202601-other"
    assert currency.failure_reason == "Orb invoice inv_1 is in EUR, the credit note in USD" and not currency.retryable
    assert too_much.failure_reason == "Orb invoice inv_1 totals less than the 10.01 EUR to credit"
    assert fake.credit_notes == []


def test_orbs_view_is_read_back_exactly_and_a_missing_event_is_a_named_break(orb_account):
    fake, url = orb_account
    fake.now = NOON + timedelta(hours=1)  # within Orb's grace period of the day's noon
    rows = rows_for({("acme", "egress_gb"): Decimal("0.1"), ("globex", "egress_gb"): Decimal("0.2"),
                     ("acme", "api_requests"): Decimal(7)})
    provider = client(url)
    provider.send_usage(rows[1:], NOON + timedelta(hours=1))  # acme's api_requests never reached Orb
    start, end = datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 2, 1, tzinfo=timezone.utc)
    held = provider.usage_totals({"acme": "ext_acme", "globex": "ext_globex"}, ["api_requests", "egress_gb"],
                                 start, end, [row.identifier for row in rows])
    assert held == {("acme", "egress_gb"): Decimal("0.1"), ("globex", "egress_gb"): Decimal("0.2")}
    ours = {("acme", "egress_gb"): Decimal("0.1"), ("globex", "egress_gb"): Decimal("0.2"),
            ("acme", "api_requests"): Decimal(7)}
    [requests_row] = [row for row in usage_rows("2026-01", "orb", ours, held, {"acme": "ext_acme", "globex": "ext_globex"},
                                                {}) if row["status"] != "matches"]
    assert (requests_row["status"], requests_row["ours"], requests_row["theirs"]) == ("not_at_provider", "7", "0")

    fake.add_invoice("ext_acme", "INV-202601-acme", [("li_1", "10.00"), ("li_2", "0.05")], start, end)
    fake.add_invoice("ext_acme", "INV-202601-acme-adj", [("li_3", "1.10")], start, end)
    fake.add_invoice("ext_acme", "INV-202602-acme", [("li_4", "99.00")], end, end + timedelta(days=28))
    assert provider.invoice_totals(["ext_acme", "ext_globex"], start, end) == {"ext_acme": (1115, "USD")}


def test_amounts_travel_in_major_units_by_the_currency_exponent():
    assert (major_text(1250, "USD"), major_text(5, "USD"), major_text(1250, "JPY"), major_text(-7, "EUR")) == (
        "12.50", "0.05", "1250", "-0.07")
