"""A month rated from daily metered rows, per contract, worked by hand."""

from datetime import date
from decimal import Decimal

import pyarrow as pa

from billing_assets.metering.aggregate import METERED_USAGE_SCHEMA
from billing_assets.rating.rate import rate_month
from billing_assets.reference.loading import load_reference
from billing_assets_tests.conftest import reference_files

CONTRACTS = ("contract_id,customer_id,plan_id,start_date,end_date,discount_percent\n"
             "c-acme-old,acme,pro,2025-01-01,2026-01-11,\n"
             "c-acme-new,acme,pro,2026-01-11,,\n"
             "c-globex,globex,pro,2026-02-01,,\n"
             "c-initech,initech,euro,2025-06-01,,\n")


def metered(day: int, customer: str, meter: str, aggregation: str, quantity: str, events: int = 1, values=None,
            at=None, event_id=None) -> dict:
    return {"day": date(2026, 1, day), "customer_id": customer, "meter": meter, "aggregation": aggregation,
            "quantity": Decimal(quantity), "event_count": events, "latest_timestamp": at, "latest_event_id": event_id,
            "distinct_values": values}


def rated(rows) -> dict:
    reference = load_reference(reference_files(contracts_csv=CONTRACTS).get)
    table = rate_month("2026-01", pa.Table.from_pylist(rows, schema=METERED_USAGE_SCHEMA), reference)
    return {(row["contract_id"], row["line_type"], row["meter"]): row for row in table.to_pylist()}


def test_a_mid_month_plan_change_rates_each_contract_on_its_own_days():
    rows = rated([
        metered(3, "acme", "egress_gb", "sum", "10"),
        metered(10, "acme", "egress_gb", "sum", "2.5"),   # last day of the old contract
        metered(11, "acme", "egress_gb", "sum", "100"),   # first day of the new one
        metered(20, "acme", "api_requests", "count", "150000", events=150000),
    ])
    old, new = rows[("c-acme-old", "usage", "egress_gb")], rows[("c-acme-new", "usage", "egress_gb")]
    # old: 12.5 GB × 0.08 = 1.00; new: 100 GB × 0.08 = 8.00
    assert (old["quantity"], old["amount_exact"], old["amount_minor"]) == (Decimal("12.5"), "1", 100)
    assert (new["quantity"], new["amount_exact"], new["amount_minor"]) == (Decimal(100), "8", 800)
    # api: 150,000 − 100,000 free = 50,000 × 0.0002 = 10.00, on the new contract only
    assert rows[("c-acme-new", "usage", "api_requests")]["amount_minor"] == 1000
    assert rows[("c-acme-old", "usage", "api_requests")]["amount_minor"] == 0
    # base fee 49.00 prorated: old covers 10 of 31 days (490/31 = 15.806… → 1581), new 21 (1029/31 = 33.19… → 3319)
    assert rows[("c-acme-old", "base_fee", None)]["amount_exact"] == "490/31"
    assert (rows[("c-acme-old", "base_fee", None)]["amount_minor"], rows[("c-acme-new", "base_fee", None)]["amount_minor"]) == (1581, 3319)
    assert (rows[("c-acme-old", "base_fee", None)]["covered_days"], rows[("c-acme-new", "base_fee", None)]["covered_days"]) == (10, 21)


def test_unpriced_meters_and_contracts_outside_the_month_get_no_line():
    rows = rated([metered(5, "acme", "peak_sessions", "max", "7"), metered(5, "globex", "egress_gb", "sum", "1")])
    assert not [key for key in rows if key[2] == "peak_sessions"]
    assert not [key for key in rows if key[0] == "c-globex"]  # starts in February


def test_tier_breakdown_is_kept_and_currency_follows_the_plan():
    rows = rated([metered(4, "acme", "api_requests", "count", "100001", events=100001),
                  metered(4, "initech", "egress_gb", "sum", "3.3")])
    api = rows[("c-acme-old", "usage", "api_requests")]
    assert api["tiers"] == ('[{"tier": 1, "quantity": "100000", "unit_price": "0", "amount": "0"}, '
                            '{"tier": 2, "quantity": "1", "unit_price": "0.0002", "amount": "0.0002"}]')
    assert api["amount_minor"] == 0  # 0.0002 rounds to 0.00
    euro = rows[("c-initech", "usage", "egress_gb")]
    assert (euro["currency"], euro["amount_exact"], euro["amount_minor"]) == ("EUR", "0.231", 23)  # 3.3 × 0.07
    assert euro["tiers"] == '[{"quantity": "3.3", "unit_price": "0.07", "amount": "0.231"}]'


def test_package_lines_say_how_many_packages():
    from billing_assets.demo.synthetic import reference_objects

    reference = load_reference(reference_objects().get)
    rows = [{"day": date(2026, 10, 3), "customer_id": "acme", "meter": "build_minutes", "aggregation": "sum",
             "quantity": Decimal("2001"), "event_count": 1, "latest_timestamp": None, "latest_event_id": None,
             "distinct_values": None}]
    table = rate_month("2026-10", pa.Table.from_pylist(rows, schema=METERED_USAGE_SCHEMA), reference)
    [line] = [row for row in table.to_pylist() if row["contract_id"] == "ct-acme-1" and row["meter"] == "build_minutes"]
    # pro: packages of 1000 minutes at 5.00; 2001 minutes need 3 packages = 15.00
    assert (line["amount_minor"], line["tiers"]) == (
        1500, '[{"packages": "3", "package_size": 1000, "package_price": "5.00", "amount": "15"}]')
