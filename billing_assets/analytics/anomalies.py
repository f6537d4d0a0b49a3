"""`usage_anomalies` rows of one day (CONTRACT.md §9): every active contract × priced meter,
a day without usage counted as zero, judged by the detector (analytics/detect.py), and each
row made actionable — observed against the baseline and the days it came from, the rule, the
revenue at risk priced through the plan, and one sentence saying what happened.

Observed and baseline are exact quantities; scale and score are statistics (floats); revenue
at risk is minor units from the invoice's own pricing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from billing_assets.analytics.detect import WEEK, WINDOW, DayScores, Thresholds, classify, direction, score_day
from billing_assets.insights.charges import ContractTerms, contract_terms
from billing_assets.invoicing.lines import contract_lines, invoice_total
from billing_assets.invoicing.render import money
from billing_assets.lib.money import QUANTITY_SCALE, QUANTITY_TYPE, decimal_text
from billing_assets.rating.period import period_quantity
from billing_assets.reference.loading import ReferenceData
from billing_assets.reference.suppressions import Suppression

DEFAULT_THRESHOLDS = Thresholds()
HISTORY_DAYS = WINDOW + DEFAULT_THRESHOLDS.shift_days - 1  # days before a day its judgement reads
COUNTS = ("count", "unique_count")
_QUANTUM = Decimal(1).scaleb(-QUANTITY_SCALE)

USAGE_ANOMALIES_SCHEMA = pa.schema([
    ("day", pa.date32()), ("customer_id", pa.string()), ("contract_id", pa.string()), ("meter", pa.string()),
    ("kind", pa.string()), ("observed", QUANTITY_TYPE), ("baseline", QUANTITY_TYPE), ("baseline_days", pa.string()),
    ("scale", pa.float64()), ("score", pa.float64()), ("rule", pa.string()), ("revenue_at_risk_minor", pa.int64()),
    ("currency", pa.string()), ("explanation", pa.string()), ("suppressed_by", pa.string()),
])


@dataclass(frozen=True)
class Series:
    customer_id: str
    meter: str
    aggregation: str
    terms: ContractTerms


def history_days(day: date) -> list[date]:
    """The days a day's judgement reads, oldest first, the day itself last."""
    return [day - timedelta(days=back) for back in range(HISTORY_DAYS, -1, -1)]


def _series(day: date, reference: ReferenceData) -> list[Series]:
    aggregation = reference.meter_aggregation()
    active = [terms for terms in contract_terms(reference, day.isoformat()[:7]).values()
              if terms.first_day <= day <= terms.last_day]
    return [Series(terms.customer_id, meter, aggregation[meter], terms)
            for terms in sorted(active, key=lambda t: t.contract_id) for meter in sorted(terms.charges)]


