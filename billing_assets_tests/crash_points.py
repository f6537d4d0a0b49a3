"""Crash points chosen, not guessed: a `billing run` is counted for its S3 writes (N), then for a
kill point k it is SIGKILLed right after its k-th write has landed, run again to completion, and
the logical state of the lake — every table's rows, every issued document, the quarantine
records — is compared with a run that was never killed.

`python -m billing_assets_tests.crash_points` sweeps every k of the scenario (`make crash-sweep`);
the test suite takes a seeded sample (test_crash_points.py)."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import boto3
import pyarrow.parquet as pq

from billing_assets_tests.conftest import reference_files
from billing_assets_tests.usage.helpers import event

# run in the child: every S3 write the lake's clients make is counted after it has landed; the
# k-th kills the process where it stands (no clean-up, no atexit: as a lost machine would)
_CHILD = r"""
import os, signal, sys
from billing_assets.lib.lake import BillingLake

WRITES = {"PutObject", "CopyObject", "DeleteObject", "DeleteObjects", "CompleteMultipartUpload"}
kill_after, count_file, state = int(os.environ["CRASH_AFTER_WRITES"]), os.environ["CRASH_COUNT_FILE"], [0]
original = BillingLake.client

def after_call(model, context, **_):
    if model.name in WRITES:
        state[0] += 1
        with open(count_file + ".log", "a") as log:  # which write is which, for a reader of the sweep
            log.write(f"{state[0]} {model.name} {context.get('s3_redirect', {}).get('params', {}).get('Key', '')}\n")
        if state[0] == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

def client(self):
    made = original(self)
    if not getattr(made, "_crash_counted", False):
        made.meta.events.register("after-call.s3", after_call)
        made._crash_counted = True
    return made

BillingLake.client = client
from billing_assets.cli import main
status = main(sys.argv[1:])
open(count_file, "w").write(str(state[0]))
sys.exit(status)
"""
DAYS = ("2026-01-05", "2026-01-06")
# tables whose rows record when things ran (or are derived from those times)
VOLATILE = ("warehouse/sla_report/", "warehouse/billing_kpis/")


def scenario() -> dict[str, bytes]:
    """Two January days (January long issued, so its documents are written): accepted events, a
    duplicate, a rejected line, an unknown customer, two customers and two currencies."""
    day1 = [event(event_id="a1"), event(event_id="a2", quantity="2"), event(event_id="a1"), "[]",
            event(event_id="g1", customer_id="globex", quantity="10"),
            event(event_id="i1", customer_id="initech", quantity="3")]
    day2 = [event(event_id="a3", timestamp="2026-01-06T08:00:00Z"),
            event(event_id="w1", timestamp="2026-01-06T09:00:00Z", customer_id="who")]
    return reference_files() | {f"raw/usage/dt={DAYS[0]}/a.jsonl": "".join(f"{line}\n" for line in day1).encode(),
                                f"raw/usage/dt={DAYS[1]}/a.jsonl": "".join(f"{line}\n" for line in day2).encode()}


def run_billing(bucket: str, home: Path, kill_after: int = 0) -> tuple[int, int]:
    """(exit code, S3 writes) of `billing run` over the scenario's days; -9 when killed."""
    with tempfile.TemporaryDirectory() as folder:
        count = Path(folder, "writes")
        env = os.environ | {"BILLING_BUCKET": bucket, "DAGSTER_HOME": str(home),
                            "CRASH_AFTER_WRITES": str(kill_after), "CRASH_COUNT_FILE": str(count)}
        child = subprocess.run([sys.executable, "-c", _CHILD, "run", "--from", DAYS[0], "--to", DAYS[-1]], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)
        return child.returncode, int(count.read_text()) if count.exists() else -1


def fresh_bucket() -> str:
    name = f"crash-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3")
    client.create_bucket(Bucket=name)
    for key, body in scenario().items():
        client.put_object(Bucket=name, Key=key, Body=body)
    return name


def logical_rows(parquet: bytes) -> list[dict]:
    """A table partition's rows, less when the provider ledgers wrote each row (a fact of the run,
    not of the data)."""
    table = pq.read_table(io.BytesIO(parquet))
    return table.drop_columns([name for name in ("planned_at",) if name in table.column_names]).to_pylist()


def digest(bucket: str) -> dict[str, object]:
    """The lake's logical state: rows of every table partition (Parquet bytes may differ between
    library versions, rows may not), issued documents as JSON, HTML and quarantine records as text."""
    client = boto3.client("s3")
    state: dict[str, object] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            key = item["Key"]
            if key.startswith(("raw/", "reference/")) or key.startswith(VOLATILE):
                continue
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            if key.endswith(".parquet"):
                state[key] = logical_rows(body)
            elif key.endswith(".json"):
                state[key] = json.loads(body)
            elif key.endswith(".gz") and "/files/" not in key:  # a quarantined file is kept as it came
                state[key] = gzip.decompress(body)
            else:
                state[key] = body
    return state


def crash_at(k: int, reference: dict, scratch: Path) -> list[str]:
    """Kill at the k-th write, run again; the keys whose content differs from ``reference``."""
    bucket, home = fresh_bucket(), scratch / f"home-{k}"
    code, _ = run_billing(bucket, home, kill_after=k)
    assert code == -9, f"kill point {k}: the run was not killed (exit {code})"
    code, _ = run_billing(bucket, home)
    assert code == 0, f"kill point {k}: the run after the kill failed (exit {code})"
    found = digest(bucket)
    return sorted(key for key in set(found) | set(reference) if found.get(key) != reference.get(key))


def clean_run(scratch: Path) -> tuple[int, dict]:
    """(N writes, digest) of a run that is never killed."""
    bucket = fresh_bucket()
    code, writes = run_billing(bucket, scratch / "home-clean")
    assert code == 0 and writes > 0, (code, writes)
    return writes, digest(bucket)


def main() -> int:
    """Every kill point of the scenario, against the embedded S3 server (or $AWS_ENDPOINT_URL)."""
    from billing_assets.cli import _use_embedded_s3

    _use_embedded_s3(Path(".demo"))
    with tempfile.TemporaryDirectory() as folder:
        writes, reference = clean_run(Path(folder))
        differ = {}
        for k in range(1, writes + 1):
            keys = crash_at(k, reference, Path(folder))
            print(f"kill after write {k:>3}/{writes}: " + ("same" if not keys else f"DIFFERS: {', '.join(keys)}"),
                  flush=True)
            if keys:
                differ[k] = keys
    print(f"crash_points={writes} differ={len(differ)}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
