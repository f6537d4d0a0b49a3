"""Fixtures for the usage tests that run Dagster against the S3 server: one seeded day."""

import gzip

import pytest

from billing_assets.definitions import defs
from billing_assets_tests.conftest import reference_files
from billing_assets_tests.usage.helpers import event

DAY = "2026-01-05"
PREFIX = f"raw/usage/dt={DAY}/"
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


@pytest.fixture
def day_objects():
    first = "".join(line + "\n" for line in [
        event(event_id="a1", quantity="2.5"),
        event(event_id="a2", meter="api_requests", quantity=...),
        event(event_id="a3", meter="active_users", quantity=..., properties={"user_id": "u1"}),
        "{not json",
        event(event_id="a4", customer_id="hooli"),
    ]).encode()
    second = "".join(line + "\n" for line in [event(event_id="a1", quantity="2.5"), event(event_id="b1", quantity="1")])
    return {
        PREFIX + "part-1.jsonl": first,
        PREFIX + "part-2.jsonl.gz": gzip.compress(second.encode(), mtime=0),
        PREFIX + "part-3.jsonl.gz": b"definitely not gzip",
    }


@pytest.fixture
def seeded(put, day_objects):
    put(reference_files() | day_objects)


def run_day(instance, day=DAY, **kwargs):
    """The daily job for one partition, as ``billing run`` launches it."""
    return defs.resolve_job_def("daily_usage_job").execute_in_process(
        partition_key=day, instance=instance, raise_on_error=False, run_config=QUIET, **kwargs)


