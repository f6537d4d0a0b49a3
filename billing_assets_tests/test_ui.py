"""The Dagster UI, in a real browser, shows what an operator needs after a run.

`billing run` over one seeded day (which also rates and invoices its month) against an instance
on disk; then `dagster-webserver` on loopback over that instance, and headless Chromium driven
by Selenium through the system chromedriver (no browser download). Screenshots are saved under
test-artifacts/ui/ (or $BILLING_TEST_ARTIFACTS).
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from billing_assets.definitions import defs
from billing_assets.demo.embedded_s3 import free_port
from billing_assets_tests.conftest import reference_files
from billing_assets_tests.servers import chromium_and_driver, chromium_session, wait_for_http
from billing_assets_tests.usage.helpers import event

ROOT = Path(__file__).resolve().parents[1]
DAY = "2026-01-05"
BROWSER = chromium_and_driver()
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(BROWSER is None, reason="no Chromium + chromedriver (Debian: chromium chromium-driver)")]


@pytest.fixture(scope="module")
def artifacts() -> Path:
    folder = Path(os.environ.get("BILLING_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "ui"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def webserver(tmp_path, put, monkeypatch):
    from billing_assets.cli import main

    lines = [event(event_id="u1"), event(event_id="u2", quantity="3"), "{not json"]
    put(reference_files() | {f"raw/usage/dt={DAY}/a.jsonl": "".join(line + "\n" for line in lines).encode()})
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.chdir(ROOT)
    assert main(["run", "--from", DAY, "--to", DAY]) == 0
    port = free_port()
    log = (tmp_path / "webserver.log").open("w")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
        cwd=ROOT, env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/server_info")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def browser():
    with chromium_session(BROWSER) as session:
        yield session


def skip_community_modal(browser) -> None:
    for button in browser.find_elements("xpath", "//button[normalize-space()='Skip']"):
        button.click()


def page_text(browser, url: str, *expected: str, timeout: float = 45) -> str:
    """Open ``url`` and wait until every expected text is on the page (the UI renders late)."""
    browser.get(url)
    started, text = time.monotonic(), ""
    while time.monotonic() - started < timeout:
        skip_community_modal(browser)
        text = browser.find_element("tag name", "body").text
        if all(item in text for item in expected):
            return text
        time.sleep(1)
    missing = [item for item in expected if item not in text]
    raise AssertionError(f"{url}: not shown after {timeout} s: {missing}\n--- page text ---\n{text[:3000]}")


def test_the_ui_shows_the_graph_partitions_checks_and_metadata(webserver, browser, artifacts):
    # the whole graph, as the README shows it (docs/images/asset-graph.png is a copy of this one)
    browser.set_window_size(1400, 820)
    page_text(browser, f"{webserver}/asset-groups", "Global asset lineage", "usage", "metering", "rating", "invoicing",
              "monitoring", "insights", "analytics", "providers")
    time.sleep(3)  # the community modal opens late, and the graph settles
    skip_community_modal(browser)
    time.sleep(1)
    browser.save_screenshot(str(artifacts / "asset-graph.png"))
    browser.set_window_size(1600, 2400)

    graph = defs.resolve_asset_graph()
    groups: dict[str, list[str]] = {}
    for key in graph.get_all_asset_keys():
        groups.setdefault(graph.get(key).group_name, []).append(key.to_user_string())
    for group, assets in sorted(groups.items()):
        page_text(browser, f"{webserver}/locations/billing_assets/asset-groups/{group}", *assets)
        browser.save_screenshot(str(artifacts / f"graph-{group}.png"))

    partitions = page_text(browser, f"{webserver}/assets/usage_events?view=partitions", "Materialized (1)")
    assert "Failed (0)" in partitions
    browser.save_screenshot(str(artifacts / "usage_events-partitions.png"))

    checks = page_text(browser, f"{webserver}/assets/usage_events?view=checks",
                       "usage_lines_conserved", "This is a blocking asset check.", "Passed", DAY)
    assert checks.count("Succeeded") >= 2
    browser.save_screenshot(str(artifacts / "usage_events-checks.png"))

    # the overview: row count, the column schema from the pandera model, the run's metadata
    overview = page_text(browser, f"{webserver}/assets/usage_events", "Row count", "Columns", "ip_prefix",
                         "decimal128(38, 9)", "lines_read", "quarantined/malformed_json")
    assert "IPv4 /24 or IPv6 /48" in overview
    browser.save_screenshot(str(artifacts / "usage_events-overview.png"))

    invoices = page_text(browser, f"{webserver}/assets/invoices?view=checks", "invoices_matches_contract",
                         "invoices_issued_on_time")
    assert "Succeeded" in invoices
    browser.save_screenshot(str(artifacts / "invoices-checks.png"))
