"""The engine setting, and the production Pipes call to EMR Serverless: moto has no EMR
Serverless job runs, so the request is held to botocore's own model of ``StartJobRun``."""

import json
from pathlib import Path
from types import SimpleNamespace

import boto3
import dagster as dg
import pytest
from botocore.validate import ParamValidator

from billing_assets.lib.engine import BillingEngine, emr_start_params, emr_settings

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "spark" / "emr-serverless.json"


def test_the_engine_is_local_unless_told_and_refuses_an_unknown_one(monkeypatch):
    monkeypatch.delenv("BILLING_ENGINE", raising=False)
    assert BillingEngine().name() == "local"
    monkeypatch.setenv("BILLING_ENGINE", "spark")
    assert BillingEngine().is_spark and BillingEngine(engine="local").name() == "local"
    monkeypatch.setenv("BILLING_ENGINE", "flink")
    with pytest.raises(dg.Failure, match="'flink' is not one of local, spark"):
        BillingEngine().name()


def test_the_start_job_run_request_is_valid_and_turns_cloudwatch_logging_on(monkeypatch):
    monkeypatch.setenv("BILLING_BUCKET", "acme-billing")
    params = emr_start_params(emr_settings(str(CONFIG)), "run-123")
    shape = boto3.client("emr-serverless", region_name="us-east-1").meta.service_model \
        .operation_model("StartJobRun").input_shape
    report = ParamValidator().validate(params, shape)
    assert not report.has_errors(), report.generate_report()
    assert params["clientToken"] == "run-123"  # a retried launch starts no second job
    assert params["executionRoleArn"].endswith(":role/billing-spark-job")
    assert params["jobDriver"]["sparkSubmit"]["entryPoint"] == "local:///opt/billing/job.py"
    logging = params["configurationOverrides"]["monitoringConfiguration"]["cloudWatchLoggingConfiguration"]
    assert (logging["enabled"], logging["logGroupName"]) == (True, "/billing/spark")
    submit = params["jobDriver"]["sparkSubmit"]["sparkSubmitParameters"]
    assert "--conf spark.sql.shuffle.partitions=64" in submit
    assert "--conf spark.emr-serverless.driverEnv.BILLING_BUCKET=acme-billing" in submit
    assert "--conf spark.executorEnv.BILLING_BUCKET=acme-billing" in submit


def test_the_asset_launches_the_job_through_the_emr_serverless_pipes_client(monkeypatch, tmp_path):
    from dagster_aws.pipes import PipesEMRServerlessClient

    calls = []

    def run(self, **kwargs):
        calls.append(kwargs)
        return SimpleNamespace(get_results=lambda: ["reported"])

    monkeypatch.setattr(PipesEMRServerlessClient, "run", run)
    monkeypatch.setattr(PipesEMRServerlessClient, "__init__", lambda self, **_: None)  # no AWS client here
    engine = BillingEngine(engine="spark", spark_platform="emr-serverless", emr_serverless_config=str(CONFIG))
    context = SimpleNamespace(partition_keys=["2026-10-01", "2026-10-02"], run_id="run-9")
    assert engine.run_spark(context, "ingest", {"limits": {"chunk_bytes": 1}}) == ["reported"]
    [call] = calls
    assert call["extras"]["job"] == "ingest" and call["extras"]["days"] == ["2026-10-01", "2026-10-02"]
    assert call["extras"]["spark"]["master"] is None  # the cluster's, not local mode
    assert call["start_job_run_params"]["clientToken"] == "run-9"


def test_a_config_missing_a_field_fails_naming_the_file_and_field(tmp_path):
    broken = tmp_path / "emr.json"
    broken.write_text(json.dumps({**json.loads(CONFIG.read_text()), "logGroupName": ""}))
    with pytest.raises(dg.Failure, match=r"emr.json: missing logGroupName"):
        emr_settings(str(broken))
