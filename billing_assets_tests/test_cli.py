"""``billing run`` as an operator uses it: real instance in DAGSTER_HOME, real S3 endpoint."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance

from billing_assets.cli import main
from billing_assets_tests.conftest import reference_files
from billing_assets_tests.usage.helpers import event


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    return tmp_path / "dagster_home"


def one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


@pytest.mark.parametrize(("args", "message"), [
    (["--from", "2026-13-01", "--to", "2026-01-02"], "billing: error: --from '2026-13-01' is not a real calendar date"),
    (["--from", "05/01/2026", "--to", "2026-01-02"], "billing: error: --from '05/01/2026' is not a date in YYYY-MM-DD form"),
    (["--from", "2026-01-03", "--to", "2026-01-02"], "billing: error: --from 2026-01-03 is after --to 2026-01-02"),
    (["--from", "2020-01-01", "--to", "2020-01-02"], "billing: error: --from 2020-01-01 is before the first partition (2025-01-01)"),
    (["--from", "2026-01-01", "--to", "2999-01-01"], "billing: error: --to 2999-01-01 is not a complete UTC day yet"),
])
def test_bad_dates_are_one_line_errors_with_status_2(args, message, capsys, home):
    assert main(["run", *args]) == 2
    assert one_line_error(capsys).startswith(message)


def test_a_missing_bucket_is_named(capsys, aws_env, monkeypatch, home):
    monkeypatch.setenv("BILLING_BUCKET", "no-such-bucket")
    assert main(["run", "--from", "2026-01-05", "--to", "2026-01-05"]) == 1
    assert one_line_error(capsys).startswith(
        f"billing: error: bucket 'no-such-bucket' does not exist at {aws_env}")


def test_an_unreachable_endpoint_is_named(capsys, monkeypatch, home):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard port: nothing listens
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert main(["run", "--from", "2026-01-05", "--to", "2026-01-05"]) == 1
    assert one_line_error(capsys) == ("billing: error: cannot reach the S3 endpoint http://127.0.0.1:9 "
                                      "(is AWS_ENDPOINT_URL right, is the server up?)")


def test_a_broken_reference_file_is_one_line(capsys, put, home):
    put(reference_files(customers_csv="customer_id,name,currency\nacme,Acme,USD\nacme,Acme,USD\n"))
    assert main(["run", "--from", "2026-01-05", "--to", "2026-01-05"]) == 1
    assert one_line_error(capsys).startswith(
        "billing: error: reference data rejected: reference/customers.csv, line 2: column 'customer_id' value 'acme'")


def test_run_end_to_end_records_runs_in_dagster_home(capsys, put, home, s3, bucket):
    day1 = "".join(line + "\n" for line in [event(event_id="x1"), event(event_id="x1"), "[]"])
    day2 = "".join(line + "\n" for line in [event(event_id="y1", timestamp="2026-01-06T08:00:00Z"),
                                            event(event_id="y2", timestamp="2026-01-06T09:00:00Z", customer_id="who")])
    put(reference_files() | {"raw/usage/dt=2026-01-05/a.jsonl": day1.encode(),
                             "raw/usage/dt=2026-01-06/a.jsonl": day2.encode()})
    assert main(["run", "--from", "2026-01-05", "--to", "2026-01-06"]) == 0
    out = capsys.readouterr().out
    assert "[  1/2] 2026-01-05: 3 lines → 1 accepted, 1 duplicates, 1 quarantined" in out
    assert "[  2/2] 2026-01-06: 2 lines → 1 accepted, 0 duplicates, 1 quarantined" in out
    assert "2026-01-05             3         1           1            1  not_an_object 1" in out
    assert "total                  5         2           1            2  not_an_object 1, unknown_customer 1" in out
    # January, rated and invoiced on the two metered days (issued: its grace ended long ago).
    # acme (pro): 1.5 + 1.5 GB × 0.08 = 0.24 + base 49.00 = 49.24; globex (pro, 10 % off): base
    # 49.00 − 4.90 = 44.10; initech (euro: no base fee, no usage) 0.00.
    assert "2026-01: 7 rated lines; 29 day(s) not metered yet" in out
    assert re.search(r"INV-202601-acme +acme +USD 49\.24  issued\n", out)
    assert re.search(r"INV-202601-globex +globex +USD 44\.10  issued\n", out)
    assert re.search(r"INV-202601-initech +initech +EUR 0\.00  issued\n", out)
    assert re.search(r"  reconciliation: all \d+ tie-outs hold\n", out)
    instance = DagsterInstance.get()
    runs = instance.get_runs()
    assert len(runs) == 3  # the reference run, one single-run backfill for the days, one for the month
    keys = {item["Key"] for item in s3.list_objects_v2(Bucket=bucket, Prefix="warehouse/")["Contents"]}
    assert "warehouse/rated_charges/month=2026-01/part-00000.parquet" in keys
    [daily] = [run for run in runs if run.job_name == "daily_usage_job"]
    assert (daily.tags["dagster/asset_partition_range_start"], daily.tags["dagster/asset_partition_range_end"]) == (
        "2026-01-05", "2026-01-06")


def test_env_points_other_tools_at_the_demos_server_and_instance(tmp_path, monkeypatch, capsys):
    from billing_assets.demo.embedded_s3 import ensure_server, stop_server

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("BILLING_BUCKET", raising=False)
    assert main(["env"]) == 1
    assert one_line_error(capsys) == "billing: error: the embedded S3 server is not running here (make demo or make ui starts it)"
    endpoint, _ = ensure_server(Path(".demo"))
    try:
        assert main(["env"]) == 0
        exports = dict(line.removeprefix("export ").split("=", 1) for line in capsys.readouterr().out.splitlines())
        assert exports == {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "embedded",
                           "AWS_SECRET_ACCESS_KEY": "embedded", "AWS_DEFAULT_REGION": "us-east-1",  # pragma: allowlist secret
                           "BILLING_BUCKET": "billing", "DAGSTER_HOME": str(tmp_path / ".dagster_home")}
        # what the exports say reaches the server: a shell that evaluates them lists its buckets
        listed = subprocess.run(["sh", "-c", f'eval "$({Path(sys.executable).parent / "billing"} env)" && '
                                 f'{sys.executable} -c "import boto3; print(boto3.client(\'s3\').list_buckets()[\'Buckets\'])"'],
                                cwd=tmp_path, capture_output=True, text=True, env={"PATH": os.environ["PATH"]}, timeout=120)
        assert listed.returncode == 0 and listed.stdout.strip() == "[]", listed.stderr
    finally:
        stop_server(Path(".demo"))
