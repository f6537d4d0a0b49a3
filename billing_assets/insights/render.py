"""A statement as one self-contained HTML page: no script, no fetch, readable in print.

Every customer-supplied string goes through ``escape``; numbers are drawn from exact decimals
(a bar's height is an integer number of pixels worked out in ``Decimal``)."""

from __future__ import annotations

from calendar import monthrange
from collections import defaultdict
from collections.abc import Mapping
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from html import escape

from billing_assets.invoicing.render import money

CHART_WIDTH, CHART_HEIGHT, BAR_GAP = 620, 120, 2
STATUS = {"final": "Final", "month_to_date": "Month to date"}
ITEMS = {"base_fee": "Base fee", "discount": "Discount", "minimum_true_up": "Minimum commitment true-up"}

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:60em;color:#1d2330;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #d8dde6;padding-bottom:.2em}
.meta{color:#5b6575}.badge{display:inline-block;padding:.1em .6em;border-radius:1em;background:#e8eefc;color:#1f4fbf;font-size:.85em}
.badge.final{background:#e5f5ea;color:#1c7a3c}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #e3e7ee;padding:6px 8px;text-align:left;vertical-align:top}
th{font-size:.85em;color:#5b6575;font-weight:600}.amount{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.nowrap{white-space:nowrap}.total td{font-weight:700;border-top:2px solid #1d2330}.why{color:#3d4758;font-size:.9em}.pending{color:#a15c00}
.summary{display:flex;gap:2em;flex-wrap:wrap;margin:1em 0}.summary div{background:#f5f7fa;padding:.8em 1.2em;border-radius:6px}
.summary strong{display:block;font-size:1.4em}svg{display:block;margin:.4em 0 1.4em}svg .mark{fill:#3b6fe0}
svg .axis{stroke:#9aa3b2;stroke-width:1}svg text{font-size:10px;fill:#5b6575}
@media print{body{margin:0;max-width:none}.summary div{border:1px solid #ccc;background:none}h2{break-after:avoid}
table,svg{break-inside:avoid}svg .mark{fill:#333}}
"""


def _chart(meter: str, rows: list[Mapping], month: str, unit: str) -> str:
    """One bar per metered day (``class="mark"``), on the month's days."""
    first = date.fromisoformat(f"{month}-01")
    days = monthrange(first.year, first.month)[1]
    peak = max((Decimal(row["quantity"]) for row in rows), default=Decimal(0))
    slot = Decimal(CHART_WIDTH) / days
    marks = []
    for row in rows:
        quantity = Decimal(row["quantity"])
        height = int((quantity / peak * CHART_HEIGHT).to_integral_value(ROUND_HALF_UP)) if peak else 0
        x = int(((date.fromisoformat(row["day"]).day - 1) * slot).to_integral_value(ROUND_HALF_UP))
        width = max(1, int(slot) - BAR_GAP)
        marks.append(f'<rect class="mark" x="{x}" y="{CHART_HEIGHT - height}" width="{width}" height="{height}" '
                     f'data-day="{row["day"]}" data-quantity="{escape(row["quantity"])}">'
                     f'<title>{row["day"]}: {escape(row["quantity"])} {escape(unit)}</title></rect>')
    label = f"{escape(meter)} per day, peak {peak:,f} {escape(unit)}"
    return (f'<svg role="img" aria-label="{label}" width="{CHART_WIDTH}" height="{CHART_HEIGHT + 16}" '
            f'viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT + 16}" xmlns="http://www.w3.org/2000/svg">'
            f'<title>{label}</title>{"".join(marks)}'
            f'<line class="axis" x1="0" y1="{CHART_HEIGHT}" x2="{CHART_WIDTH}" y2="{CHART_HEIGHT}"/>'
            f'<text x="0" y="{CHART_HEIGHT + 12}">1</text>'
            f'<text x="{CHART_WIDTH - 14}" y="{CHART_HEIGHT + 12}">{days}</text></svg>')


def _item(line: Mapping) -> str:
    return escape(line["meter"]) if line["line_type"] == "usage" else ITEMS[line["line_type"]]


def _lines(statement: Mapping) -> str:
    currency = statement["currency"]
    rows = []
    for line in statement["lines"]:
        pending = ' <span class="pending">(correction pending)</span>' if line.get("pending") else ""
        rows.append(f"<tr><td class='nowrap'>{escape(line['contract_id'])}</td><td>{_item(line)}</td>"
                    f"<td class='amount'>{escape(line['quantity'] or '')}</td>"
                    f"<td class='why'>{escape(line.get('explanation') or '')}{pending}</td>"
                    f"<td class='amount'>{money(line['amount_minor'], currency)}</td></tr>")
    label = "Owed now" if statement["status"] == "final" else "Month to date"
    return ("<table><tr><th>Contract</th><th>Item</th><th class='amount'>Quantity</th><th>How it is charged</th>"
            f"<th class='amount'>Amount</th></tr>{''.join(rows)}<tr class='total'><td colspan='4'>{label}</td>"
            f"<td class='amount'>{money(statement['total_minor'], currency)}</td></tr></table>")


def _corrections(statement: Mapping) -> str:
    if not statement["corrections"]:
        return ""
    currency, parts = statement["currency"], []
    for correction in statement["corrections"]:
        title = "Credit note" if correction["kind"] == "credit_note" else "Adjustment invoice"
        detail = "".join(
            f"<tr><td>{escape(line['contract_id'])}</td><td>{_item(line)}</td>"
            f"<td class='amount'>{money(line['billed_minor'], currency)}</td>"
            f"<td class='amount'>{money(line['owed_minor'], currency)}</td>"
            f"<td class='amount'>{money(line['difference_minor'], currency)}</td></tr>" for line in correction["lines"])
        parts.append(f"<h3>{title} {escape(correction['document_number'])}: {money(correction['amount_minor'], currency)}</h3>"
                     f"<p class='why'>{escape(correction['explanation'])}</p><table><tr><th>Contract</th><th>Item</th>"
                     "<th class='amount'>Billed before</th><th class='amount'>Owed</th><th class='amount'>Difference</th>"
                     f"</tr>{detail}</table>")
    return "<h2>Corrections since the invoice</h2>" + "".join(parts)


def _usage(statement: Mapping) -> str:
    by_meter = defaultdict(list)
    for row in statement["usage"]:
        by_meter[row["meter"]].append(row)
    if not by_meter:
        return "<h2>Daily usage</h2><p>No usage was metered this month.</p>"
    charts = [f"<h3>{escape(meter)} <span class='meta'>({escape(rows[0]['aggregation'])}, "
              f"{len(rows)} day(s), month {escape(statement['quantities'].get(meter, '0'))} "
              f"{escape(statement['units'].get(meter, ''))})</span></h3>"
              + _chart(meter, rows, statement["month"], statement["units"].get(meter, ""))
              for meter, rows in sorted(by_meter.items())]
    return "<h2>Daily usage</h2>" + "".join(charts)


def _change(statement: Mapping) -> str:
    currency, rows = statement["currency"], []
    for change in statement["change_vs_previous_month"]:
        then = ("—" if change["previous_quantity"] is None else escape(change["previous_quantity"]),
                "—" if change["previous_amount_minor"] is None else money(change["previous_amount_minor"], currency))
        rows.append(f"<tr><td>{escape(change['meter'])}</td><td class='amount'>{then[0]}</td>"
                    f"<td class='amount'>{escape(change['quantity'])}</td><td class='amount'>{then[1]}</td>"
                    f"<td class='amount'>{money(change['amount_minor'], currency)}</td></tr>")
    return ("<h2>Compared with the previous month</h2><table><tr><th>Meter</th><th class='amount'>Quantity then</th>"
            "<th class='amount'>Quantity now</th><th class='amount'>Amount then</th><th class='amount'>Amount now</th></tr>"
            + "".join(rows) + "</table>") if rows else ""


def _summary(statement: Mapping) -> str:
    currency, forecast = statement["currency"], statement["forecast"]
    owed = "Owed for the month" if statement["status"] == "final" else "Month to date"
    boxes = [f"<div>{owed}<strong>{money(statement['total_minor'], currency)}</strong></div>"]
    if forecast:
        boxes.append(f"<div>Forecast for the whole month<strong>{money(forecast['expected_minor'], currency)}</strong>"
                     f"90 % interval {money(forecast['low_minor'], currency)} – {money(forecast['high_minor'], currency)}</div>")
    method = f"<p class='why'>How the forecast is made: {escape(forecast['method'])}</p>" if forecast else ""
    return f"<div class='summary'>{''.join(boxes)}</div>{method}"


def statement_html(statement: Mapping) -> str:
    status = statement["status"]
    as_of = f" as of {escape(statement['as_of'])}" if statement["as_of"] and status != "final" else ""
    invoice = f" · invoice {escape(statement['invoice_number'])}" if statement.get("invoice_number") else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Usage statement {escape(statement['month'])} · {escape(statement['name'])}</title><style>{STYLE}</style></head><body>
<h1>{escape(statement['name'])}</h1>
<p class="meta">Usage statement for {escape(statement['month'])} · customer {escape(statement['customer_id'])}{invoice} ·
amounts in {escape(statement['currency'])} · <span class="badge {status}">{STATUS[status]}{as_of}</span></p>
{_summary(statement)}
<h2>Charges</h2>{_lines(statement)}
{_corrections(statement)}
{_usage(statement)}
{_change(statement)}
<p class="meta">Computed from the same metered usage, rated charges and documents that bill this account; the lines
add up to the total exactly. Each amount is rounded once, half-up, to the currency's minor unit.</p>
</body></html>
"""
