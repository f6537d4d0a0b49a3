"""Throwaway servers for tests that need the real thing: PostgreSQL, Chromium, the webserver."""

import os
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from billing_assets.demo.embedded_s3 import free_port


def postgres_bin_dir() -> Path | None:
    """Where Debian's (or any) PostgreSQL server binaries are, if anywhere."""
    found = shutil.which("pg_ctl")
    if found and Path(found).resolve().with_name("initdb").exists():
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    return versions[0].parent if versions else None


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    db_name: str


@contextmanager
def throwaway_postgres():
    """A PostgreSQL cluster in a new temporary folder on a loopback port, trusted local auth,
    removed after. PostgreSQL refuses to run as root, so as root it runs as the ``postgres``
    user (hence a folder directly under the system temp dir, which that user can reach)."""
    bin_dir = postgres_bin_dir()
    base = Path(tempfile.mkdtemp(prefix="billing-postgres-"))
    data = base / "pgdata"
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    if as_root:
        shutil.chown(base, "postgres")
    user = "dagster"
    subprocess.run([*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    port = free_port()
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(base / "server.log"),
                    "-w", "start"], check=True, capture_output=True)
    try:
        subprocess.run([*prefix, str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", user, "dagster"],
                       check=True, capture_output=True)
        yield Postgres("127.0.0.1", port, user, "dagster")
    finally:
        subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def chromium_and_driver() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def wait_for_http(url: str, timeout: float = 90) -> None:
    import urllib.request

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"{url} did not answer within {timeout} s")



@contextmanager
def chromium_session(browser: tuple[str, str], width: int = 1600, height: int = 2400):
    """Headless Chromium driven by Selenium through the system chromedriver (no download); the
    flags keep it off this machine's closed network."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = browser
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}", f"--window-size={width},{height}"):
        options.add_argument(argument)
    session = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield session
    finally:
        session.quit()
