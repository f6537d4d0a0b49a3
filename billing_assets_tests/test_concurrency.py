"""Two `billing run`s of the same day and month at once, as two real processes on one Dagster
instance and bucket (an operator and a scheduled run racing): the end state is one run's, no
document is issued twice and no correction is numbered twice. (moto is not S3: this shows the
platform's logic — conditional writes, a 412 read back and compared — not S3's atomicity.)"""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from billing_assets_tests.conftest import reference_files
from billing_assets_tests.invoicing.test_assets import day_file, usage

BILLING = str(Path(sys.executable).with_name("billing"))


def _documents(s3, bucket) -> dict[str, dict]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="documents/2026-01/globex/").get("Contents", [])
    return {item["Key"].rsplit("/", 1)[1]: json.loads(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
            for item in listed if item["Key"].endswith(".json") and "/statement" not in item["Key"]}


def _rows(s3, bucket, table: str) -> list[dict]:
    body = s3.get_object(Bucket=bucket, Key=f"warehouse/{table}/month=2026-01/part-00000.parquet")["Body"].read()
    return pq.read_table(io.BytesIO(body)).to_pylist()


def _run_together(day: str, home: Path, times: int = 2) -> list[subprocess.CompletedProcess]:
    env = os.environ | {"DAGSTER_HOME": str(home)}
    children = [subprocess.Popen([BILLING, "run", "--from", day, "--to", day], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True) for _ in range(times)]
    return [(child, child.communicate(timeout=600)[0]) for child in children]


def test_two_runs_of_the_same_day_and_month_at_once_end_as_one(put, s3, bucket, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    put(reference_files() | day_file("2026-01-05", usage("g1", "1000")))
    # January's grace ended long ago: both runs issue its invoices, at once
    for child, output in _run_together("2026-01-05", home):
        assert child.returncode == 0, output
    documents = _documents(s3, bucket)
    assert sorted(documents) == ["INV-202601-globex.json"] and documents["INV-202601-globex.json"]["total_minor"] == 11610

    # late usage: both runs re-rate January and correct the issued invoice, at once
    put(day_file("2026-01-20", usage("g2", "250", day="2026-01-20")))
    for child, output in _run_together("2026-01-20", home):
        assert child.returncode == 0, output
    documents = _documents(s3, bucket)
    assert sorted(documents) == ["ADJ-202601-globex-1.json", "INV-202601-globex.json"]  # no ADJ-…-2
    assert documents["ADJ-202601-globex-1.json"]["amount_minor"] == 1800  # 250 GB × 0.08, less 10 %
    assert [(row["document_number"], row["amount_minor"]) for row in _rows(s3, bucket, "invoice_adjustments")
            if row["customer_id"] == "globex"] == [("ADJ-202601-globex-1", 1800)]
    assert next(row for row in _rows(s3, bucket, "invoices") if row["customer_id"] == "globex")["total_minor"] == 11610
