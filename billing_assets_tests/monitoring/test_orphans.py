"""A run whose process is killed is marked failed by the next `billing run` and by the sensor."""

import os
import subprocess
import sys

import dagster as dg
from dagster._core.events import EngineEventData

from billing_assets.cli import main
from billing_assets.monitoring.orphans import orphaned_run_sensor
from billing_assets_tests.conftest import reference_files
from billing_assets_tests.processes import kill_at_marker
from billing_assets_tests.usage.helpers import event

DAY = "2026-01-05"
_HELD_RUN = """
import pathlib, sys, time
import billing_assets.usage.assets as assets

def held(*args, **kwargs):  # the run is killed while it ingests
    pathlib.Path(sys.argv[1]).write_text("ingesting")
    time.sleep(300)

assets.ingest_into = held
from billing_assets.cli import main
main(["run", "--from", "2026-01-05", "--to", "2026-01-05"])
"""


def _daily_runs(instance):
    return [run for run in instance.get_runs() if run.job_name == "daily_usage_job"]


def test_a_killed_billing_run_is_marked_failed_by_the_next_one(put, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    put(reference_files() | {f"raw/usage/dt={DAY}/a.jsonl": (event(event_id="e1") + "\n").encode()})
    pid = kill_at_marker(_HELD_RUN, marker=tmp_path / "marker", what="its ingest")
    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        [killed] = _daily_runs(instance)
        assert killed.status == dg.DagsterRunStatus.STARTED  # what the kill leaves behind

    assert main(["run", "--from", DAY, "--to", DAY]) == 0
    assert f"run {killed.run_id[:8]} marked failed: its process {pid} on " in capsys.readouterr().out
    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        statuses = {run.run_id: run.status for run in _daily_runs(instance)}
        assert statuses.pop(killed.run_id) == dg.DagsterRunStatus.FAILURE
        assert list(statuses.values()) == [dg.DagsterRunStatus.SUCCESS]  # the day ran again, whole
        assert DAY in instance.get_materialized_partitions(dg.AssetKey("usage_events"))


def test_the_sensor_fails_a_run_whose_worker_is_gone_and_leaves_a_live_one():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid no process has now
    with dg.instance_for_test() as instance:
        runs = {}
        for name, pid in (("dead", gone.pid), ("alive", os.getpid())):
            run = instance.add_run(dg.DagsterRun(job_name="daily_usage_job", run_id=f"{name}-run",
                                                 status=dg.DagsterRunStatus.STARTED))
            instance.report_engine_event(f"Started process for run (pid: {pid}).", run, EngineEventData.in_process(pid))
            runs[name] = run
        with dg.build_sensor_context(instance=instance) as context:
            outcome = orphaned_run_sensor(context)
        assert "1 orphaned run(s) marked failed" in outcome.skip_message
        assert instance.get_run_by_id("dead-run").status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id("alive-run").status == dg.DagsterRunStatus.STARTED
        failure = instance.get_records_for_run("dead-run", of_type=dg.DagsterEventType.RUN_FAILURE).records
        assert f"its run worker (pid {gone.pid})" in failure[0].event_log_entry.dagster_event.message
