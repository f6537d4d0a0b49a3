"""A stateful property test (hypothesis): land files and late files, re-send events, change a
contract's discount, run days and months before and after the grace period, in any order. After
every step: each metered day's lines are all accounted for, acme's issued invoice never changes
once issued, and what it owes — the invoice plus every correction — equals an independent model
of the month (49.00 base fee + 0.08 per GB metered, less the discount, half-up to the cent)."""

import io
import json
import uuid
from decimal import ROUND_HALF_UP, Decimal

import boto3
import dagster as dg
import pyarrow.parquet as pq
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from billing_assets_tests.conftest import CONTRACTS, reference_files
from billing_assets_tests.invoicing.test_assets import AFTER_GRACE, BEFORE_GRACE, run
from billing_assets_tests.usage.helpers import event

DAYS = ("2026-01-05", "2026-01-06")
DOCS = "documents/2026-01/acme/"


@pytest.fixture(autouse=True)
def _s3(aws_env):
    """The S3 server's environment for every example (each makes its own bucket)."""


class BillingMonth(RuleBasedStateMachine):
    @initialize(discount=st.sampled_from([0, 10, 25]), gigabytes=st.integers(1, 40))
    def start(self, discount, gigabytes):
        self.bucket = f"billing-state-{uuid.uuid4().hex[:12]}"
        self.s3 = boto3.client("s3")
        self.s3.create_bucket(Bucket=self.bucket)
        self._instance = dg.instance_for_test()
        self.instance = self._instance.__enter__()
        self._patch = pytest.MonkeyPatch()
        self._patch.setenv("BILLING_BUCKET", self.bucket)
        self.landed = {day: {} for day in DAYS}  # event id → GB, first landed wins (the model's dedupe)
        self.lines = {day: 0 for day in DAYS}  # lines landed per day
        self.metered = {day: {} for day in DAYS}  # what each day's last run saw
        self.metered_lines = {day: 0 for day in DAYS}
        self.issued_bytes = None
        self.objects = 0
        self._put(reference_files())
        self.change_discount(discount)
        self.land_file(DAYS[0], [gigabytes], resend=False, run_now=True)  # a month with usage from the start

    def teardown(self):
        """Every sequence ends by running both days and the month past its grace: whatever came
        before (files landed late, a discount changed after issue), the month must settle."""
        if not hasattr(self, "_instance"):
            return
        try:
            for day in DAYS:
                self.run_day(day)
            self.run_month(after_grace=True)
            self.every_line_is_accounted_for()
            self.an_issued_invoice_never_changes()
        finally:
            self._instance.__exit__(None, None, None)
            self._patch.undo()

    def _put(self, objects: dict) -> None:
        for key, body in objects.items():
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)

    @rule(day=st.sampled_from(DAYS), gigabytes=st.lists(st.integers(1, 40), min_size=1, max_size=3),
          resend=st.booleans(), run_now=st.booleans())
    def land_file(self, day, gigabytes, resend, run_now):
        """A new object for ``day`` (late if the day was run already); ``resend``: it also carries
        a copy of an event landed before (a duplicate); ``run_now``: the sensor runs the day."""
        self.objects += 1
        events = {f"e{self.objects}-{n}": size for n, size in enumerate(gigabytes)}
        lines = [event(event_id=eid, quantity=str(size), timestamp=f"{day}T10:00:00Z") for eid, size in events.items()]
        if resend and self.landed[day]:
            eid, size = next(iter(self.landed[day].items()))
            lines.append(event(event_id=eid, quantity=str(size), timestamp=f"{day}T10:00:00Z"))
        self._put({f"raw/usage/dt={day}/obj-{self.objects:03d}.jsonl": "".join(f"{line}\n" for line in lines).encode()})
        for eid, size in events.items():
            self.landed[day].setdefault(eid, size)
        self.lines[day] += len(lines)
        if run_now:
            self.run_day(day)

    @rule(discount=st.sampled_from([0, 10, 25]))
    def change_discount(self, discount):
        self._put(reference_files(contracts_csv=CONTRACTS.replace("c-acme,acme,pro,2026-01-01,,",
                                                                  f"c-acme,acme,pro,2026-01-01,,{discount or ''}")))
        self.discount = discount

    @rule(day=st.sampled_from(DAYS))
    def run_day(self, day):
        run(self.instance, "daily_usage_job", day)
        self.metered[day], self.metered_lines[day] = dict(self.landed[day]), self.lines[day]

    @rule()
    def issue_month(self):
        self.run_month(after_grace=True)

    @precondition(lambda self: self.issued_bytes is None)
    @rule()
    def draft_month(self):
        self.run_month(after_grace=False)

    def run_month(self, after_grace):
        run(self.instance, "monthly_billing_job", "2026-01", as_of=AFTER_GRACE if after_grace else BEFORE_GRACE)
        if after_grace:
            self.issued_bytes = self.issued_bytes or self._get(f"{DOCS}INV-202601-acme.json")
            documents = [json.loads(self._get(key)) for key in self._keys(DOCS) if key.endswith(".json")]
            owed = sum(document["total_minor"] if document["kind"] == "invoice" else document["amount_minor"]
                       for document in documents)
            gigabytes = sum(size for day in DAYS for size in self.metered[day].values())
            subtotal = Decimal("49.00") + Decimal("0.08") * gigabytes
            discount = (subtotal * self.discount / 100).quantize(Decimal("0.01"), ROUND_HALF_UP)
            assert owed == int((subtotal - discount) * 100), (owed, gigabytes, self.discount)

    def _get(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def _keys(self, prefix: str) -> list[str]:
        return [item["Key"] for item in self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix).get("Contents", [])]

    def _rows(self, table: str, day: str) -> int:
        return pq.read_table(io.BytesIO(self._get(f"warehouse/{table}/dt={day}/part-00000.parquet"))).num_rows

    @invariant()
    def every_line_is_accounted_for(self):
        for day in DAYS:
            if self.metered_lines[day]:
                accepted, duplicates = self._rows("usage_events", day), self._rows("duplicate_events", day)
                assert accepted == len(self.metered[day]) and self._rows("quarantined_events", day) == 0
                assert accepted + duplicates == self.metered_lines[day]

    @invariant()
    def an_issued_invoice_never_changes(self):
        if self.issued_bytes is not None:
            assert self._get(f"{DOCS}INV-202601-acme.json") == self.issued_bytes


# three sequences: the third is the one that caught the discount mutation (docs/operations.md, Reliability)
BillingMonth.TestCase.settings = settings(max_examples=3, stateful_step_count=5, deadline=None, derandomize=True)
TestBillingMonth = BillingMonth.TestCase
