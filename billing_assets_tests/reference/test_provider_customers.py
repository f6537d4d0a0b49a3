"""`reference/provider_customers.csv`: who each customer is at the billing provider, refused
loudly (file, line, problem) when it would send one customer's usage to another's account."""

import pytest

from billing_assets.reference.loading import ReferenceDataError, load_reference
from billing_assets.reference.provider_customers import load_provider_customers
from billing_assets_tests.conftest import reference_files

HEADER = "customer_id,provider_customer_id\n"


def load(body: str | None) -> dict[str, str]:
    files = reference_files() | ({} if body is None else {"reference/provider_customers.csv": body.encode()})
    return load_provider_customers(files.get, load_reference(reference_files().get))


def test_a_valid_file_maps_each_customer_and_no_file_maps_none():
    assert load(HEADER + "acme,cus_A1\nglobex,ext:globex-1\n") == {"acme": "cus_A1", "globex": "ext:globex-1"}
    assert load(None) == {}


@pytest.mark.parametrize(("body", "message"), [
    (HEADER + "acme,cus_A\nwho,cus_W\n", "line 3: customer_id 'who' is not in reference/customers.csv"),
    (HEADER + "acme,cus_A\nacme,cus_B\n", "line 3: customer_id 'acme' is mapped again (first on line 2)"),
    (HEADER + "acme,cus_A\nglobex,cus_A\n",
     "line 3: provider_customer_id 'cus_A' is already acme's (line 2): their usage would merge"),
    (HEADER + "acme,cus A\n", "line 2: provider_customer_id must be 1-255 of [A-Za-z0-9_.:-], got 'cus A'"),
    ("customer,stripe_id\nacme,cus_A\n", "line 1: the header must be customer_id,provider_customer_id"),
])
def test_a_broken_file_names_file_line_and_problem(body, message):
    with pytest.raises(ReferenceDataError) as error:
        load(body)
    assert str(error.value).startswith(f"reference/provider_customers.csv, {message}"), str(error.value)
