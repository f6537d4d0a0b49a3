"""moto's S3 server on loopback, kept running between commands so the UI sees the demo's data.

moto holds its state in memory: the server outlives ``billing demo`` in the background (its
pid and port in ``.demo/s3.json``) so ``billing ui`` reads the same bucket.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def running_endpoint(state_dir: Path) -> str | None:
    state_file = state_dir / "s3.json"
    if not state_file.exists():
        return None
    state = json.loads(state_file.read_text())
    return f"http://{HOST}:{state['port']}" if _answers(state["port"]) else None


def ensure_server(state_dir: Path) -> tuple[str, bool]:
    """(endpoint, started_now): reuse the running server, or start one in the background."""
    endpoint = running_endpoint(state_dir)
    if endpoint:
        return endpoint, False
    state_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = open(state_dir / "s3.log", "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while not _answers(port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the embedded S3 server did not start; see {state_dir / 's3.log'}")
        time.sleep(0.1)
    (state_dir / "s3.json").write_text(json.dumps({"pid": process.pid, "port": port}))
    return f"http://{HOST}:{port}", True


def land(objects: dict[str, bytes]) -> str:
    """Put ``objects`` into $BILLING_BUCKET (default ``billing``), creating the bucket if needed."""
    import boto3

    from billing_assets.lib.lake import DEFAULT_BUCKET

    bucket = os.environ.setdefault("BILLING_BUCKET", DEFAULT_BUCKET)
    client = boto3.client("s3")
    if bucket not in [b["Name"] for b in client.list_buckets().get("Buckets", [])]:
        client.create_bucket(Bucket=bucket)
    for key, body in objects.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)
    return bucket


def stop_server(state_dir: Path) -> bool:
    state_file = state_dir / "s3.json"
    if not state_file.exists():
        return False
    state = json.loads(state_file.read_text())
    try:
        os.kill(state["pid"], signal.SIGTERM)
    except ProcessLookupError:
        pass
    state_file.unlink()
    return True
