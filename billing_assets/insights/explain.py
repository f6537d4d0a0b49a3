"""`billing explain DOCUMENT_NUMBER`: why a customer was charged what a document says, from the
lake alone (CONTRACT.md §8) — per line the contract and pricing, the metered days behind it, the
accepted events behind those (first N in dedupe order, with where each came from), and what of
the customer's month was not billed and why.

Only the customer's month is read: the month's partitions of each daily table, through Arrow's
S3 filesystem, with the customer (and meters) pushed down as a filter and only the columns
needed fetched, so a document is explained without reading the rest of the lake."""

from __future__ import annotations

import json
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from billing_assets.insights.charges import contract_terms
from billing_assets.invoicing.assets import documents_prefix
from billing_assets.invoicing.render import money
from billing_assets.lib.lake import BillingLake
from billing_assets.lib.money import decimal_text
from billing_assets.reference.assets import read_reference

INVOICE = re.compile(r"INV-(?P<yyyymm>\d{6})-(?P<customer>[A-Za-z0-9_-]{1,64})")
CORRECTION = re.compile(r"(?P<prefix>CN|ADJ)-(?P<yyyymm>\d{6})-(?P<customer>[A-Za-z0-9_-]{1,64})-(?P<sequence>\d+)")
DEDUPE_ORDER = [("dt", "ascending"), ("object_key", "ascending"), ("line_number", "ascending")]


class UnknownDocument(LookupError):
    pass


def _month(yyyymm: str) -> str:
    return f"{yyyymm[:4]}-{yyyymm[4:]}"


def find_document(lake: BillingLake, number: str) -> dict:
    """The document as issued, or a draft invoice as the invoices table has it now."""
    match = INVOICE.fullmatch(number) or CORRECTION.fullmatch(number)
    if match is None:
        raise UnknownDocument(f"{number!r} is not a document number (INV-YYYYMM-<customer>, CN-…-<n>, ADJ-…-<n>)")
    month, customer = _month(match["yyyymm"]), match["customer"]
    body = lake.get_bytes_or_none(f"{documents_prefix(month, customer)}{number}.json")
    if body is not None:
        return json.loads(body) | {"status": "issued"}
    if number.startswith("INV-") and lake.get_bytes_or_none(lake.partition_key("invoices", month)) is not None:
        heads = lake.read_table("invoices", month).filter(pc.equal(pc.field("invoice_number"), number)).to_pylist()
        if heads:
            lines = lake.read_table("invoice_lines", month).filter(pc.equal(pc.field("invoice_number"), number))
            return heads[0] | {"document_number": number, "kind": "invoice", "lines": lines.to_pylist()}
    raise UnknownDocument(f"no document {number} in s3://{lake.bucket_name}/documents/{month}/{customer}/ "
                          f"nor among {month}'s draft invoices")


def customer_month(lake: BillingLake, table: str, month: str, customer_id: str, columns: list[str],
                   days: set[str] | None = None) -> pa.Table:
    """``columns`` (and ``dt``) of one customer's rows of a daily table in ``month``: only the
    month's partitions (or ``days`` of them) are opened, the customer filter pushed down."""
    prefix = f"warehouse/{table}/dt={month}-"
    keys = [item.key for item in lake.list_objects(prefix)
            if days is None or item.key.split("/")[2].removeprefix("dt=") in days]
    if not keys:
        return pa.table({name: [] for name in ["dt", *columns]})
    dataset = ds.dataset([f"{lake.bucket_name}/{key}" for key in keys], format="parquet",
                         filesystem=lake.arrow_filesystem(), partition_base_dir=f"{lake.bucket_name}/warehouse/{table}",
                         partitioning=ds.partitioning(pa.schema([("dt", pa.string())]), flavor="hive"))
    # many partitions are opened at once: each costs a few round trips before its bytes flow
    return dataset.to_table(columns=["dt", *columns], filter=pc.field("customer_id") == customer_id,
                            fragment_readahead=32)


