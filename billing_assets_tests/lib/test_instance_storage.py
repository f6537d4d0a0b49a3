"""The local instance's storage: Dagster's sqlite layout and records, engines kept per shard.

Records are read back through Dagster's own default storage where it matters, so what the kept
engines write is judged by the code that would read it had the project never changed storage.
"""

import os
import shutil
from pathlib import Path

import dagster as dg
import pytest

from billing_assets.lib.instance_storage import KeptEngineSqliteEventLogStorage

PROJECT_CONFIG = Path(__file__).resolve().parents[2] / "dagster.yaml"


@dg.asset
def metered_thing() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 3})


@dg.asset_check(asset=metered_thing)
def thing_has_rows() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_CONFIG, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def materialise(instance, times: int = 1) -> list[str]:
    return [dg.materialize([metered_thing, thing_has_rows], instance=instance).run_id for _ in range(times)]


def test_the_project_instance_uses_the_kept_engine_event_log_in_dagsters_default_layout(home):
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.event_log_storage, KeptEngineSqliteEventLogStorage)
        [run_id] = materialise(instance)
    # the files Dagster's default sqlite storage would have written, where it would have put them
    assert (home / "history" / "runs.db").exists()
    assert (home / "history" / "runs" / "index.db").exists()
    assert (home / "history" / "runs" / f"{run_id}.db").exists()
    assert (home / "schedules" / "schedules.db").exists()


def test_what_it_records_reads_back_through_dagsters_default_storage(home, tmp_path):
    with dg.DagsterInstance.from_config(str(home)) as instance:
        first, second = materialise(instance, times=2)

    default_config = tmp_path / "default_config"
    default_config.mkdir()
    (default_config / "dagster.yaml").write_text(f"storage:\n  sqlite:\n    base_dir: {home}\n")
    with dg.DagsterInstance.from_config(str(default_config)) as reader:
        assert type(reader.event_log_storage).__name__ == "SqliteEventLogStorage"
        assert {run.run_id for run in reader.get_runs()} == {first, second}
        materialisations = reader.fetch_materializations(dg.AssetKey("metered_thing"), limit=10).records
        assert [record.run_id for record in materialisations] == [second, first]
        assert materialisations[0].asset_materialization.metadata["rows"] == dg.IntMetadataValue(3)
        check = reader.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey("metered_thing"), "thing_has_rows")])
        assert [execution.run_id for execution in check.values()] == [second]
        steps = [entry.dagster_event.event_type_value for entry in reader.all_logs(first) if entry.dagster_event]
        assert steps.count("STEP_SUCCESS") == 2 and steps[-1] == "PIPELINE_SUCCESS"


def test_open_engines_are_bounded_and_an_evicted_shard_reopens(tmp_path):
    storage = KeptEngineSqliteEventLogStorage(str(tmp_path / "runs"), open_shards=2)
    with dg.instance_for_test() as scratch:
        runs = materialise(scratch, times=3)
        entries = {run_id: scratch.all_logs(run_id) for run_id in runs}
    for run_id in runs:
        for entry in entries[run_id]:
            storage.store_event(entry)
    # the two most recently used: the last run's shard, then the index (a run's end is mirrored there)
    assert storage.open_engine_shards == [runs[2], "index"]
    assert len(storage.get_records_for_run(runs[0]).records) == len(entries[runs[0]])
    assert storage.open_engine_shards == ["index", runs[0]]
    storage.dispose()
    assert storage.open_engine_shards == []
    with pytest.raises(ValueError, match="open_shards must be at least 1"):
        KeptEngineSqliteEventLogStorage(str(tmp_path / "other"), open_shards=0)


def test_a_shard_removed_by_another_process_is_not_read_through_a_stale_connection(tmp_path):
    base = str(tmp_path / "runs")
    writer, wiper = KeptEngineSqliteEventLogStorage(base), KeptEngineSqliteEventLogStorage(base)
    with dg.instance_for_test() as scratch:
        [run_id] = materialise(scratch)
        entries = scratch.all_logs(run_id)
    for entry in entries:
        writer.store_event(entry)
    assert len(writer.get_records_for_run(run_id).records) == len(entries)
    wiper.wipe()
    assert not os.path.exists(writer.path_for_shard(run_id))
    assert writer.get_records_for_run(run_id).records == []
    writer.store_event(entries[0])  # the shard is created afresh, not written to the removed file
    assert os.path.exists(writer.path_for_shard(run_id))
    assert len(wiper.get_records_for_run(run_id).records) == 1


def test_a_forked_child_opens_its_own_engines_and_the_parent_keeps_working(tmp_path):
    storage = KeptEngineSqliteEventLogStorage(str(tmp_path / "runs"))
    with dg.instance_for_test() as scratch:
        parent_run, child_run = materialise(scratch, times=2)
        parent_entries, child_entries = scratch.all_logs(parent_run), scratch.all_logs(child_run)
    storage.store_event(parent_entries[0])
    parent_engine = storage._engines[parent_run]

    pid = os.fork()
    if pid == 0:  # the child: its inherited engines must be dropped, not used or closed
        code = 1
        try:
            for entry in child_entries:
                storage.store_event(entry)
            storage.store_event(parent_entries[1])
            code = 0 if storage._engines[parent_run] is not parent_engine else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0

    for entry in parent_entries[2:]:
        storage.store_event(entry)
    assert storage._engines[parent_run] is parent_engine
    assert len(storage.get_records_for_run(parent_run).records) == len(parent_entries)
    assert len(storage.get_records_for_run(child_run).records) == len(child_entries)
