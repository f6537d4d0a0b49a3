"""Runs whose process died (SIGKILL, out of memory, a lost machine) are marked failed.

A run records nothing when its process is killed: it stays STARTED for ever, the UI shows its
partitions in progress, and whatever waits for upstream runs waits behind it. A run started on
this machine names its process — ``billing run`` tags its runs with host, pid and the
process's start time; a run the local daemon launched records its worker's pid in its
"Started process for run" event — so a run whose process is gone (or whose pid now belongs to
a later process) can be told from one that is still working. Runs in containers are watched by
Dagster's own run monitoring (deploy/dagster.yaml) instead.
"""

from __future__ import annotations

import os
import socket

import dagster as dg

HOST_TAG, PID_TAG, PROCESS_START_TAG = "billing/host", "billing/pid", "billing/process_start"
# NOT_STARTED too: a run whose process died between creating and starting it (a full disk for
# the instance, say) would otherwise sit in the run list as "not started" for ever
_IN_FLIGHT = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
              dg.DagsterRunStatus.CANCELING]


def _process_start(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot), or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # the command name (field 2) may hold spaces: fields are counted after its ')'
            return stat.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def process_tags() -> dict[str, str]:
    """The tags that let a later process tell whether this one is still alive."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()),
            PROCESS_START_TAG: _process_start(os.getpid()) or ""}


def _worker_pid(instance: dg.DagsterInstance, run: dg.DagsterRun) -> int | None:
    """The pid a locally launched run's worker recorded when it started."""
    records = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT, limit=20).records
    for record in records:
        event = record.event_log_entry.dagster_event
        metadata = event.engine_event_data.metadata if event and event.engine_event_data else {}
        if "pid" in metadata:
            return int(metadata["pid"].value)
    return None


def why_gone(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str | None:
    """Why ``run`` cannot be running any more, or None while it may be."""
    host = socket.gethostname()
    if PID_TAG in run.tags:
        if run.tags.get(HOST_TAG) != host:
            return None  # another machine's: only it can tell
        pid = int(run.tags[PID_TAG])
        started = _process_start(pid)
        if started is None:
            return f"its process {pid} on {host} is gone"
        if run.tags.get(PROCESS_START_TAG) and started != run.tags[PROCESS_START_TAG]:
            return f"its process {pid} on {host} is gone (the pid now belongs to a later process)"
        return None
    if not isinstance(instance.run_launcher, dg.DefaultRunLauncher):
        return None  # launched into a container: Dagster's run monitoring watches it
    pid = _worker_pid(instance, run)
    if pid is not None and _process_start(pid) is None:
        return f"its run worker (pid {pid}) on {host} is gone"
    return None


def fail_orphaned_runs(instance: dg.DagsterInstance) -> list[tuple[str, str]]:
    """Mark every in-flight run whose process is gone as failed; returns (run id, why)."""
    failed = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=_IN_FLIGHT)):
        reason = why_gone(instance, run)
        if reason:
            instance.report_run_failed(run, f"Marked failed: {reason}; whatever it wrote is replaced by the "
                                            "next run of its partitions.")
            failed.append((run.run_id, reason))
    return failed


@dg.sensor(minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Marks runs whose process died (killed, out of memory) as failed, so their "
                       "partitions are free again and automation proceeds.")
def orphaned_run_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    failed = fail_orphaned_runs(context.instance)
    for run_id, reason in failed:
        context.log.warning(f"run {run_id}: {reason}; marked failed")
    return dg.SkipReason(f"{len(failed)} orphaned run(s) marked failed" if failed else "no orphaned runs")
