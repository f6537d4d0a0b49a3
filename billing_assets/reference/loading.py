"""Read and validate the reference files. A broken file fails loudly with file, row and problem:
billing on a half-understood price book is worse than not billing at all."""

from __future__ import annotations

import hashlib
import io
import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import pandas as pd
import pandera.pandas as pa
import yaml

from billing_assets.reference.schemas import (
    DECIMAL_PATTERN,
    PRICING_MODELS,
    ContractFile,
    CustomerFile,
    IpAllocationFile,
    MeterEntry,
    PlanEntry,
)

METERS_KEY = "reference/meters.yaml"
PLANS_KEY = "reference/plans.yaml"
CUSTOMERS_KEY = "reference/customers.csv"
CONTRACTS_KEY = "reference/contracts.csv"
IP_ALLOCATIONS_KEY = "reference/ip_allocations.csv"
REFERENCE_KEYS = (METERS_KEY, PLANS_KEY, CUSTOMERS_KEY, CONTRACTS_KEY, IP_ALLOCATIONS_KEY)


class ReferenceDataError(Exception):
    """A reference file is unusable. ``str()`` names the file, the row and the problem."""

    def __init__(self, file: str, row: str | None, problem: str):
        self.file, self.row, self.problem = file, row, problem
        super().__init__(f"{file}, {row}: {problem}" if row else f"{file}: {problem}")


class ReferenceFileMissing(ReferenceDataError):
    pass


@dataclass(frozen=True)
class ReferenceData:
    """The validated reference files, all values as exact text."""

    meters: pd.DataFrame
    plans: pd.DataFrame
    plan_charges: pd.DataFrame
    customers: pd.DataFrame
    contracts: pd.DataFrame
    ip_allocations: pd.DataFrame
    content_sha256: dict[str, str] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """One hash of all reference content: quarantine is a pure function of raw data and this."""
        joined = "".join(f"{key}={digest};" for key, digest in sorted(self.content_sha256.items()))
        return hashlib.sha256(joined.encode()).hexdigest()[:16]

    def meter_aggregation(self) -> dict[str, str]:
        return dict(zip(self.meters["name"], self.meters["aggregation"]))

    def meter_field(self) -> dict[str, str]:
        unique = self.meters[self.meters["aggregation"] == "unique_count"]
        return dict(zip(unique["name"], unique["field"]))

    def customers_under_contract(self, day: date) -> set[str]:
        """Customers with a contract covering ``day`` (start_date <= day < end_date)."""
        iso = day.isoformat()
        covering = self.contracts[
            (self.contracts["start_date"] <= iso)
            & ((self.contracts["end_date"] == "") | (self.contracts["end_date"] > iso))
        ]
        return set(covering["customer_id"])

    def priced_meters_on(self, day: date) -> dict[str, set[str]]:
        """Per customer, the meters its plan charges on ``day`` (contracts covering the day)."""
        iso = day.isoformat()
        covering = self.contracts[
            (self.contracts["start_date"] <= iso)
            & ((self.contracts["end_date"] == "") | (self.contracts["end_date"] > iso))
        ]
        charged = self.plan_charges.groupby("plan_id")["meter"].apply(set).to_dict()
        return {customer: set(charged.get(plan, ())) for customer, plan in zip(covering["customer_id"], covering["plan_id"])}

    def allocations_valid_on(self, day: date) -> list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]]:
        iso = day.isoformat()
        valid = self.ip_allocations[
            (self.ip_allocations["valid_from"] <= iso)
            & ((self.ip_allocations["valid_to"] == "") | (self.ip_allocations["valid_to"] > iso))
        ]
        return [(ipaddress.ip_network(cidr), customer) for cidr, customer in zip(valid["cidr"], valid["customer_id"])]


