"""Reference files: valid ones load; every broken one fails naming file, row and problem."""

import pytest

from billing_assets.reference.loading import ReferenceDataError, ReferenceFileMissing, load_reference
from billing_assets_tests.conftest import CONTRACTS, reference_files


def load(**overrides):
    return load_reference(reference_files(**overrides).get)


def test_valid_reference_loads():
    reference = load()
    assert reference.meter_aggregation()["active_users"] == "unique_count"
    assert reference.meter_field() == {"active_users": "user_id"}
    assert sorted(reference.plan_charges["meter"]) == ["api_requests", "egress_gb", "egress_gb"]


def error_of(**overrides) -> str:
    with pytest.raises(ReferenceDataError) as raised:
        load(**overrides)
    return str(raised.value)


HEADER = "contract_id,customer_id,plan_id,start_date,end_date,discount_percent\n"


@pytest.mark.parametrize(("overrides", "message"), [
    ({"contracts_csv": CONTRACTS + "c-acme-2,acme,pro,2026-03-01,,\n"},
     "reference/contracts.csv, line 5: contract 'c-acme-2' overlaps contract 'c-acme' of customer 'acme'"),
    ({"contracts_csv": HEADER + "c1,initech,pro,2026-01-01,,\n"},
     "reference/contracts.csv, line 2: plan 'pro' is priced in USD but customer 'initech' pays in EUR"),
    ({"contracts_csv": HEADER + "c1,acme,pro,2026-01-01,2026-01-01,\n"},
     "reference/contracts.csv, line 2: end_date must be after start_date"),
    ({"contracts_csv": HEADER + "c1,wayne,pro,2026-01-01,,\n"},
     "reference/contracts.csv, line 2: customer 'wayne' is not in reference/customers.csv"),
    ({"contracts_csv": HEADER + "c1,acme,pro,2026-02-30,,\n"},
     "reference/contracts.csv, line 2: column 'start_date' value '2026-02-30' fails check not a YYYY-MM-DD date"),
    ({"contracts_csv": HEADER + "c1,acme,pro,2026-01-01,,101\n"},
     "reference/contracts.csv, line 2: column 'discount_percent' value '101' fails check not empty or a decimal from 0 to 100"),
    ({"customers_csv": "customer_id,name,currency\nacme,Acme,USD\nacme,Acme again,USD\n"},
     "reference/customers.csv, line 2: column 'customer_id' value 'acme'"),
    ({"customers_csv": "customer_id,name,currency\nacme,Acme,XYZ\n"},
     "reference/customers.csv, line 2: column 'currency' value 'XYZ'"),
    ({"ip_allocations_csv": "cidr,customer_id,valid_from,valid_to\n10.0.0.1/8,acme,2025-01-01,\n"},
     "reference/ip_allocations.csv, line 2: column 'cidr' value '10.0.0.1/8' fails check not an IPv4/IPv6 CIDR block"),
    ({"ip_allocations_csv": "cidr,customer_id,valid_from,valid_to\n10.0.0.0/8,acme,2025-01-01,\n10.0.0.0/8,globex,2025-06-01,\n"},
     "reference/ip_allocations.csv, line 3: 10.0.0.0/8 is allocated twice at once (also on line 2)"),
    ({"plans_yaml": "plans:\n  - plan_id: p\n    currency: USD\n    charges:\n      - {meter: egress_gb, model: per_unit, unit_price: 0.08}\n"},
     "reference/plans.yaml, plan 'p', charge 1: unit_price must be a quoted decimal string such as \"0.08\", got 0.08"),
    ({"plans_yaml": "plans:\n  - plan_id: p\n    currency: USD\n    charges:\n      - {meter: egress_gb, model: volume, tiers: [{up_to: 100, unit_price: \"1\"}, {up_to: 50, unit_price: \"0.5\"}, {up_to: null, unit_price: \"0.1\"}]}\n"},
     "reference/plans.yaml, plan 'p', charge 1, tier 2: tiers must ascend: up_to 50 follows 100"),
    ({"plans_yaml": "plans:\n  - plan_id: p\n    currency: USD\n    charges:\n      - {meter: egress_gb, model: graduated, tiers: [{up_to: 100, unit_price: \"1\"}]}\n"},
     "reference/plans.yaml, plan 'p', charge 1, tier 1: the last tier must be open (up_to: null)"),
    ({"plans_yaml": "plans:\n  - plan_id: p\n    currency: USD\n    charges:\n      - {meter: teleports, model: per_unit, unit_price: \"1\"}\n"},
     "reference/plans.yaml, plan 'p', charge 1: meter 'teleports' is not in reference/meters.yaml"),
    ({"meters_yaml": "meters:\n  - {name: users, aggregation: unique_count, unit: user}\n"},
     "reference/meters.yaml, entry 1: "),
    ({"meters_yaml": "meters: [this is not yaml"}, "reference/meters.yaml: not valid YAML"),
])
def test_broken_reference_names_file_row_and_problem(overrides, message):
    assert error_of(**overrides).startswith(message)


def test_a_missing_reference_file_is_named():
    files = reference_files()
    del files["reference/ip_allocations.csv"]
    with pytest.raises(ReferenceFileMissing, match="reference/ip_allocations.csv: file not found"):
        load_reference(files.get)


def test_fingerprint_changes_with_content():
    onboarded = CONTRACTS + "c-hooli,hooli,pro,2026-02-01,,\n"
    assert load().fingerprint == load().fingerprint
    assert load().fingerprint != load(contracts_csv=onboarded).fingerprint
