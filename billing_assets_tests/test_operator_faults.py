"""Operator faults a run cannot help: the S3 endpoint going away mid-run, the local instance's disk
filling up. Each ends in one clear line and a non-zero exit, leaves every partition and document
whole or absent, and the next run, once the fault is gone, converges to the state of a run that
never met it (the crash sweep's logical digest: every table's rows, every document, the
quarantine records). A bad reference file, a missing bucket and an endpoint that is not there at
all are in test_cli.py."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.exceptions import EndpointConnectionError

from billing_assets.cli import main
from billing_assets_tests.crash_points import DAYS, clean_run, digest, fresh_bucket
from billing_assets_tests.invoicing.test_s3_faults import _faulty

BILLING = str(Path(sys.executable).with_name("billing"))
ACCESS_LOG = re.compile(r'^127\.0\.0\.1 - - \[.*\] "')


def _billing_run(capsys) -> tuple[int, list[str]]:
    """Exit status and stderr lines of a `billing run` in this process (less the access log of
    the S3 server this process also runs)."""
    status = main(["run", "--from", DAYS[0], "--to", DAYS[-1]])
    return status, [line for line in capsys.readouterr().err.strip().splitlines() if not ACCESS_LOG.match(line)]


def test_an_endpoint_that_goes_away_mid_run_is_one_line_and_the_next_run_converges(aws_env, monkeypatch, tmp_path,
                                                                                   capsys):
    sent, gone_after = [], [None]

    def endpoint(request, **_):
        sent.append(request.url)
        if gone_after[0] is not None and len(sent) > gone_after[0]:
            raise EndpointConnectionError(endpoint_url=request.url)

    _faulty(monkeypatch, endpoint)
    clean = fresh_bucket()
    monkeypatch.setenv("BILLING_BUCKET", clean)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "clean"))
    assert _billing_run(capsys)[0] == 0
    requests, reference = len(sent), digest(clean)

    # while reading reference data, while issuing the documents (`make crash-sweep` kills the
    # run after every write)
    for point in (5, requests * 9 // 10):
        bucket = fresh_bucket()
        monkeypatch.setenv("BILLING_BUCKET", bucket)
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / f"home-{point}"))
        sent.clear()
        gone_after[0] = point
        status, err = _billing_run(capsys)
        assert status == 1 and len(err) == 1, (point, err)
        assert err[0].startswith(f"billing: error: the S3 endpoint {aws_env} stopped answering during the run (at "), err
        assert err[0].endswith("every partition and document is whole or absent: run the same command when it answers")
        digest(bucket)  # every object there reads whole
        gone_after[0] = None
        assert _billing_run(capsys)[0] == 0, point
        assert digest(bucket) == reference, f"the endpoint went away after request {point} of {requests}"


def _namespaced_mount() -> list[str] | None:
    """A command prefix running its command in a private mount namespace where it may mount a
    tmpfs: as root plainly, otherwise as root of a new user namespace; None where neither works."""
    unshare = shutil.which("unshare")
    if not unshare:
        return None
    for prefix in ([unshare, "-m", "--propagation", "private"], [unshare, "-rm", "--propagation", "private"]):
        probe = subprocess.run([*prefix, "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"], capture_output=True)
        if probe.returncode == 0:
            return prefix
    return None


# inside the namespace: a 32 MiB disk for DAGSTER_HOME, the instance created, the disk filled but
# for $2 bytes; a run; the disk freed; a run again; then the runs the instance holds
_FULL_DISK = r"""
set -u
mount -t tmpfs -o size=32m tmpfs "$DAGSTER_HOME"
"$PYTHON" -c "from billing_assets.cli import instance; instance().dispose()"
"$PYTHON" -c "
import os, sys
path = os.path.join(os.environ['DAGSTER_HOME'], 'filler')
with open(path, 'wb') as filler:
    try:
        while True:
            filler.write(bytes(65536)); filler.flush()
    except OSError:
        pass
os.truncate(path, max(0, os.path.getsize(path) - int(sys.argv[1])))" "$1"
"$BILLING" run --from "$2" --to "$3" >/dev/null 2>"$4/first.err"; echo "$?" > "$4/first.status"
rm "$DAGSTER_HOME/filler"
"$BILLING" run --from "$2" --to "$3" >/dev/null 2>"$4/second.err"; echo "$?" > "$4/second.status"
"$PYTHON" -c "
from dagster import DagsterInstance
with DagsterInstance.get() as instance:
    print(*sorted(run.status.value for run in instance.get_runs()))" > "$4/statuses"
"""


def test_a_full_disk_for_the_local_instance_is_one_line_and_the_next_run_converges(aws_env, tmp_path):
    prefix = _namespaced_mount()
    if prefix is None:
        pytest.skip("no mount namespace here to give the instance a small disk of its own (unshare -m)")
    _, reference = clean_run(tmp_path)
    # the disk fills while the daily job is recorded (600,000 bytes left fills it during the
    # reference job's run: that case passed too, and is left out for the suite's time)
    for left in (2_000_000,):
        bucket, home, out = fresh_bucket(), tmp_path / f"home-{left}", tmp_path / f"out-{left}"
        home.mkdir()
        out.mkdir()
        env = os.environ | {"BILLING_BUCKET": bucket, "DAGSTER_HOME": str(home), "PYTHON": sys.executable,
                            "BILLING": BILLING}
        subprocess.run([*prefix, "bash", "-c", _FULL_DISK, "full-disk", str(left), DAYS[0], DAYS[-1], str(out)],
                       env=env, check=True, timeout=600)
        err = (out / "first.err").read_text().strip().splitlines()
        assert (out / "first.status").read_text().strip() == "1"
        assert len(err) == 1 and err[0].startswith(f"billing: error: the disk of the Dagster instance ({home}) is full ("), err
        assert (out / "second.status").read_text().strip() == "0", (out / "second.err").read_text()
        # the first run's unfinished runs were marked failed by the second: none is left in flight
        assert set((out / "statuses").read_text().split()) <= {"SUCCESS", "FAILURE"}
        assert digest(bucket) == reference, f"{left} bytes left"
