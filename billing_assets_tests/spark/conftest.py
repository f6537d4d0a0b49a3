"""One local-mode Spark session for the Spark tests (start-up takes seconds), skipped where
there is no Java runtime; CI installs one."""

import os
import shutil

import pytest


@pytest.fixture(scope="session")
def spark(s3_endpoint):
    if not shutil.which("java"):
        pytest.skip("no Java runtime: Spark needs Java 17 or 21")
    # the workers take the environment the session starts with: the embedded S3 endpoint
    for name, value in {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():  # pragma: allowlist secret
        os.environ[name] = value
    from billing_assets.lib.engine import spark_conf
    from billing_assets.spark.job import session

    # small Arrow batches so the stages cross batch boundaries
    conf = spark_conf(3) | {"spark.sql.execution.arrow.maxRecordsPerBatch": "7"}
    spark = session({"master": "local[2]", "conf": conf})
    yield spark
    spark.stop()
