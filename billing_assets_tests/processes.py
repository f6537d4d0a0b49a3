"""Killing a real process at a chosen point: the child writes a marker file when it gets there."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def kill_at_marker(script: str, *args: str, marker: Path, what: str, timeout: float = 120) -> int:
    """Run ``python -c script marker *args``, SIGKILL it once it has written ``marker``; its pid."""
    child = subprocess.Popen([sys.executable, "-c", script, str(marker), *args], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), f"the child never reached {what}"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    return child.pid
