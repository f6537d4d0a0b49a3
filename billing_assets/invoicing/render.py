"""Customer-readable HTML of an issued document (invoice, credit note, adjustment invoice)."""

import json
from html import escape

from billing_assets.lib.currency import MINOR_UNIT_EXPONENT

TITLES = {"invoice": "Invoice", "credit_note": "Credit note", "adjustment_invoice": "Adjustment invoice"}


def money(minor: int, currency: str) -> str:
    """Minor units in the currency's own format, never through a float: USD 1,234.56, JPY 1,235."""
    exponent = MINOR_UNIT_EXPONENT[currency]
    whole, fraction = divmod(abs(minor), 10**exponent)
    return f"{currency} {'-' if minor < 0 else ''}{whole:,}" + (f".{fraction:0{exponent}d}" if exponent else "")


def _describe(line: dict) -> str:
    if line["line_type"] == "usage":
        return f"{line['meter']}" + (f" × {line['quantity']}" if line.get("quantity") is not None else "")
    return {"base_fee": "Base fee", "discount": "Discount", "minimum_true_up": "Minimum commitment true-up"}[
        line["line_type"]]


def _pricing(part: dict) -> str:
    if "packages" in part:
        return f"{escape(part['packages'])} × package of {part['package_size']} at {escape(part['package_price'])}"
    tier = f"tier {part['tier']}: " if "tier" in part else ""
    return f"{tier}{escape(part['quantity'])} × {escape(part['unit_price'])}"


def document_html(document: dict) -> str:
    currency, kind = document["currency"], document["kind"]
    if kind == "invoice":
        header = "<tr><th>Contract</th><th>Item</th><th>Detail</th><th>Amount</th></tr>"
        rows = []
        for line in document["lines"]:
            detail = ""
            if line.get("tiers"):
                detail = "<br>".join(_pricing(part) for part in json.loads(line["tiers"]))
            rows.append(f"<tr><td>{escape(line['contract_id'])}</td><td>{escape(_describe(line))}</td>"
                        f"<td>{detail}</td><td class='amount'>{money(line['amount_minor'], currency)}</td></tr>")
        total = document["total_minor"]
    else:
        header = "<tr><th>Contract</th><th>Item</th><th>Billed</th><th>Owed</th><th>Difference</th></tr>"
        rows = [f"<tr><td>{escape(line['contract_id'])}</td><td>{escape(_describe(line))}</td>"
                f"<td class='amount'>{money(line['billed_minor'], currency)}</td>"
                f"<td class='amount'>{money(line['owed_minor'], currency)}</td>"
                f"<td class='amount'>{money(line['difference_minor'], currency)}</td></tr>" for line in document["lines"]]
        total = document["amount_minor"]
    reference = "" if kind == "invoice" else f"<p>Corrects invoice {escape(document['invoice_number'])}.</p>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(document['document_number'])}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}
.amount{{text-align:right;font-variant-numeric:tabular-nums}}</style></head><body>
<h1>{TITLES[kind]} {escape(document['document_number'])}</h1>
<p>Customer {escape(document['customer_id'])} · period {escape(document['month'])} · currency {escape(currency)}</p>
{reference}<table>{header}{''.join(rows)}</table>
<p><strong>Total: {money(total, currency)}</strong></p>
</body></html>
"""