def _decode(key: str, body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ReferenceDataError(key, None, f"not UTF-8 ({error.reason} at byte {error.start})") from None


def _read_csv(key: str, body: bytes) -> pd.DataFrame:
    try:
        return pd.read_csv(io.StringIO(_decode(key, body)), dtype=str, keep_default_na=False, na_filter=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise ReferenceDataError(key, None, f"not a readable CSV: {error}") from None


def _validate(key: str, frame: pd.DataFrame, model: type[pa.DataFrameModel], row_label: Callable[[int], str]):
    try:
        return model.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        first = cases.sort_values("index", na_position="first", key=lambda s: pd.to_numeric(s, errors="coerce")).iloc[0]
        row = None if pd.isna(first["index"]) else row_label(int(first["index"]))
        column = first["column"] if isinstance(first["column"], str) else None
        subject = f"column '{column}' value {first['failure_case']!r}" if row and column else str(first["failure_case"])
        more = f" (and {len(cases) - 1} more problems)" if len(cases) > 1 else ""
        raise ReferenceDataError(key, row, f"{subject} fails check {first['check']}{more}") from None


def _csv_line(index: int) -> str:
    return f"line {index + 2}"  # line 1 is the header


def _yaml_list(key: str, body: bytes, top: str) -> list:
    try:
        document = yaml.safe_load(_decode(key, body))
    except yaml.YAMLError as error:
        raise ReferenceDataError(key, None, f"not valid YAML: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get(top), list):
        raise ReferenceDataError(key, None, f"expected a top-level '{top}:' list")
    return document[top]


def _money_text(key: str, row: str, name: str, value, *, optional: bool = False) -> str:
    if value is None and optional:
        return ""
    if not isinstance(value, str) or not DECIMAL_PATTERN.fullmatch(value):
        raise ReferenceDataError(key, row, f"{name} must be a quoted decimal string such as \"0.08\", got {value!r}")
    return value


def _load_meters(body: bytes) -> pd.DataFrame:
    entries = _yaml_list(METERS_KEY, body, "meters")
    rows = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or set(entry) - {"name", "aggregation", "unit", "field"}:
            raise ReferenceDataError(METERS_KEY, f"entry {number}", "expected a mapping of name, aggregation, unit, field")
        rows.append({name: None if entry.get(name) is None else str(entry[name]) for name in ("name", "aggregation", "unit", "field")})
    frame = pd.DataFrame(rows, columns=["name", "aggregation", "unit", "field"]).astype(object)
    return _validate(METERS_KEY, frame, MeterEntry, lambda index: f"entry {index + 1}")


def _load_tiers(row: str, tiers) -> list[dict]:
    if not isinstance(tiers, list) or not tiers:
        raise ReferenceDataError(PLANS_KEY, row, "tiers must be a non-empty list")
    parsed, previous = [], None
    for number, tier in enumerate(tiers, start=1):
        where = f"{row}, tier {number}"
        if not isinstance(tier, dict) or set(tier) != {"up_to", "unit_price"}:
            raise ReferenceDataError(PLANS_KEY, where, "a tier is {up_to, unit_price}")
        up_to = tier["up_to"]
        last = number == len(tiers)
        if up_to is None:
            if not last:
                raise ReferenceDataError(PLANS_KEY, where, "only the last tier may have up_to: null")
        else:
            if last:
                raise ReferenceDataError(PLANS_KEY, where, "the last tier must be open (up_to: null)")
            if isinstance(up_to, bool) or not (
                (isinstance(up_to, int) and up_to > 0) or (isinstance(up_to, str) and DECIMAL_PATTERN.fullmatch(up_to))
            ):
                raise ReferenceDataError(PLANS_KEY, where, f"up_to must be a positive integer or decimal string, got {up_to!r}")
            if previous is not None and Decimal(str(up_to)) <= previous:
                raise ReferenceDataError(PLANS_KEY, where, f"tiers must ascend: up_to {up_to} follows {previous}")
            previous = Decimal(str(up_to))
        parsed.append({"up_to": None if up_to is None else str(up_to),
                       "unit_price": _money_text(PLANS_KEY, where, "unit_price", tier["unit_price"])})
    return parsed


def _load_plans(body: bytes, meter_names: set[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    entries = _yaml_list(PLANS_KEY, body, "plans")
    plans, charges = [], []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or not {"plan_id", "currency", "charges"} <= set(entry):
            raise ReferenceDataError(PLANS_KEY, f"plan {number}", "a plan needs plan_id, currency and charges")
        plan_id = str(entry["plan_id"])
        where = f"plan '{plan_id}'"
        unknown = set(entry) - {"plan_id", "currency", "base_fee", "minimum_commitment", "charges"}
        if unknown:
            raise ReferenceDataError(PLANS_KEY, where, f"unknown keys {sorted(unknown)}")
        plans.append({
            "plan_id": plan_id,
            "currency": str(entry["currency"]),
            "base_fee": _money_text(PLANS_KEY, where, "base_fee", entry.get("base_fee"), optional=True),
            "minimum_commitment": _money_text(
                PLANS_KEY, where, "minimum_commitment", entry.get("minimum_commitment"), optional=True
            ),
        })
        if not isinstance(entry["charges"], list):
            raise ReferenceDataError(PLANS_KEY, where, "charges must be a list")
        priced = set()
        for charge_number, charge in enumerate(entry["charges"], start=1):
            at = f"{where}, charge {charge_number}"
            if not isinstance(charge, dict) or "meter" not in charge or "model" not in charge:
                raise ReferenceDataError(PLANS_KEY, at, "a charge needs meter and model")
            meter, model = str(charge["meter"]), charge["model"]
            if meter not in meter_names:
                raise ReferenceDataError(PLANS_KEY, at, f"meter '{meter}' is not in {METERS_KEY}")
            if meter in priced:
                raise ReferenceDataError(PLANS_KEY, at, f"meter '{meter}' is priced twice")
            priced.add(meter)
            if model not in PRICING_MODELS:
                raise ReferenceDataError(PLANS_KEY, at, f"model must be one of {list(PRICING_MODELS)}, got {model!r}")
            allowed = {"per_unit": {"unit_price"}, "graduated": {"tiers"}, "volume": {"tiers"},
                       "package": {"package_size", "package_price"}}[model]
            if set(charge) - {"meter", "model"} != allowed:
                raise ReferenceDataError(PLANS_KEY, at, f"a {model} charge takes exactly {sorted(allowed)}")
            row = {"plan_id": plan_id, "meter": meter, "model": model, "unit_price": "",
                   "package_size": "", "package_price": "", "tiers": ""}
            if model == "per_unit":
                row["unit_price"] = _money_text(PLANS_KEY, at, "unit_price", charge["unit_price"])
            elif model == "package":
                size = charge["package_size"]
                if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
                    raise ReferenceDataError(PLANS_KEY, at, f"package_size must be a positive integer, got {size!r}")
                row["package_size"] = str(size)
                row["package_price"] = _money_text(PLANS_KEY, at, "package_price", charge["package_price"])
            else:
                row["tiers"] = json.dumps(_load_tiers(at, charge["tiers"]))
            charges.append(row)
    plan_frame = _validate(PLANS_KEY, pd.DataFrame(plans, columns=["plan_id", "currency", "base_fee", "minimum_commitment"]),
                           PlanEntry, lambda index: f"plan {index + 1}")
    charge_frame = pd.DataFrame(charges, columns=["plan_id", "meter", "model", "unit_price", "package_size",
                                                  "package_price", "tiers"])
    return plan_frame, charge_frame


def _overlapping(frame: pd.DataFrame, group: str, start: str, end: str):
    """(earlier, later) rows of one group whose [start, end) windows overlap (empty end: open).
    Sorted by start, any overlap shows up between neighbours, so one vectorised pass finds them."""
    ordered = frame.assign(end_or_open=frame[end].replace("", "9999-12-31")).sort_values([group, start], kind="stable")
    same_group = ordered[group].eq(ordered[group].shift())
    overlaps = same_group & (ordered[start] < ordered["end_or_open"].shift())
    positions = overlaps.to_numpy().nonzero()[0]
    rows = list(ordered.itertuples()) if len(positions) else []
    for position in positions:
        yield rows[position - 1], rows[position]


def _suspects(frame: pd.DataFrame, *masks: pd.Series) -> pd.DataFrame:
    """The rows any mask flags, in file order: only they are looked at one by one."""
    flagged = masks[0]
    for mask in masks[1:]:
        flagged = flagged | mask
    return frame[flagged.to_numpy()]


def _check_contracts(contracts: pd.DataFrame, customers: pd.DataFrame, plans: pd.DataFrame) -> None:
    currency_of_customer = dict(zip(customers["customer_id"], customers["currency"]))
    currency_of_plan = dict(zip(plans["plan_id"], plans["currency"]))
    customer_currency = contracts["customer_id"].map(currency_of_customer)
    plan_currency = contracts["plan_id"].map(currency_of_plan)
    suspects = _suspects(contracts, customer_currency.isna(), plan_currency.isna(), customer_currency != plan_currency,
                         (contracts["end_date"] != "") & (contracts["end_date"] <= contracts["start_date"]))
    for index, contract in suspects.iterrows():
        where = _csv_line(index)
        if contract["customer_id"] not in currency_of_customer:
            raise ReferenceDataError(CONTRACTS_KEY, where, f"customer '{contract['customer_id']}' is not in {CUSTOMERS_KEY}")
        if contract["plan_id"] not in currency_of_plan:
            raise ReferenceDataError(CONTRACTS_KEY, where, f"plan '{contract['plan_id']}' is not in {PLANS_KEY}")
        if currency_of_plan[contract["plan_id"]] != currency_of_customer[contract["customer_id"]]:
            raise ReferenceDataError(
                CONTRACTS_KEY, where,
                f"plan '{contract['plan_id']}' is priced in {currency_of_plan[contract['plan_id']]} but customer "
                f"'{contract['customer_id']}' pays in {currency_of_customer[contract['customer_id']]}",
            )
        if contract["end_date"] and contract["end_date"] <= contract["start_date"]:
            raise ReferenceDataError(CONTRACTS_KEY, where, "end_date must be after start_date")
    for earlier, later in _overlapping(contracts, "customer_id", "start_date", "end_date"):
        raise ReferenceDataError(
            CONTRACTS_KEY, _csv_line(later.Index),
            f"contract '{later.contract_id}' overlaps contract '{earlier.contract_id}' of customer '{later.customer_id}'",
        )


def _check_ip_allocations(allocations: pd.DataFrame, customers: pd.DataFrame) -> None:
    known = set(customers["customer_id"])
    suspects = _suspects(allocations, ~allocations["customer_id"].isin(known),
                         (allocations["valid_to"] != "") & (allocations["valid_to"] <= allocations["valid_from"]))
    for index, allocation in suspects.iterrows():
        if allocation["customer_id"] not in known:
            raise ReferenceDataError(
                IP_ALLOCATIONS_KEY, _csv_line(index), f"customer '{allocation['customer_id']}' is not in {CUSTOMERS_KEY}"
            )
        if allocation["valid_to"] and allocation["valid_to"] <= allocation["valid_from"]:
            raise ReferenceDataError(IP_ALLOCATIONS_KEY, _csv_line(index), "valid_to must be after valid_from")
    networks = allocations.assign(network=allocations["cidr"].map(lambda cidr: str(ipaddress.ip_network(cidr))))
    for earlier, later in _overlapping(networks, "network", "valid_from", "valid_to"):
        raise ReferenceDataError(
            IP_ALLOCATIONS_KEY, _csv_line(later.Index),
            f"{later.cidr} is allocated twice at once (also on line {earlier.Index + 2}); attribution would be ambiguous",
        )


_LOADED: dict[str, ReferenceData] = {}  # by the files' content: validated once per process


def load_reference(read: Callable[[str], bytes | None]) -> ReferenceData:
    """Load every reference file through ``read(key)`` (None = missing) and cross-check them.
    Every asset of a run reads the files again (so a run never mixes two versions of them);
    files whose bytes were already validated in this process are not validated again."""
    bodies = {}
    for key in REFERENCE_KEYS:
        body = read(key)
        if body is None:
            raise ReferenceFileMissing(key, None, "file not found in the bucket")
        bodies[key] = body
    digest = hashlib.sha256(b"".join(hashlib.sha256(bodies[key]).digest() for key in REFERENCE_KEYS)).hexdigest()
    if digest not in _LOADED:
        if len(_LOADED) >= 4:
            _LOADED.clear()
        _LOADED[digest] = _load(bodies)
    return _LOADED[digest]


def _load(bodies: dict[str, bytes]) -> ReferenceData:
    meters = _load_meters(bodies[METERS_KEY])
    plans, plan_charges = _load_plans(bodies[PLANS_KEY], set(meters["name"]))
    customers = _validate(CUSTOMERS_KEY, _read_csv(CUSTOMERS_KEY, bodies[CUSTOMERS_KEY]), CustomerFile, _csv_line)
    contracts = _read_csv(CONTRACTS_KEY, bodies[CONTRACTS_KEY])
    if "discount_percent" not in contracts.columns:
        contracts["discount_percent"] = ""
    contracts = _validate(CONTRACTS_KEY, contracts, ContractFile, _csv_line)
    _check_contracts(contracts, customers, plans)
    ip_allocations = _validate(IP_ALLOCATIONS_KEY, _read_csv(IP_ALLOCATIONS_KEY, bodies[IP_ALLOCATIONS_KEY]),
                               IpAllocationFile, _csv_line)
    _check_ip_allocations(ip_allocations, customers)
    return ReferenceData(
        meters=meters,
        plans=plans,
        plan_charges=plan_charges,
        customers=customers,
        contracts=contracts,
        ip_allocations=ip_allocations,
        content_sha256={key: hashlib.sha256(body).hexdigest() for key, body in bodies.items()},
    )
