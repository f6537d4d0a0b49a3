"""`dg`, Dagster's project CLI, works on the project as it is laid out ([tool.dg] in pyproject.toml):
it lists the definitions, checks them, and launches a partition range of assets that lands the
same tables `billing run` would."""

import json
import os
import subprocess
from pathlib import Path

import dagster as dg
import pytest

from billing_assets.resources import billing_lake
from billing_assets_tests.conftest import reference_files
from billing_assets_tests.usage.helpers import event

ROOT = Path(__file__).resolve().parents[1]
DG = ROOT / ".venv" / "bin" / "dg"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not DG.exists(), reason="dg is installed by make install")]


def _dg(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(DG), *args], cwd=ROOT, env=env or os.environ.copy(), capture_output=True, text=True,
                          timeout=600)


def test_dg_lists_and_checks_the_definitions_without_a_dagster_home(tmp_path):
    env = {name: value for name, value in os.environ.items() if name != "DAGSTER_HOME"}
    listed = _dg("list", "defs", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    keys = {asset["asset_key"] for asset in json.loads(listed.stdout)["assets"]}
    assert {"usage_events", "quarantined_events", "duplicate_events", "metered_usage", "rated_charges", "invoices",
            "reconciliation", "usage_statements", "usage_anomalies", "provider_sync"} <= keys
    checked = _dg("check", "defs", env=env)
    assert checked.returncode == 0 and "All definitions loaded successfully" in checked.stdout + checked.stderr


def test_dg_launches_a_partition_range_as_one_run(tmp_path, put, monkeypatch):
    # day 1: e1 (2 GB) and its redelivered copy; day 2: e2 (5 GB) and a line that is not JSON
    put(reference_files() | {
        "raw/usage/dt=2026-01-05/a.jsonl": (event(event_id="e1", quantity="2") + "\n"
                                            + event(event_id="e1", quantity="2") + "\n").encode(),
        "raw/usage/dt=2026-01-06/a.jsonl": (event(event_id="e2", quantity="5", timestamp="2026-01-06T10:00:00Z")
                                            + "\n{oops\n").encode()})
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    launched = _dg("launch", "--assets", "usage_events,quarantined_events,duplicate_events,metered_usage",
                   "--partition-range", "2026-01-05...2026-01-06")
    assert launched.returncode == 0, launched.stdout[-3000:] + launched.stderr[-3000:]
    lake = billing_lake()
    counts = {day: tuple(lake.read_table(table, day).num_rows
                         for table in ("usage_events", "duplicate_events", "quarantined_events"))
              for day in ("2026-01-05", "2026-01-06")}
    assert counts == {"2026-01-05": (1, 1, 0), "2026-01-06": (1, 0, 1)}
    metered = {(row["day"].isoformat(), row["meter"]): str(row["quantity"])
               for day in ("2026-01-05", "2026-01-06") for row in lake.read_table("metered_usage", day).to_pylist()}
    assert metered == {("2026-01-05", "egress_gb"): "2.000000000", ("2026-01-06", "egress_gb"): "5.000000000"}
    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        [run] = instance.get_runs()
        assert (run.tags["dagster/asset_partition_range_start"], run.tags["dagster/asset_partition_range_end"]) == (
            "2026-01-05", "2026-01-06")
