"""How well the forecast does: for a past month in the lake, forecasts made as of given days
(as if only the days up to then had been metered) against what the month really came to.

    python -m billing_assets.insights.backtest 2026-10 [--days 10 20]

The month's real total per customer is its invoice as computed from today's rated charges."""

from __future__ import annotations

import argparse
from datetime import date

from billing_assets.insights.charges import contract_terms
from billing_assets.insights.forecast import forecast_customer
from billing_assets.invoicing.build import build_invoices
from billing_assets.lib.lake import BillingLake
from billing_assets.rating.assets import metered_month
from billing_assets.reference.assets import read_reference


def backtest(lake: BillingLake, month: str, days: list[int]) -> list[dict]:
    reference = read_reference(lake)
    terms = contract_terms(reference, month)
    aggregation = reference.meter_aggregation()
    metered, _ = metered_month(lake, month)
    usage: dict[str, list[dict]] = {}
    for row in metered.to_pylist():
        usage.setdefault(row["customer_id"], []).append(row)
    results = []
    for invoice in build_invoices(month, lake.read_table("rated_charges", month), reference):
        mine = [terms[contract] for contract in sorted({line["contract_id"] for line in invoice.lines})]
        for day in days:
            as_of = date.fromisoformat(f"{month}-{day:02d}")
            forecast = forecast_customer(mine, usage.get(invoice.customer_id, []), aggregation, as_of)
            results.append({"customer_id": invoice.customer_id, "currency": invoice.currency, "as_of": as_of.isoformat(),
                            "actual_minor": invoice.total_minor, **{key: forecast[key] for key in
                                                                    ("expected_minor", "low_minor", "high_minor")},
                            "held": forecast["low_minor"] <= invoice.total_minor <= forecast["high_minor"]})
    return results


def main() -> None:
    from billing_assets.invoicing.render import money
    from billing_assets.resources import billing_lake

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("month")
    parser.add_argument("--days", type=int, nargs="+", default=[10, 20])
    args = parser.parse_args()
    results = backtest(billing_lake(), args.month, args.days)
    for row in results:
        currency = row["currency"]
        error = (row["expected_minor"] - row["actual_minor"]) / row["actual_minor"] if row["actual_minor"] else 0.0
        print(f"{row['customer_id']:<12} as of {row['as_of']}: forecast {money(row['expected_minor'], currency)} "
              f"[{money(row['low_minor'], currency)} – {money(row['high_minor'], currency)}], actual "
              f"{money(row['actual_minor'], currency)} ({error:+.1%}) {'held' if row['held'] else 'MISSED'}")
    for day in args.days:
        of_day = [row for row in results if row["as_of"].endswith(f"-{day:02d}")]
        print(f"day {day}: the interval held the month's total for {sum(row['held'] for row in of_day)} of {len(of_day)}")


if __name__ == "__main__":
    main()
