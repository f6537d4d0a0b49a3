"""The platform running itself: a real `dagster-daemon` over an on-disk instance and the S3 server.

Nobody launches anything. Files land in S3; the daemon's sensors request runs, its run queue
launches them in subprocesses, its automation sensor carries changes downstream. The test only
lands files and waits for what a user would look for: the day's metered usage, then, after a
late file for a month whose invoices were issued, an adjustment invoice.

BILLING_GRACE_HOURS=0 makes last month issuable whatever today's date; BILLING_SETTLE_SECONDS=0
lets the sensor act on the tick after a landing.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest

from billing_assets_tests.conftest import reference_files
from billing_assets_tests.usage.helpers import event

ROOT = Path(__file__).resolve().parents[1]
DEADLINE_SECONDS = 240


def wait_for(what: str, found, timeout: float = DEADLINE_SECONDS, daemon_log: Path | None = None):
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        value = found()
        if value:
            return value
        time.sleep(2)
    tail = daemon_log.read_text()[-3000:] if daemon_log and daemon_log.exists() else ""
    pytest.fail(f"{what}: not there after {timeout} s\n{tail}")


@pytest.fixture
def daemon(tmp_path, bucket, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("BILLING_GRACE_HOURS", "0")
    monkeypatch.setenv("BILLING_SETTLE_SECONDS", "0")
    log = tmp_path / "daemon.log"
    instance = dg.DagsterInstance.from_config(str(home))  # storage created before the daemon shares it
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")],
            cwd=ROOT, env=os.environ.copy(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield instance, log
    finally:
        instance.dispose()
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def test_landed_files_are_metered_and_a_late_file_becomes_an_adjustment_without_a_manual_launch(daemon, put, s3, bucket):
    instance, log = daemon
    today = datetime.now(timezone.utc).date()
    day = (today.replace(day=1) - timedelta(days=1)).isoformat()  # last day of last month: issuable, watched
    month = day[:7]
    stamp = f"{day}T12:00:00Z"
    first = "".join(event(event_id=f"e{n}", timestamp=stamp, quantity="2") + "\n" for n in range(3))
    put(reference_files() | {f"raw/usage/dt={day}/first.jsonl": first.encode()})

    wait_for(f"metered_usage {day}", lambda: day in instance.get_materialized_partitions(dg.AssetKey("metered_usage")),
             daemon_log=log)
    trigger = {run.tags.get("billing/trigger") for run in instance.get_runs() if run.job_name == "daily_usage_job"}
    assert trigger == {"raw_usage_sensor"}

    invoice_key = f"documents/{month}/acme/INV-{month.replace('-', '')}-acme.json"

    def issued():
        return s3.list_objects_v2(Bucket=bucket, Prefix=invoice_key).get("KeyCount", 0)

    wait_for(f"issued invoice {invoice_key}", issued, daemon_log=log)

    late = event(event_id="late-1", timestamp=stamp, quantity="5") + "\n"
    put({f"raw/usage/dt={day}/late.jsonl": late.encode()})

    def adjustment():
        listing = s3.list_objects_v2(Bucket=bucket, Prefix=f"documents/{month}/acme/ADJ-")
        return [item["Key"] for item in listing.get("Contents", []) if item["Key"].endswith(".json")]

    [document_key] = wait_for("adjustment invoice for the late file", adjustment, daemon_log=log)

    document = json.loads(s3.get_object(Bucket=bucket, Key=document_key)["Body"].read())
    # acme is on 'pro': egress at 0.08 per GB; the late 5 GB add 0.40 USD
    assert (document["kind"], document["amount_minor"], document["invoice_number"]) == (
        "adjustment_invoice", 40, f"INV-{month.replace('-', '')}-acme")
    assert {run.tags.get("billing/trigger") for run in instance.get_runs()} <= {
        "raw_usage_sensor", "invoice_issuing_sensor", "reference_sensor", None}
