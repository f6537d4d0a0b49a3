"""Invoice lines of a contract-month, worked by hand to the minor unit."""

import math
from decimal import Decimal
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from billing_assets.invoicing.lines import ContractMonth, PlanTerms, contract_lines, invoice_number, invoice_total
from billing_assets.rating.pricing import Charge, Tier

D = Decimal
PRO = PlanTerms(
    currency="USD",
    charges=(Charge("api_requests", "graduated", tiers=(Tier(D(100000), D("0")), Tier(None, D("0.0002")))),
             Charge("egress_gb", "per_unit", unit_price=D("0.08"))),
    base_fee=D("49.00"), minimum_commitment=D("100.00"),
)


def summary(lines):
    return [(line.line_type, line.meter, line.amount_minor) for line in lines]


def test_a_contract_covering_ten_days_with_a_discount_and_a_minimum():
    contract = ContractMonth("c1", discount_percent=D("10"), covered_days=10, days_in_month=31)
    lines = contract_lines(contract, PRO, {"api_requests": D(150000), "egress_gb": D("123.456"), "gpu_seconds": D(9)})
    # api: 50,000 over the free tier × 0.0002 = 10.00 → 1000
    # egress: 123.456 × 0.08 = 9.87648 → 988
    # base fee: 49.00 × 10/31 = 15.806… → 1581
    # subtotal 3569; discount −round_half_up(356.9) = −357
    # minimum: 100.00 × 10/31 = 32.258… → 3226; true-up 3226 − (3569 − 357) = 14
    assert summary(lines) == [("usage", "api_requests", 1000), ("usage", "egress_gb", 988), ("base_fee", None, 1581),
                              ("discount", None, -357), ("minimum_true_up", None, 14)]
    assert invoice_total(lines) == 3226
    assert lines[1].amount_exact == Fraction(D("9.87648"))
    assert lines[3].amount_exact == Fraction(-3569 * 10, 100 * 100)  # −35.69 exactly


def test_no_true_up_line_when_usage_exceeds_the_minimum():
    contract = ContractMonth("c1", discount_percent=D(0), covered_days=31, days_in_month=31)
    lines = contract_lines(contract, PRO, {"egress_gb": D(1000)})  # 80.00 + 49.00 = 129.00 ≥ 100.00
    assert summary(lines) == [("usage", "api_requests", 0), ("usage", "egress_gb", 8000), ("base_fee", None, 4900)]


def test_a_full_month_without_usage_is_topped_up_to_the_minimum():
    lines = contract_lines(ContractMonth("c1", D(0), 30, 30), PRO, {})
    assert summary(lines)[-1] == ("minimum_true_up", None, 5100)  # 100.00 − 49.00
    assert invoice_total(lines) == 10000


def test_jpy_and_kwd_round_to_their_own_minor_units():
    jpy = PlanTerms("JPY", (Charge("egress_gb", "per_unit", unit_price=D("12.5")),))
    kwd = PlanTerms("KWD", (Charge("egress_gb", "per_unit", unit_price=D("0.0255")),))
    month = ContractMonth("c", D(0), 31, 31)
    assert summary(contract_lines(month, jpy, {"egress_gb": D("3.3")})) == [("usage", "egress_gb", 41)]  # 41.25 → 41
    assert summary(contract_lines(month, kwd, {"egress_gb": D("10.1")})) == [("usage", "egress_gb", 258)]  # 0.25755 → 0.258


def test_a_half_cent_tie_rounds_up():
    plan = PlanTerms("USD", (Charge("egress_gb", "per_unit", unit_price=D("0.01")),))
    assert summary(contract_lines(ContractMonth("c", D(0), 31, 31), plan, {"egress_gb": D("0.5")})) == [
        ("usage", "egress_gb", 1)]  # 0.005 → 0.01


def test_invoice_number():
    assert invoice_number("2026-10", "acme") == "INV-202610-acme"


@given(st.lists(st.decimals(min_value=0, max_value=10**6, places=3), min_size=2, max_size=2),
       st.decimals(min_value=0, max_value=100, places=2), st.integers(1, 31))
def test_a_contract_month_never_bills_below_its_prorated_minimum_nor_negative(usage, discount, days):
    lines = contract_lines(ContractMonth("c", discount, days, 31), PRO,
                           {"api_requests": usage[0], "egress_gb": usage[1]})
    charges = sum(line.amount_minor for line in lines if line.line_type in ("usage", "base_fee"))
    discount_minor = sum(line.amount_minor for line in lines if line.line_type == "discount")
    minimum = math.floor(Fraction(10000 * days, 31) + Fraction(1, 2))  # half-up of the prorated 100.00, by floor
    assert 0 <= -discount_minor <= charges
    assert invoice_total(lines) == max(charges + discount_minor, minimum)
