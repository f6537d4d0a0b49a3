"""The sync ledger's arithmetic, against a plain model: whatever sequence of metered quantities a
day goes through (late data up, corrections down, a key appearing or vanishing), after each
plan the ledger's quantities for the provider add up to the latest metered ones exactly, a
re-plan adds nothing, and identifiers never repeat."""

from datetime import date, datetime, timezone
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from billing_assets.providers.ledger import allocated, from_table, plan, to_table

DAY, NOW = date(2026, 1, 5), datetime(2026, 1, 6, tzinfo=timezone.utc)
KEYS = [("acme", "egress_gb"), ("acme", "api_requests"), ("globex", "egress_gb")]
quantities = st.decimals(min_value=0, max_value=10**6, places=9, allow_nan=False, allow_infinity=False)
snapshots = st.lists(st.dictionaries(st.sampled_from(KEYS), quantities), min_size=1, max_size=6)


@given(snapshots)
def test_after_every_plan_the_ledger_adds_up_to_what_is_metered(history):
    ledger = []
    for metered in history:
        ledger = from_table(to_table(ledger + plan(DAY, metered, ledger, "stripe", {}, NOW)))  # stored and read back
        assert {key: held for key, held in allocated(ledger, "stripe").items() if held} == \
            {key: quantity for key, quantity in metered.items() if quantity}
        assert plan(DAY, metered, ledger, "stripe", {}, NOW) == []
    assert len({row.identifier for row in ledger}) == len(ledger)
    for key in {row.key for row in ledger}:
        rows = [row for row in ledger if row.key == key]
        assert [row.revision for row in rows] == list(range(1, len(rows) + 1))
        assert [row.kind for row in rows] == ["usage"] + ["correction"] * (len(rows) - 1)


def test_a_dry_run_never_counts_as_sent_to_a_real_provider():
    metered = {("acme", "egress_gb"): Decimal("1.5")}
    dry = plan(DAY, metered, [], "none", {}, NOW)
    late = {("acme", "egress_gb"): Decimal("2.25")}
    stripe = plan(DAY, late, dry, "stripe", {"acme": "cus_A"}, NOW)
    assert [(row.quantity_sent, row.kind, row.revision, row.provider_customer_id) for row in stripe] == [
        (Decimal("2.25"), "usage", 1, "cus_A")]
    assert [(row.quantity_sent, row.kind) for row in plan(DAY, late, dry, "none", {}, NOW)] == [
        (Decimal("0.75"), "correction")]
