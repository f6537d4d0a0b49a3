"""Two `billing run`s of the same day and month at once, as two real processes on one Dagster
instance and bucket (an operator and a scheduled run racing): the end state is one run's, no
document is issued twice and no correction is numbered twice. (moto is not S3: this shows the
platform's logic — conditional writes, a 412 read back and compared — not S3's atomicity.)"""

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from billing_assets_tests.conftest import reference_files
from billing_assets_tests.invoicing.test_assets import day_file, usage
from billing_assets_tests.servers import postgres_bin_dir, throwaway_postgres
from billing_assets_tests.test_deploy import postgres_env, production_config

BILLING = str(Path(sys.executable).with_name("billing"))
ROOT = Path(__file__).resolve().parents[1]


def _documents(s3, bucket) -> dict[str, dict]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="documents/2026-01/globex/").get("Contents", [])
    return {item["Key"].rsplit("/", 1)[1]: json.loads(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
            for item in listed if item["Key"].endswith(".json") and "/statement" not in item["Key"]}


def _rows(s3, bucket, table: str) -> list[dict]:
    body = s3.get_object(Bucket=bucket, Key=f"warehouse/{table}/month=2026-01/part-00000.parquet")["Body"].read()
    return pq.read_table(io.BytesIO(body)).to_pylist()


def _run_together(day: str, home: Path, times: int = 2) -> list[subprocess.CompletedProcess]:
    env = os.environ | {"DAGSTER_HOME": str(home)}
    children = [subprocess.Popen([BILLING, "run", "--from", day, "--to", day], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True) for _ in range(times)]
    return [(child, child.communicate(timeout=600)[0]) for child in children]


def test_two_runs_of_the_same_day_and_month_at_once_end_as_one(put, s3, bucket, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    _two_runs_at_once_end_as_one(put, s3, bucket, home)


@pytest.mark.skipif(postgres_bin_dir() is None, reason="no PostgreSQL server binaries (Debian package 'postgresql')")
def test_on_the_production_instance_two_runs_at_once_end_as_one(put, s3, bucket, tmp_path, monkeypatch):
    """The same race on deploy/dagster.yaml's instance (PostgreSQL storage, a new database that
    both processes find empty)."""
    with throwaway_postgres() as postgres:
        for name, value in postgres_env(postgres, bucket).items():
            monkeypatch.setenv(name, value)
        _two_runs_at_once_end_as_one(put, s3, bucket, production_config(tmp_path))


def _two_runs_at_once_end_as_one(put, s3, bucket, home: Path) -> None:
    put(reference_files() | day_file("2026-01-05", usage("g1", "1000")))
    # January's grace ended long ago: both runs issue its invoices, at once
    for child, output in _run_together("2026-01-05", home):
        assert child.returncode == 0, output
    documents = _documents(s3, bucket)
    assert sorted(documents) == ["INV-202601-globex.json"] and documents["INV-202601-globex.json"]["total_minor"] == 11610

    # late usage: both runs re-rate January and correct the issued invoice, at once
    put(day_file("2026-01-20", usage("g2", "250", day="2026-01-20")))
    for child, output in _run_together("2026-01-20", home):
        assert child.returncode == 0, output
    documents = _documents(s3, bucket)
    assert sorted(documents) == ["ADJ-202601-globex-1.json", "INV-202601-globex.json"]  # no ADJ-…-2
    assert documents["ADJ-202601-globex-1.json"]["amount_minor"] == 1800  # 250 GB × 0.08, less 10 %
    assert [(row["document_number"], row["amount_minor"]) for row in _rows(s3, bucket, "invoice_adjustments")
            if row["customer_id"] == "globex"] == [("ADJ-202601-globex-1", 1800)]
    assert next(row for row in _rows(s3, bucket, "invoices") if row["customer_id"] == "globex")["total_minor"] == 11610


def _launch_together(job: str, partition: str, times: int = 2) -> None:
    """`dagster job launch` ``times`` at once: each run goes to the instance's run queue."""
    dagster = str(Path(sys.executable).with_name("dagster"))
    command = [dagster, "job", "launch", "-w", str(ROOT / "workspace.yaml"), "-j", job,
               "--tags", json.dumps({"dagster/partition": partition})]
    launches = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for _ in range(times)]
    for launch in launches:
        output = launch.communicate(timeout=300)[0]
        assert launch.returncode == 0, output


def _settled_runs(instance, job: str, partition: str, expected: int, timeout: float = 300) -> list:
    """The run records of ``job`` for ``partition`` once ``expected`` of them have finished."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        records = [record for record in instance.get_run_records(dg.RunsFilter(job_name=job))
                   if record.dagster_run.tags.get("dagster/partition") == partition]
        if len(records) >= expected and all(record.dagster_run.is_finished for record in records):
            return records
        time.sleep(1)
    raise TimeoutError(f"{job} {partition}: runs not finished after {timeout} s")


@pytest.mark.skipif(postgres_bin_dir() is None, reason="no PostgreSQL server binaries (Debian package 'postgresql')")
def test_under_the_production_run_coordinator_runs_of_one_partition_wait_for_each_other(put, s3, bucket, tmp_path,
                                                                                        monkeypatch):
    """Runs launched as the UI, a schedule or a sensor launch them go through deploy/dagster.yaml's
    queued run coordinator, whose limit of one run per partition makes two launches of the same
    day, and of the same month, run one after the other (a real daemon dequeues them and starts
    each in its own process). The second run of the month finds the invoice issued and issues
    nothing."""
    put(reference_files() | day_file("2026-01-05", usage("g1", "1000")))
    with throwaway_postgres() as postgres:
        for name, value in postgres_env(postgres, bucket).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("DAGSTER_HOME", str(production_config(tmp_path)))
        # its own process group: the code servers it starts go with it (they outlived a plain
        # terminate, one per test run)
        daemon = subprocess.Popen([str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w",
                                   str(ROOT / "workspace.yaml")], cwd=ROOT, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            with dg.DagsterInstance.get() as instance:
                for job, partition in (("daily_usage_job", "2026-01-05"), ("monthly_billing_job", "2026-01")):
                    _launch_together(job, partition)
                    records = sorted(_settled_runs(instance, job, partition, expected=2), key=lambda r: r.start_time)
                    assert all(record.dagster_run.is_success for record in records), partition
                    for earlier, later in zip(records, records[1:]):
                        assert earlier.end_time <= later.start_time, f"two runs of {partition} overlapped"
        finally:
            os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(timeout=60)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(daemon.pid, signal.SIGKILL)
    documents = _documents(s3, bucket)
    assert sorted(documents) == ["INV-202601-globex.json"] and documents["INV-202601-globex.json"]["total_minor"] == 11610