def _locations(table: pa.Table, limit: int, columns: list[str]) -> list[dict]:
    if table.num_rows == 0 or limit <= 0:
        return []
    first = table.take(pc.select_k_unstable(table, k=min(limit, table.num_rows), sort_keys=DEDUPE_ORDER))
    rows = first.select(columns).to_pylist()
    for row in rows:
        for name, value in row.items():
            if hasattr(value, "isoformat"):
                row[name] = value.isoformat().replace("+00:00", "Z")
            elif name == "quantity" and value is not None:
                row[name] = decimal_text(value)
    return rows


def _line_quantity(line: dict, rated: list[dict]) -> str | None:
    if "quantity" in line:
        return line["quantity"]
    for row in rated:  # a correction's line: the quantity it billed up or down to
        if (row["contract_id"], row["line_type"], row["meter"]) == (line["contract_id"], line["line_type"], line["meter"]):
            return None if row["quantity"] is None else decimal_text(row["quantity"])
    return None


def explain(lake: BillingLake, number: str, meter: str | None = None, events: int = 20) -> dict:
    document = find_document(lake, number)
    month, customer_id = document["month"], document["customer_id"]
    terms = contract_terms(read_reference(lake), month)
    lines = [line for line in document["lines"] if meter is None or line["meter"] == meter]
    meters = sorted({line["meter"] for line in lines if line["meter"]})
    wanted = {
        "metered_usage": ["meter", "quantity", "event_count"],
        "usage_events": ["object_key", "line_number", "source", "event_id", "timestamp", "meter", "quantity"],
        "quarantined_events": ["object_key", "line_number", "reason", "meter", "quantity", "detail"],
        "duplicate_events": ["object_key", "line_number", "source", "event_id", "meter", "first_object_key",
                             "first_line_number"],
    }
    with ThreadPoolExecutor(max_workers=len(wanted)) as pool:  # Arrow reads without the GIL
        tables = dict(zip(wanted, pool.map(lambda name: customer_month(lake, name, month, customer_id, wanted[name]),
                                           wanted)))
    metered, accepted = tables["metered_usage"], tables["usage_events"]
    quarantined, duplicates = tables["quarantined_events"], tables["duplicate_events"]
    rated = []
    if document["kind"] != "invoice" and lake.get_bytes_or_none(lake.partition_key("rated_charges", month)):
        rated = lake.read_table("rated_charges", month).filter(pc.field("customer_id") == customer_id).to_pylist()
    explained = []
    for line in lines:
        entry = {"contract_id": line["contract_id"], "line_type": line["line_type"], "meter": line["meter"],
                 "quantity": _line_quantity(line, rated),
                 "amount_minor": line["amount_minor"] if "amount_minor" in line else line["difference_minor"],
                 "pricing": json.loads(line["tiers"]) if line.get("tiers") else None, "days": [],
                 "events": {"count": 0, "first": []}}
        if "difference_minor" in line:
            entry |= {"billed_minor": line["billed_minor"], "owed_minor": line["owed_minor"]}
        contract = terms.get(line["contract_id"])
        if line["line_type"] == "usage" and contract is not None:
            in_span = pc.is_in(pc.field("dt"), value_set=pa.array([day.isoformat() for day in contract.days()]))
            days = metered.filter((pc.field("meter") == line["meter"]) & in_span).sort_by("dt")
            entry["days"] = [{"day": row["dt"], "quantity": decimal_text(row["quantity"]), "event_count": row["event_count"]}
                             for row in days.to_pylist()]
            behind = accepted.filter((pc.field("meter") == line["meter"]) & in_span)
            entry["events"] = {"count": behind.num_rows, "first": _locations(
                behind, events, ["object_key", "line_number", "source", "event_id", "timestamp", "quantity"])}
        explained.append(entry)
    if meter is not None:
        quarantined = quarantined.filter(pc.field("meter") == meter)
        duplicates = duplicates.filter(pc.field("meter") == meter)
    corrected_by = []
    if document["kind"] == "invoice" and document["status"] == "issued":
        corrected_by = sorted((item.key.rsplit("/", 1)[1].removesuffix(".json")
                               for item in lake.list_objects(documents_prefix(month, customer_id))
                               if item.key.endswith(".json") and item.key.rsplit("/", 1)[1].startswith(("CN-", "ADJ-"))),
                              key=lambda name: int(name.rsplit("-", 1)[1]))
    return {
        "document_number": document["document_number"], "kind": document["kind"], "status": document["status"],
        "corrected_by": corrected_by,
        "customer_id": customer_id, "month": month, "currency": document["currency"],
        "total_minor": document.get("total_minor", document.get("amount_minor")),
        "invoice_number": document.get("invoice_number"), "meters": meters, "lines": explained,
        "not_billed": {
            "by_reason": dict(sorted(Counter(quarantined.column("reason").to_pylist()).items())),
            "duplicates": duplicates.num_rows,
            "quarantined_first": _locations(quarantined, events, ["object_key", "line_number", "reason", "meter",
                                                                  "quantity", "detail"]),
            "duplicates_first": _locations(duplicates, events, ["object_key", "line_number", "source", "event_id",
                                                                "first_object_key", "first_line_number"]),
        },
    }


