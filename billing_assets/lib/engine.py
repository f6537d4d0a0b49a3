"""Where a day's heavy work runs (CONTRACT.md §10): in the Dagster process (``local``), or as a
Spark job the asset launches through Dagster Pipes (``spark``) — ``pyspark`` in local mode in a
subprocess on this machine, or EMR Serverless in production. Both run the same stage functions."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence

import dagster as dg
from pydantic import Field

ENGINES = ("local", "spark")
SPARK_JOB_MODULE = "billing_assets.spark.job"


class BillingEngine(dg.ConfigurableResource):
    """The engine the daily ingest and metering run on, and how Spark is reached."""

    engine: str | None = Field(default=None, description="local or spark; defaults to $BILLING_ENGINE, else local.")
    spark_platform: str = Field(
        default="subprocess", description="subprocess: pyspark in local mode beside Dagster (PipesSubprocessClient); "
                                          "emr-serverless: a job run on EMR Serverless (PipesEMRServerlessClient).")
    spark_master: str | None = Field(default=None, description="The master of the local-mode session (subprocess); "
                                                               "defaults to $BILLING_SPARK_MASTER, else local[2].")
    spark_partitions: int | None = Field(
        default=None, description="Tasks of each stage (object slots, dedupe buckets, object staging, metering "
                                  "keys); default twice the session's cores (a task costs Spark a fraction of a "
                                  "second whatever it holds).")
    emr_serverless_config: str | None = Field(
        default=None, description="JSON file of the EMR Serverless job (deploy/emr-serverless.json); defaults to "
                                  "$BILLING_EMR_CONFIG.")

    def name(self) -> str:
        chosen = self.engine or os.environ.get("BILLING_ENGINE") or "local"
        if chosen not in ENGINES:
            raise dg.Failure(f"engine {chosen!r} is not one of {', '.join(ENGINES)} (BILLING_ENGINE)")
        return chosen

    @property
    def is_spark(self) -> bool:
        return self.name() == "spark"

    def run_spark(self, context: dg.AssetExecutionContext, job: str, extras: dict | None = None) -> Sequence:
        """``job`` (ingest or meter) over the context's days as a Spark job through Pipes; the
        materialisations it reported. A failed job fails the step with Spark's error."""
        extras = {"job": job, "days": list(context.partition_keys), **(extras or {}),
                  "spark": {"partitions": self.spark_partitions,
                            "master": (self.spark_master or os.environ.get("BILLING_SPARK_MASTER") or "local[2]")
                            if self.spark_platform == "subprocess" else None,
                            "conf": spark_conf(self.spark_partitions)}}
        if self.spark_platform == "subprocess":
            client = dg.PipesSubprocessClient()
            return client.run(context=context, command=[sys.executable, "-m", SPARK_JOB_MODULE],
                              extras=extras).get_results()
        if self.spark_platform == "emr-serverless":
            from dagster_aws.pipes import PipesEMRServerlessClient

            settings = emr_settings(self.emr_serverless_config or os.environ.get("BILLING_EMR_CONFIG"))
            return PipesEMRServerlessClient().run(
                context=context, extras=extras,
                start_job_run_params=emr_start_params(settings, context.run_id)).get_results()
        raise dg.Failure(f"spark_platform {self.spark_platform!r} is not subprocess or emr-serverless")


def spark_conf(partitions: int | None) -> dict[str, str]:
    return {**({"spark.sql.shuffle.partitions": str(partitions)} if partitions else {}), "spark.log.level": "ERROR",
            "spark.ui.showConsoleProgress": "false",
            # the per-object stage hands over a chunk's rows at a time; smaller batches would split them
            "spark.sql.execution.arrow.maxRecordsPerBatch": "65536"}


EMR_REQUIRED = ("applicationId", "executionRoleArn", "entryPoint", "logGroupName")


def emr_settings(path: str | None) -> dict:
    if not path:
        raise dg.Failure("spark_platform emr-serverless needs emr_serverless_config or $BILLING_EMR_CONFIG")
    with open(path) as handle:
        settings = json.load(handle)
    missing = [name for name in EMR_REQUIRED if not settings.get(name)]
    if missing:
        raise dg.Failure(f"{path}: missing {', '.join(missing)}")
    return settings


def emr_start_params(settings: dict, run_id: str) -> dict:
    """The ``start_job_run`` request: the job module as entry point, the environment the platform
    reads (bucket, provider-free), and CloudWatch logging on, which is how Pipes' messages return."""
    environment = {name: os.environ[name] for name in ("BILLING_BUCKET",) if os.environ.get(name)}
    submit = " ".join([f"--conf spark.sql.shuffle.partitions={settings.get('shufflePartitions', 64)}",
                       *(f"--conf spark.emr-serverless.driverEnv.{k}={v} --conf spark.executorEnv.{k}={v}"
                         for k, v in sorted(environment.items())),
                       *settings.get("sparkSubmitParameters", [])])
    return {
        "applicationId": settings["applicationId"],
        "executionRoleArn": settings["executionRoleArn"],
        "clientToken": run_id,  # a retried launch of the same run starts no second job
        "name": f"billing-{run_id}",
        "jobDriver": {"sparkSubmit": {"entryPoint": settings["entryPoint"], "sparkSubmitParameters": submit}},
        "configurationOverrides": {"monitoringConfiguration": {"cloudWatchLoggingConfiguration": {
            "enabled": True, "logGroupName": settings["logGroupName"],
            "logStreamNamePrefix": settings.get("logStreamNamePrefix", "billing")}}},
    }
