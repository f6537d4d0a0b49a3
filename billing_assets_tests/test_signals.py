"""Processes a user starts can be stopped, also when a script starts them in the background.

A POSIX shell starts a script's background job with SIGINT ignored, and Dagster maps SIGTERM to
whatever SIGINT does: without `billing.cli.stoppable`, `make ui` started so ignored SIGTERM and
Ctrl-C alike, and each run of `billing run` waited 2 × 30 s for the `tail` processes that capture
its step logs, which Dagster stops with SIGTERM."""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from billing_assets.demo.embedded_s3 import free_port
from billing_assets_tests.conftest import reference_files
from billing_assets_tests.servers import wait_for_http
from billing_assets_tests.usage.helpers import event

ROOT = Path(__file__).resolve().parents[1]
BILLING = ROOT / ".venv" / "bin" / "billing"
pytestmark = pytest.mark.slow


def _in_the_background(command: str, tmp_path: Path) -> tuple[subprocess.Popen, int]:
    """``command`` as a script starts a background job (``sh -c 'command & wait'``); returns the
    script and the job's pid."""
    pid_file = tmp_path / "job.pid"
    script = subprocess.Popen(["sh", "-c", f"{command} > {tmp_path / 'job.log'} 2>&1 & echo $! > {pid_file}; wait"],
                              cwd=ROOT, env=os.environ.copy())
    while not pid_file.exists() or not pid_file.read_text().strip():
        time.sleep(0.1)
    return script, int(pid_file.read_text())


def _ignored_signals(pid: int) -> int:
    return int(next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if line.startswith("SigIgn:")).split()[1], 16)


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).close()  # noqa: S310 (loopback)
        return True
    except OSError:
        return False


def _ui_processes(port: int) -> list[int]:
    """`dagster dev -p <port>` and the webserver and daemon it starts (`--port <port>`)."""
    return _processes_naming(f"-p {port}") + _processes_naming(f"--port {port}")


def _processes_naming(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_make_ui_started_in_the_background_by_a_script_stops_on_sigterm(tmp_path, aws_env, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    port = free_port()
    script, make = _in_the_background(f"make --no-print-directory ui UI_PORT={port}", tmp_path)
    assert _ignored_signals(make) & (1 << (signal.SIGINT - 1)), "the shell no longer ignores SIGINT in a background job"
    try:
        wait_for_http(f"http://127.0.0.1:{port}/server_info")
        os.kill(make, signal.SIGTERM)  # make passes it on to `billing ui`, now `dagster dev`
        script.wait(timeout=60)
        deadline = time.monotonic() + 30
        while (_answers(f"http://127.0.0.1:{port}/server_info") or _ui_processes(port)) \
                and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _answers(f"http://127.0.0.1:{port}/server_info")
        assert _ui_processes(port) == [], (tmp_path / "job.log").read_text()[-2000:]
    finally:
        for pid in _ui_processes(port):
            os.kill(pid, signal.SIGKILL)
        script.kill()


def test_ctrl_c_reaches_a_billing_process_whose_shell_ignored_it():
    # as a shell starts a background job: SIGINT ignored; what `billing` does first gives it back
    code = ("import os, signal, time\nfrom billing_assets.cli import stoppable\nstoppable()\n"
            "assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL\n"
            "os.kill(os.getpid(), signal.SIGINT)\ntime.sleep(5)\n")
    finished = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                              preexec_fn=lambda: (signal.signal(signal.SIGINT, signal.SIG_IGN),
                                                  signal.signal(signal.SIGTERM, signal.SIG_IGN)))
    assert finished.returncode == -signal.SIGINT and finished.stderr.strip().endswith("KeyboardInterrupt"), finished.stderr


def test_billing_run_in_the_background_stops_its_log_capture_at_once(tmp_path, put, monkeypatch):
    put(reference_files() | {"raw/usage/dt=2026-01-05/a.jsonl": (event(event_id="b1") + "\n").encode()})
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    script, _ = _in_the_background(f"{BILLING} run --from 2026-01-05 --to 2026-01-05", tmp_path)
    assert script.wait(timeout=600) == 0
    assert "2026-01-05: 1 lines → 1 accepted" in (tmp_path / "job.log").read_text()
    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        runs = instance.get_runs()
        # Dagster records a capture it could not stop in 30 s as this engine event
        stuck = [entry.message for run in runs for entry in instance.all_logs(run.run_id)
                 if "cleaning up compute log capture" in (entry.message or "")]
    assert len(runs) == 3 and stuck == []