def explain_text(result: dict) -> str:
    """The explanation for a person at a terminal."""
    currency = result["currency"]
    kind = result["kind"].replace("_", " ")
    out = [f"{result['document_number']} · {kind} ({result['status']}) · customer {result['customer_id']} · "
           f"{result['month']} · total {money(result['total_minor'], currency)}"]
    if result["kind"] != "invoice":
        out.append(f"corrects {result['invoice_number']}; the lines below are the ones whose amount changed")
    if result["corrected_by"]:
        out.append(f"corrected since by {', '.join(result['corrected_by'])}: the amounts are as issued, the days and "
                   "events below are the month's usage as it stands now")
    for line in result["lines"]:
        item = line["meter"] or line["line_type"].replace("_", " ")
        quantity = f" × {line['quantity']}" if line["quantity"] is not None else ""
        change = (f" (billed {money(line['billed_minor'], currency)}, owed {money(line['owed_minor'], currency)})"
                  if "billed_minor" in line else "")
        out += ["", f"{line['contract_id']}  {item}{quantity}  {money(line['amount_minor'], currency)}{change}"]
        for part in line["pricing"] or []:
            out.append("  pricing: " + ", ".join(f"{key} {value}" for key, value in part.items()))
        if line["line_type"] != "usage":
            continue
        days = line["days"]
        out.append(f"  metered days: {len(days)}" + (": " + ", ".join(
            f"{day['day']} {day['quantity']} ({day['event_count']} ev)" for day in days[:7])
            + (", …" if len(days) > 7 else "") if days else ""))
        shown = line["events"]["first"]
        out.append(f"  accepted events: {line['events']['count']}" + (f"; first {len(shown)} in dedupe order:" if shown else ""))
        for event in shown:
            out.append(f"    {event['object_key']}:{event['line_number']}  {event['source'] or '-'}/{event['event_id']}  "
                       f"{event['timestamp']}  {event['quantity']}")
    missing = result["not_billed"]
    held = sum(missing["by_reason"].values())
    out += ["", f"not billed in {result['month']}: {held} quarantined line(s)"
            + (" (" + ", ".join(f"{reason} {count}" for reason, count in missing["by_reason"].items()) + ")" if held else "")
            + f", {missing['duplicates']} duplicate(s)"]
    for row in missing["quarantined_first"]:
        out.append(f"    {row['object_key']}:{row['line_number']}  {row['reason']}: {row['detail']}")
    for row in missing["duplicates_first"]:
        out.append(f"    {row['object_key']}:{row['line_number']}  duplicate of {row['first_object_key']}:"
                   f"{row['first_line_number']}")
    return "\n".join(out)