def _arrays(series: Sequence[Series], days: Sequence[date], usage: Mapping[date, pa.Table | None],
            reference: ReferenceData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[S, T] quantity and events (floats: statistics only) and known (the day was metered and
    the customer had a contract then)."""
    index = {(item.customer_id, item.meter): number for number, item in enumerate(series)}
    quantity = np.zeros((len(series), len(days)))
    events = np.zeros_like(quantity)
    known = np.zeros(quantity.shape, dtype=bool)
    for column, day in enumerate(days):
        table = usage.get(day)
        if table is None:
            continue
        under_contract = reference.customers_under_contract(day)
        known[:, column] = [item.customer_id in under_contract for item in series]
        rows = [index.get(key) for key in zip(table.column("customer_id").to_pylist(), table.column("meter").to_pylist())]
        present = np.array([row is not None for row in rows], dtype=bool)
        if present.any():
            at = np.array([row for row in rows if row is not None])
            quantity[at, column] = pc.cast(table.column("quantity"), pa.float64()).to_numpy()[present]
            events[at, column] = table.column("event_count").to_numpy()[present]
    return quantity, events, known


class MeteredRows:
    """The exact ``metered_usage`` rows of some days, by customer and meter, each day's table
    turned into rows only when first asked for (the judgement itself needs only floats)."""

    def __init__(self, usage: Mapping[date, pa.Table | None]):
        self.usage, self._days = usage, {}

    def get(self, day: date, customer_id: str, meter: str) -> dict | None:
        if day not in self._days:
            table = self.usage.get(day)
            self._days[day] = {} if table is None else {
                (row["customer_id"], row["meter"]): row for row in table.to_pylist()}
        return self._days[day].get((customer_id, meter))


def _median(values: list[Decimal]) -> Decimal:
    """Exact median, the mean of the middle two rounded half-up to the quantity scale."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    value = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return value.quantize(_QUANTUM, rounding=ROUND_HALF_UP)


def _month_amount(terms: ContractTerms, quantities: Mapping[str, Decimal]) -> int:
    return invoice_total(contract_lines(terms.contract_month(), terms.plan_terms(), quantities))


def revenue_at_risk(item: Series, affected: Sequence[date], baseline: Decimal, day: date, metered: MeteredRows,
                    aggregation: Mapping[str, str]) -> int:
    """The month's amount with the ``affected`` days' usage as the baseline says it would be,
    less the amount with the usage as metered, both through the contract's own pricing (tiers,
    base fee, discount, minimum): positive when the month would under-bill if the usage is
    really missing, negative when it would over-bill if the usage is not real."""
    covered = item.terms.days(day)
    affected = [d for d in affected if d in covered]  # a silence that began last month bills there
    by_meter = {meter: [row for d in covered if (row := metered.get(d, item.customer_id, meter))]
                for meter in item.terms.charges}
    actual = {meter: period_quantity(aggregation[meter], rows) for meter, rows in by_meter.items()}
    rows = [row for row in by_meter[item.meter] if row["day"] not in affected]
    if item.aggregation == "unique_count":  # new values cannot be made up: as many more as the baseline
        observed = sum((row["quantity"] for row in by_meter[item.meter] if row["day"] in affected), Decimal(0))
        restored = max(actual[item.meter] + baseline * len(affected) - observed, Decimal(0))
    else:
        rows += [{"day": d, "quantity": baseline, "latest_event_id": "",
                  "latest_timestamp": datetime.combine(d, time.max, tzinfo=timezone.utc)} for d in affected]
        restored = period_quantity(item.aggregation, rows)
    return _month_amount(item.terms, actual | {item.meter: restored}) - _month_amount(item.terms, actual)


def _number(value: Decimal) -> str:
    text = decimal_text(value)
    whole, _, fraction = text.partition(".")
    return f"{int(whole):,}" + (f".{fraction}" if fraction else "")


def explanation(kind: str, item: Series, day: date, observed: Decimal, baseline: Decimal | None,
                baseline_days: Sequence[date], score: float, zero_run: int, event_baseline: float,
                risk: int | None, thresholds: Thresholds) -> str:
    weekday = f"{day:%A}s"
    if kind == "insufficient_history":
        return (f"Not judged: {item.meter} has fewer than {thresholds.min_history} metered days under contract in "
                f"the 4 weeks before {day:%d %b} (or fewer than 2 {weekday}).")
    against = f"a median of {_number(baseline)} on the last {len(baseline_days)} {weekday}"
    money_part = "" if risk is None else (
        f" At the plan's prices the month bills {money(abs(risk), item.terms.currency)} "
        f"{'less' if risk > 0 else 'more'} than if usage were as usual.")
    if kind == "stopped_reporting":
        return (f"No {item.meter} events for {zero_run} day{'s' if zero_run > 1 else ''} through {day:%a %d %b} vs "
                f"{against}; a feed this size sends none that long with P = e^(−{zero_run}×{event_baseline:,.0f}) "
                f"< {thresholds.zero_p:g}: check the producer.{money_part}")
    if kind == "normal":
        return f"{item.meter} {_number(observed)} vs {against}: within the usual range."
    change = (observed - baseline) / baseline if baseline else None
    shown = f"{change:+.0%}" if change is not None else "from none"
    head = f"{item.meter} {_number(observed)} on {day:%a %d %b} vs {against} ({shown}, robust z {score:+.1f})"
    if kind == "level_shift":
        return (f"{head}, and {'below' if score < 0 else 'above'} usual on each of the {thresholds.shift_days} "
                f"days to it: a new level — a lasting change of the customer's, or a producer or unit change.{money_part}")
    cause = ("a partial outage or lost files" if kind == "drop"
             else "a re-send under new event ids, a unit error, or real growth")
    return f"{head}: possibly {cause}.{money_part}"


def judge(quantity: np.ndarray, events: np.ndarray, known: np.ndarray, is_count: np.ndarray,
          thresholds: Thresholds) -> tuple[np.ndarray, DayScores]:
    """Each series' kind on the last column, and that day's scores. The days before it decide
    only whether a drop or spike has held long enough to be a level shift, so they are scored
    for the series that moved today alone (what ``classify`` over all seven days would give)."""
    last = quantity.shape[1] - 1
    today = score_day(quantity, events, known, is_count, last)
    kinds = classify([today], thresholds)
    moved = np.flatnonzero(direction(today, thresholds))
    if moved.size:
        earlier = [score_day(quantity[moved], events[moved], known[moved], is_count[moved], column)
                   for column in range(last - thresholds.shift_days + 1, last)]
        kinds[moved] = classify([*earlier, today.take(moved)], thresholds)
    return kinds, today


def anomaly_rows(day: date, usage: Mapping[date, pa.Table | None], reference: ReferenceData,
                 suppressions: Sequence[Suppression] = (), thresholds: Thresholds = DEFAULT_THRESHOLDS) -> pa.Table:
    """The day's ``usage_anomalies`` rows. ``usage``: ``metered_usage`` by day for
    ``history_days(day)``, None for a day not (yet) metered (unknown, not zero)."""
    series = _series(day, reference)
    days = history_days(day)
    if not series:
        return USAGE_ANOMALIES_SCHEMA.empty_table()
    quantity, events, known = _arrays(series, days, usage, reference)
    is_count = np.array([item.aggregation in COUNTS for item in series])
    kinds, today = judge(quantity, events, known, is_count, thresholds)
    last = len(days) - 1
    kinds[~known[:, last]] = "insufficient_history"  # the day itself not metered (yet): nothing to judge
    weekdays = [days[last - WEEK * back] for back in range(WINDOW // WEEK, 0, -1)]
    weekday_known = known[:, [last - WEEK * back for back in range(WINDOW // WEEK, 0, -1)]]
    metered, aggregation, rows, rule = MeteredRows(usage), reference.meter_aggregation(), [], thresholds.rule()
    event_baseline = np.nan_to_num(today.event_baseline)
    for number, item in enumerate(series):
        kind = str(kinds[number])
        baseline_days = [d for d, seen in zip(weekdays, weekday_known[number]) if seen]
        own = {d: row for d in [day, *baseline_days] if (row := metered.get(d, item.customer_id, item.meter))}
        observed = own[day]["quantity"] if day in own else Decimal(0)
        baseline = _median([own[d]["quantity"] if d in own else Decimal(0) for d in baseline_days]) \
            if baseline_days else None
        judged = kind not in ("normal", "insufficient_history")
        risk = None
        if judged and baseline is not None:
            run = int(today.zero_run[number]) if kind == "stopped_reporting" else 1
            risk = revenue_at_risk(item, days[last - run + 1:], baseline, day, metered, aggregation)
        suppressed = next((entry.why for entry in suppressions if entry.covers(item.customer_id, item.meter, day)), None)
        rows.append({
            "day": day, "customer_id": item.customer_id, "contract_id": item.terms.contract_id, "meter": item.meter,
            "kind": kind, "observed": observed, "baseline": baseline,
            "baseline_days": ",".join(d.isoformat() for d in baseline_days),
            "scale": float(today.scale[number]), "score": float(today.score[number]), "rule": rule,
            "revenue_at_risk_minor": risk, "currency": item.terms.currency,
            "explanation": f"Not judged: {day} is not metered yet." if not known[number, last]
            else explanation(kind, item, day, observed, baseline, baseline_days, float(today.score[number]),
                             int(today.zero_run[number]), float(event_baseline[number]), risk, thresholds)
            if baseline is not None or kind == "insufficient_history" else f"Not judged: no metered {item.meter} history.",
            "suppressed_by": suppressed if judged else None,
        })
    return pa.Table.from_pylist(rows, schema=USAGE_ANOMALIES_SCHEMA)
