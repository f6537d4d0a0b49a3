"""``billing``: run the platform from a terminal, against the instance in ``DAGSTER_HOME``.

    billing run --from 2026-10-01 --to 2026-10-31   materialise days (and, later, months)
    billing demo                                    embedded S3 + synthetic month + run
    billing ui                                      the Dagster UI on the same instance and bucket
    billing stop-s3                                 stop the embedded S3 server
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import os
import re
import shutil
import signal
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import unquote

DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# the instance records every event for the UI; the terminal gets our summary, not tracebacks
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


class CliError(Exception):
    """Reported as one line on stderr, exit status 2 (usage) or 1 (environment/run)."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


def parse_day(text: str, flag: str) -> date:
    if not DATE.match(text):
        raise CliError(f"{flag} {text!r} is not a date in YYYY-MM-DD form", 2)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CliError(f"{flag} {text!r} is not a real calendar date", 2) from None


def parse_month(text: str) -> str:
    try:
        return date.fromisoformat(f"{text}-01").strftime("%Y-%m") if len(text) == 7 else _bad_month(text)
    except ValueError:
        return _bad_month(text)


def _bad_month(text: str) -> str:
    raise CliError(f"--month {text!r} is not a month (YYYY-MM)", 2)


def days_between(start: date, end: date) -> list[str]:
    from billing_assets.partitions import PARTITIONS_START

    first = date.fromisoformat(PARTITIONS_START)
    last_complete = datetime.now(timezone.utc).date() - timedelta(days=1)
    if start > end:
        raise CliError(f"--from {start} is after --to {end}", 2)
    if start < first:
        raise CliError(f"--from {start} is before the first partition ({first})", 2)
    if end > last_complete:
        raise CliError(f"--to {end} is not a complete UTC day yet (the last one is {last_complete})", 2)
    return [(start + timedelta(days=offset)).isoformat() for offset in range((end - start).days + 1)]


def check_bucket() -> str:
    """Fail fast, in one line, when the endpoint or the bucket is not there."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    from billing_assets.lib.lake import DEFAULT_BUCKET

    bucket = os.environ.get("BILLING_BUCKET") or DEFAULT_BUCKET
    client = boto3.client("s3", config=Config(connect_timeout=3, read_timeout=10,
                                              retries={"mode": "standard", "total_max_attempts": 2}))
    endpoint = client.meta.endpoint_url
    try:
        client.head_bucket(Bucket=bucket)
    except EndpointConnectionError:
        raise CliError(f"cannot reach the S3 endpoint {endpoint} (is AWS_ENDPOINT_URL right, is the server up?)") from None
    except NoCredentialsError:
        raise CliError("no AWS credentials found (environment, profile or instance role)") from None
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchBucket"):
            raise CliError(f"bucket '{bucket}' does not exist at {endpoint} (set BILLING_BUCKET?)") from None
        if code in ("403", "AccessDenied"):
            raise CliError(f"access to bucket '{bucket}' at {endpoint} is denied") from None
        raise CliError(f"S3 refused head_bucket on '{bucket}' at {endpoint}: {code}") from None
    return bucket


MINIMAL_INSTANCE = "telemetry:\n  enabled: false\n"
# below this, a storage error writing the instance is taken for a full disk
LOW_DISK_BYTES = 16 * 2**20


def instance():
    """The instance in DAGSTER_HOME (a context manager: leaving it disposes of its storage)."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise CliError("DAGSTER_HOME is not set: it names the Dagster instance the runs are recorded in")
    home_path = Path(home)
    home_path.mkdir(parents=True, exist_ok=True)
    if not (home_path / "dagster.yaml").exists():
        # a new instance gets this project's local settings (or, outside a checkout, no telemetry)
        source = Path("dagster.yaml")
        (home_path / "dagster.yaml").write_text(source.read_text() if source.exists() else MINIMAL_INSTANCE)
    import fcntl

    from dagster import DagsterInstance

    # two billing runs started at once on a new home would both create and migrate its sqlite
    # storage ("more than one head present"): the first to take the lock does, the other waits
    with open(home_path / ".instance.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        created = DagsterInstance.get()
        created.get_runs(limit=1)  # the storages exist and are migrated before the lock is let go
        _ = (created.event_log_storage, created.schedule_storage)
    return created


# botocore's names for "nobody answered": the endpoint went away, not a request S3 refused
_UNREACHABLE = {"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError"}
_URL = re.compile(r'"(https?://[^/"]+)/?([^"]*)"')


def _endpoint_gone(result) -> str | None:
    """One line for a run that failed because the S3 endpoint stopped answering, else None."""
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            error = event.event_specific_data.error
            while error is not None and error.cls_name not in _UNREACHABLE:
                error = error.cause or error.context
            if error is None:
                return None
            found = _URL.search(error.message or "")
            endpoint, key = (found.group(1), unquote(found.group(2).split("/", 1)[-1])) if found else ("", "")
            return (f"the S3 endpoint {endpoint} stopped answering during the run"
                    + (f" (at {key.split('?')[0]})" if key else "")
                    + "; every partition and document is whole or absent: run the same command when it answers")
    return None


def _disk_full(error: BaseException) -> str | None:
    """One line for a failure to write the local instance because its disk is full, else None.
    SQLite says "database or disk is full" or, when the journal cannot grow, "disk I/O error"."""
    home = os.environ.get("DAGSTER_HOME")
    text = f"{error} {error.__cause__ or ''}".lower()
    storage_error = "disk is full" in text or "disk i/o error" in text or getattr(error, "errno", None) == errno.ENOSPC
    if not home or not storage_error or not Path(home).exists():
        return None
    free = shutil.disk_usage(home).free
    if free >= LOW_DISK_BYTES:
        return None
    return (f"the disk of the Dagster instance ({home}) is full ({free:,} bytes free): free space and run the "
            "same command; every partition and document is whole or absent, and the runs this one left "
            "unfinished are marked failed then")


def _failure_text(result) -> str:
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            data = event.event_specific_data
            if data.user_failure_data and data.user_failure_data.description:
                return data.user_failure_data.description  # a dg.Failure raised on purpose
            error = data.error.cause if data.error.cause else data.error
            lines = (error.message or "").strip().splitlines()
            return lines[-1] if lines else "step failed"
    failed_checks = [e.asset_check_key.name for e in result.get_asset_check_evaluations() if not e.passed]
    return "failed checks: " + ", ".join(failed_checks) if failed_checks else "run failed"


def _materialization_metadata(result, asset: str) -> dict:
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        if materialization.asset_key.to_user_string() == asset:
            return {key: value.value for key, value in materialization.metadata.items()}
    return {}


@dataclass
class RunSummary:
    status: int
    per_day: dict[str, dict[str, int]]  # day → lines_read, accepted, duplicates, quarantined


def run(start: date, end: date) -> RunSummary:
    days = days_between(start, end)
    bucket = check_bucket()
    # what Dagster writes to stderr itself (its complaints on failing to write the instance) is
    # passed on, unless the one line for a full disk says it all
    held, full = io.StringIO(), None
    try:
        with contextlib.redirect_stderr(held), instance() as dagster_instance:
            return _run(days, bucket, dagster_instance)
    except Exception as error:
        full = _disk_full(error)
        if full:
            raise CliError(full) from None
        raise
    finally:
        if not full:
            sys.stderr.write(held.getvalue())


def range_tags(keys: list[str]) -> dict[str, str]:
    """The tags of a single-run backfill: one run over the whole range, as the UI launches it."""
    return {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1],
            "billing/trigger": "billing run"}


def execute_range(job, keys: list[str], dagster_instance, progress_step: str | None = None):
    """Run ``job`` once over ``keys``, printing ``progress_step``'s per-partition log lines as
    the run writes them to the instance (the run itself stays quiet on the terminal)."""
    import threading
    import uuid

    from billing_assets.monitoring.orphans import process_tags

    run_id, finished, outcome = str(uuid.uuid4()), threading.Event(), {}

    def work():
        try:
            # the process is named in the run's tags: if it is killed, the next look marks the run failed
            outcome["result"] = job.execute_in_process(
                instance=dagster_instance, raise_on_error=False, run_config=QUIET_LOGS, run_id=run_id,
                **({"partition_key": keys[0], "tags": process_tags()} if len(keys) == 1
                   else {"tags": range_tags(keys) | process_tags()}))
        except BaseException as error:  # handed to the caller's thread
            outcome["error"] = error
        finally:
            finished.set()

    threading.Thread(target=work, daemon=True).start()
    shown, started, cursor = 0, time.monotonic(), None
    while True:
        done = finished.wait(0.5)
        if progress_step:
            # only the records written since the last look: the run shares this process's GIL
            page = dagster_instance.get_records_for_run(run_id, cursor=cursor)
            cursor = page.cursor
            for record in page.records:
                entry = record.event_log_entry
                if entry.step_key == progress_step and entry.dagster_event is None and DATE.match(entry.user_message[:10]):
                    shown += 1
                    print(f"[{shown:>3}/{len(keys)}] {entry.user_message}  ({time.monotonic() - started:.1f}s)", flush=True)
        if done and not (progress_step and page.has_more):
            break
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _run(days: list[str], bucket: str, dagster_instance) -> RunSummary:
    warnings.filterwarnings("ignore")
    from billing_assets.definitions import defs
    from billing_assets.monitoring.orphans import fail_orphaned_runs, process_tags
    from billing_assets.usage.reasons import REASON_CODES

    print(f"billing run {days[0]} → {days[-1]}: {len(days)} day(s), bucket '{bucket}', instance {os.environ['DAGSTER_HOME']}")
    for run_id, reason in fail_orphaned_runs(dagster_instance):
        print(f"run {run_id[:8]} marked failed: {reason}")
    reference = defs.resolve_job_def("reference_job").execute_in_process(
        instance=dagster_instance, raise_on_error=False, run_config=QUIET_LOGS, tags=process_tags())
    if not reference.success:
        raise CliError(_endpoint_gone(reference) or f"reference data rejected: {_failure_text(reference)}")
    print("reference data: valid")
    started = time.monotonic()
    result = execute_range(defs.resolve_job_def("daily_usage_job"), days, dagster_instance, progress_step="usage_ingest")
    if not result.success and (gone := _endpoint_gone(result)):
        raise CliError(gone)
    per_day = _materialization_metadata(result, "usage_events").get("per_day_counts", {})
    failures = [] if result.success else [f"{days[0]}…{days[-1]}" if len(days) > 1 else days[0]]
    print(f"{len(days)} day(s) in one run ({result.run_id[:8]}), {time.monotonic() - started:.1f}s"
          + ("" if result.success else f": FAILED: {_failure_text(result)}"))
    totals, reasons = Counter(), Counter()
    print()
    print(f"{'day':<12}{'lines read':>12}{'accepted':>10}{'duplicates':>12}{'quarantined':>13}  by reason")
    for day in days:
        counts = per_day.get(day)
        if counts is None:
            continue
        by_reason = {reason: counts["by_reason"].get(reason, 0) for reason in REASON_CODES}
        totals.update({name: counts[name] for name in ("lines_read", "accepted", "duplicates", "quarantined")})
        reasons.update(by_reason)
        detail = ", ".join(f"{reason} {count}" for reason, count in by_reason.items() if count)
        print(f"{day:<12}{counts['lines_read']:>12}{counts['accepted']:>10}{counts['duplicates']:>12}"
              f"{counts['quarantined']:>13}  {detail}")
    print(f"{'total':<12}{totals['lines_read']:>12}{totals['accepted']:>10}{totals['duplicates']:>12}"
          f"{totals['quarantined']:>13}  " + ", ".join(f"{r} {c}" for r, c in reasons.items() if c))
    if result.success:
        _show_anomalies(days)
        failures += rate_months(sorted({day[:7] for day in days}), dagster_instance, defs)
    if failures:
        print(f"\nfailed: {', '.join(failures)}; open the run in the UI for the failing step or check")
    return RunSummary(1 if failures else 0, {day: {name: counts[name] for name in
                                                   ("lines_read", "accepted", "duplicates", "quarantined")}
                                             for day, counts in per_day.items()})


def _show_anomalies(days: list[str], shown: int = 10) -> None:
    """The range's usage anomalies nobody suppressed: a warning each, with its sentence."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from billing_assets.analytics.detect import FINDINGS
    from billing_assets.invoicing.render import money
    from billing_assets.resources import billing_lake

    lake, found = billing_lake(), []
    for day in days:
        table = lake.read_table("usage_anomalies", day)
        flagged = pc.and_(pc.is_in(table.column("kind"), pa.array(FINDINGS)), pc.is_null(table.column("suppressed_by")))
        found += table.filter(flagged).to_pylist()
    if not found:
        print("\nusage anomalies: none")
        return
    print(f"\nusage anomalies ({len(found)}, warnings: check no_unexplained_usage_anomalies):")
    for row in found[:shown]:
        risk = "" if row["revenue_at_risk_minor"] is None else f", {money(row['revenue_at_risk_minor'], row['currency'])} at risk"
        print(f"  {row['day']} {row['customer_id']} {row['meter']}: {row['kind']}{risk}\n    {row['explanation']}")
    if len(found) > shown:
        print(f"  … and {len(found) - shown} more in usage_anomalies")


def _kpi_line(row: dict) -> str:
    """One currency's KPIs of the month, in a line."""
    from decimal import ROUND_HALF_UP, Decimal

    from billing_assets.invoicing.render import money

    currency = row["currency"]
    if currency == "XXX":
        return f"KPIs, no known customer: {row['quarantined_lines']} quarantined lines"

    def pct(rate, scale=100):  # shown to 2 places, half-up, like every rounding here
        return "n/a" if rate is None else f"{(rate * scale).quantize(Decimal('0.01'), ROUND_HALF_UP)} %"
    return (f"KPIs {currency}: {row['invoices_issued']} issued, first time right {pct(row['first_time_right_rate'])}, "
            f"credit notes {money(row['credit_note_minor'], currency)} "
            f"({pct(row['credit_note_pct_of_billed'], 1)} of billed), "
            f"recovered {money(row['adjustment_invoice_minor'], currency)}, {row['quarantined_lines']} lines "
            f"quarantined worth {money(row['quarantined_billable_minor'] or 0, currency)}, "
            f"duplicates {pct(row['duplicate_rate'])}"
            + _onboarding_text(row))


def _onboarding_text(row: dict) -> str:
    from decimal import ROUND_HALF_UP, Decimal

    if not row["contracts_onboarded"]:
        return ""
    days = row["onboarding_to_first_right_days"]
    mean = "n/a" if days is None else f"{days.quantize(Decimal('0.1'), ROUND_HALF_UP)} days on average"
    return (f", {row['contracts_onboarded']} onboarded: first invoice needing no correction after {mean}, "
            f"{row['onboardings_awaiting_right_invoice']} still waiting")


def rate_months(months: list[str], dagster_instance, defs) -> list[str]:
    """Rate, invoice and reconcile the months the range touches, in one run; returns what failed."""
    from billing_assets.invoicing.render import money
    from billing_assets.monitoring.reconcile import breaks
    from billing_assets.resources import billing_lake

    result = execute_range(defs.resolve_job_def("monthly_billing_job"), months, dagster_instance)
    if not result.success and (gone := _endpoint_gone(result)):
        raise CliError(gone)
    if not result.success:
        print(f"\n{', '.join(months)}: FAILED: {_failure_text(result)}  (run {result.run_id[:8]})")
        return months
    lake = billing_lake()
    rated = _materialization_metadata(result, "rated_charges")
    for month in months:
        unmetered = [day for day in rated.get("days_not_yet_metered") or [] if day.startswith(month)]
        print(f"\n{month}: {lake.read_table('rated_charges', month).num_rows} rated lines"
              + (f"; {len(unmetered)} day(s) not metered yet" if unmetered else ""))
        print(f"  {'invoice':<28}{'customer':<20}{'total':>22}  status")
        for row in lake.read_table("invoices", month).to_pylist():
            print(f"  {row['invoice_number']:<28}{row['customer_id']:<20}{money(row['total_minor'], row['currency']):>22}"
                  f"  {row['status']}")
        for row in lake.read_table("invoice_adjustments", month).to_pylist():
            print(f"  {row['document_number']:<28}{row['customer_id']:<20}{money(row['amount_minor'], row['currency']):>22}"
                  f"  {row['kind'].replace('_', ' ')} of {row['invoice_number']}")
        reconciliation = lake.read_table("reconciliation", month)
        found = breaks(reconciliation)
        print("  reconciliation: " + (f"all {reconciliation.num_rows} tie-outs hold" if not found
                                       else f"{len(found)} BREAKS: " + "; ".join(found[:3])))
        for row in lake.read_table("billing_kpis", month).to_pylist():
            print("  " + _kpi_line(row))
    return []


# moto accepts any credentials; boto3 needs some
EMBEDDED_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "embedded", "AWS_SECRET_ACCESS_KEY": "embedded",  # pragma: allowlist secret
                        "AWS_DEFAULT_REGION": "us-east-1"}


def _use_embedded_s3(state_dir: Path) -> bool:
    """Point boto3 at the embedded server unless the user chose an endpoint. Returns True when
    the server had to be started (its memory is empty)."""
    if os.environ.get("AWS_ENDPOINT_URL"):
        return False
    from billing_assets.demo.embedded_s3 import ensure_server

    endpoint, started = ensure_server(state_dir)
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    for name, value in EMBEDDED_CREDENTIALS.items():
        os.environ.setdefault(name, value)
    return started


def _default_home() -> None:
    from billing_assets.lib.instance_storage import local_dagster_home

    os.environ["DAGSTER_HOME"] = local_dagster_home()
    with instance():
        pass  # creates the home and its dagster.yaml


def seed_demo(include_late: bool, remediated: bool = False) -> None:
    from billing_assets.demo.embedded_s3 import land
    from billing_assets.demo.synthetic import (
        demo_late_objects,
        demo_month_objects,
        demo_remediation_objects,
        reference_objects,
    )

    land(reference_objects() | demo_month_objects() | (demo_late_objects() if include_late else {})
         | (demo_remediation_objects() if remediated else {}))


def _remediated_before() -> bool:
    """A demo bucket kept from an earlier `make demo` holds the back-dated contract: seeding the
    original one again would undo it (and issue a credit note for what the remediation billed)."""
    from billing_assets.reference.remediations import REMEDIATIONS_KEY
    from billing_assets.resources import billing_lake

    with contextlib.suppress(Exception):  # no bucket yet: nothing was remediated
        return billing_lake().get_bytes_or_none(REMEDIATIONS_KEY) is not None
    return False


def _show_remediations(month: str) -> None:
    from billing_assets.resources import billing_lake

    print(f"\nRemediation impact, {month} (warehouse/remediation_impact/):")
    for row in billing_lake().read_table("remediation_impact", month).to_pylist():
        print(f"  {row['explanation']}")


def demo() -> int:
    from billing_assets.demo.synthetic import (
        DEMO_CONTRACTS,
        DEMO_LATE_DAY,
        DEMO_MONTH,
        DEMO_REMEDIATION,
        demo_late_objects,
    )

    _default_home()
    embedded = not os.environ.get("AWS_ENDPOINT_URL")
    started = _use_embedded_s3(Path(".demo"))
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    print(f"S3 endpoint {endpoint}" + (" (embedded, started now)" if started else ""))
    remediated = _remediated_before()
    seed_demo(include_late=False, remediated=remediated)
    month_end = DEMO_MONTH.replace(day=31)
    month = run(DEMO_MONTH, month_end)
    late_key = next(iter(demo_late_objects()))
    print(f"\nA late file lands for {DEMO_LATE_DAY}: {late_key}; the day is ingested again, all of its objects.")
    seed_demo(include_late=True, remediated=remediated)
    late = run(DEMO_LATE_DAY, DEMO_LATE_DAY)
    before = month.per_day.get(DEMO_LATE_DAY.isoformat(), {})
    after = late.per_day.get(DEMO_LATE_DAY.isoformat(), {})
    print(f"{DEMO_LATE_DAY}: accepted {before.get('accepted')} → {after.get('accepted')}, "
          f"lines read {before.get('lines_read')} → {after.get('lines_read')}")
    remediation_id, description, first_day, *_ = DEMO_REMEDIATION
    covered = date.fromisoformat(next(row[3] for row in DEMO_CONTRACTS if row[1] == "stark"))
    print(f"\nRemediation {remediation_id}: {description} (reference/contracts.csv, reference/remediations.csv); "
          f"the days it now covers are run again.")
    seed_demo(include_late=True, remediated=True)
    fixed = run(date.fromisoformat(first_day), covered - timedelta(days=1))
    status = month.status or late.status or fixed.status
    if not status:
        _show_remediations(DEMO_MONTH.strftime("%Y-%m"))
    if not status:
        print()
        status = statements([DEMO_MONTH.strftime("%Y-%m")])
    if not status:
        _show_statements(DEMO_MONTH.strftime("%Y-%m"))
        status = _sessions(days_between(DEMO_MONTH, month_end))
    if not status:
        _show_provider_plans(DEMO_MONTH.strftime("%Y-%m"), days_between(DEMO_MONTH, month_end))
    print(f"\nTables: s3://{os.environ['BILLING_BUCKET']}/warehouse/<table>/dt=YYYY-MM-DD/part-00000.parquet "
          f"at {endpoint}\nNext: `make ui` opens the Dagster UI on this instance and bucket.")
    if embedded:
        print("The embedded S3 server keeps running (its data lives in its memory, for `make ui`); "
              "`make stop-s3` stops it; `eval \"$(.venv/bin/billing env)\"` points dg, the AWS CLI or DuckDB at it.")
    return status


def _show_provider_plans(month: str, days: list[str]) -> None:
    """What the usage sync and the refunds would send, from the ledgers of the dry run."""
    from billing_assets.invoicing.render import money
    from billing_assets.providers.assets import read_ledger
    from billing_assets.providers.refund_assets import read_refund_ledger
    from billing_assets.resources import billing_lake

    lake = billing_lake()
    kind = os.environ.get("BILLING_PROVIDER") or "none"
    rows = [row for day in days for row in read_ledger(lake, day) or [] if row.provider == kind]
    kinds = Counter(row.kind for row in rows)
    print(f"\nBilling provider: BILLING_PROVIDER={kind}" + (" (a dry run: the plan is written, nothing leaves the lake)"
                                                          if kind == "none" else ""))
    print(f"  usage sync {month}: {len(rows)} sends over {len(days)} days ({kinds['usage']} usage, "
          f"{kinds['correction']} corrections of late data), each under an identifier a re-send repeats")
    for row in [row for row in rows if row.kind == "correction"][:3]:
        print(f"    {row.identifier}  {row.quantity_sent.normalize():+f}  to {row.provider_customer_id}")
    refunds = [row for row in read_refund_ledger(lake, month) or [] if row.provider == kind]
    print(f"  refunds {month}: " + (", ".join(f"{row.document_number} {money(row.amount_minor, row.currency)} "
                                             f"({row.status})" for row in refunds) or "no credit note to pay back"))
    print("  warehouse/provider_sync/, refund_requests/, provider_reconciliation/; to go live: "
          "BILLING_PROVIDER=stripe or orb with its API key, see docs/operations.md, \"Billing providers\"")


def _sessions(days: list[str]) -> int:
    """The days' sessions (what `make ui`'s automation would run after each ingest), one run."""
    import pyarrow.compute as pc

    from billing_assets.definitions import defs
    from billing_assets.resources import billing_lake

    with instance() as dagster_instance:
        result = execute_range(defs.resolve_job_def("analytics_job"), days, dagster_instance)
    if not result.success:
        print(f"sessions: FAILED: {_failure_text(result)}  (run {result.run_id[:8]})")
        return 1
    tables = [billing_lake().read_table("sessions", day) for day in days]
    by_id = sum(pc.sum(pc.invert(pc.starts_with(table.column("session_id"), "gap:"))).as_py() or 0 for table in tables)
    total = sum(table.num_rows for table in tables)
    print(f"\nSessions, {days[0]} → {days[-1]}: {total:,} ({by_id:,} by properties.session_id, "
          f"{total - by_id:,} by a 30-minute gap per customer × IP prefix) in warehouse/sessions/")
    return 0


def statements(months: list[str]) -> int:
    """Write the months' usage statements as one Dagster run; print where they are."""
    from billing_assets.definitions import defs

    check_bucket()
    with instance() as dagster_instance:
        started = time.monotonic()
        result = execute_range(defs.resolve_job_def("statements_job"), months, dagster_instance)
        if not result.success:
            print(f"statements {', '.join(months)}: FAILED: {_failure_text(result)}  (run {result.run_id[:8]})")
            return 1
    from billing_assets.resources import billing_lake

    lake = billing_lake()
    for month in months:
        rows = lake.read_table("usage_statements", month).num_rows
        print(f"{month}: {rows} usage statements in s3://{lake.bucket_name}/documents/{month}/<customer>/statement.html "
              f"(and .json, -lines.csv, -usage.csv), {time.monotonic() - started:.1f}s")
    return 0


def _show_statements(month: str) -> None:
    """Where the month's statements are, and one invoice line explained down to its events."""
    from billing_assets.insights.explain import explain, explain_text
    from billing_assets.resources import billing_lake

    lake = billing_lake()
    rows = lake.read_table("usage_statements", month).to_pylist()
    last_day = max(lake.days_present("usage_alerts", month), default=None)
    if last_day:
        alerts = lake.read_table("usage_alerts", last_day).to_pylist()
        print(f"\nAlerts crossed in {month} ({len(alerts)}; outbox s3://{lake.bucket_name}/alerts/{month}/<customer>/):")
        for alert in alerts:
            what = alert["meter"] or alert["kind"]
            print(f"  {alert['alert_id']:<12} {alert['customer_id']:<12} {what} reached {alert['value']} "
                  f"(threshold {alert['threshold']}) on {alert['crossed_on']}  [{alert['state']}]")
    example = next((row for row in rows if row["corrections"]), rows[0] if rows else None)
    if example is None:
        return
    print(f"\n$ billing explain {example['invoice_number']} --meter egress_gb --events 3")
    print(explain_text(explain(lake, example["invoice_number"], meter="egress_gb", events=3)))


def ui(port: int) -> int:
    _default_home()
    if _use_embedded_s3(Path(".demo")):
        print("The embedded S3 server was not running (it keeps data in memory): re-creating the demo data.")
        demo()
    print(f"Dagster UI on http://127.0.0.1:{port} (DAGSTER_HOME={os.environ['DAGSTER_HOME']}, "
          f"S3 {os.environ['AWS_ENDPOINT_URL']})")
    dagster = shutil.which("dagster", path=str(Path(sys.executable).parent)) or "dagster"
    os.execvpe(dagster, [dagster, "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)], os.environ)


def env_command() -> int:
    """Shell exports that point other tools — `dg`, `dagster`, the AWS CLI, DuckDB — at the demo's
    embedded S3 server, bucket and instance: ``eval "$(billing env)"``."""
    import shlex

    from billing_assets.demo.embedded_s3 import running_endpoint
    from billing_assets.lib.instance_storage import local_dagster_home

    endpoint = running_endpoint(Path(".demo"))
    if endpoint is None:
        raise CliError("the embedded S3 server is not running here (make demo or make ui starts it)")
    exports = {"AWS_ENDPOINT_URL": endpoint, **EMBEDDED_CREDENTIALS,
               "BILLING_BUCKET": os.environ.get("BILLING_BUCKET", "billing"),
               "DAGSTER_HOME": local_dagster_home()}
    for name, value in exports.items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


def explain_command(number: str, meter: str | None, as_json: bool, events: int) -> int:
    """Explain one document; an unknown one is a one-line error (exit 1). Reads the embedded
    demo server when it runs and no endpoint was chosen."""
    import json as json_module

    from billing_assets.demo.embedded_s3 import running_endpoint
    from billing_assets.insights.explain import UnknownDocument, explain, explain_text
    from billing_assets.resources import billing_lake

    if not os.environ.get("AWS_ENDPOINT_URL") and (endpoint := running_endpoint(Path(".demo"))):
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        for name, value in EMBEDDED_CREDENTIALS.items():
            os.environ.setdefault(name, value)
    check_bucket()
    try:
        result = explain(billing_lake(), number, meter=meter, events=events)
    except UnknownDocument as error:
        raise CliError(str(error)) from None
    print(json_module.dumps(result, indent=2, ensure_ascii=False) if as_json else explain_text(result))
    return 0


def stoppable() -> None:
    """Give SIGINT and SIGTERM their usual meaning back. A POSIX shell starts a script's
    background job with SIGINT ignored; Dagster then maps SIGTERM to SIGINT's disposition, so
    `billing ui` (and the webserver and daemon under it) could no longer be stopped, and every
    `tail` Dagster starts to capture a run's step logs — which it stops with SIGTERM, waiting up to
    30 s — outlived its run: `billing run` in the background took a minute longer per job."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def main(argv: list[str] | None = None) -> int:
    stoppable()
    parser = argparse.ArgumentParser(prog="billing", description="Usage metering and billing on Dagster.")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="materialise every daily partition in a date range")
    run_parser.add_argument("--from", dest="start", required=True, metavar="YYYY-MM-DD")
    run_parser.add_argument("--to", dest="end", required=True, metavar="YYYY-MM-DD")
    run_parser.add_argument("--engine", choices=("local", "spark"),
                            help="where a day's ingest and metering run (default $BILLING_ENGINE, else local)")
    commands.add_parser("demo", help="embedded S3, a synthetic month, and a run over it")
    ui_parser = commands.add_parser("ui", help="the Dagster UI on the demo's instance and bucket")
    ui_parser.add_argument("--port", type=int, default=3000)
    commands.add_parser("stop-s3", help="stop the embedded S3 server")
    commands.add_parser("env", help="shell exports for other tools to reach the demo: eval \"$(billing env)\"")
    statements_parser = commands.add_parser("statements", help="write the customers' usage statements of a month")
    statements_parser.add_argument("--month", required=True, action="append", metavar="YYYY-MM",
                                   help="a month (repeat for more)")
    explain_parser = commands.add_parser("explain", help="why a document charges what it does, down to the raw events")
    explain_parser.add_argument("document", metavar="DOCUMENT_NUMBER", help="INV-YYYYMM-<customer>, CN-…-<n> or ADJ-…-<n>")
    explain_parser.add_argument("--meter", help="only this meter's lines")
    explain_parser.add_argument("--json", action="store_true", help="one JSON object instead of text")
    explain_parser.add_argument("--events", type=int, default=20, metavar="N", help="events and locations shown per list")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            if args.engine:  # what the engine resource reads, in this run's process
                os.environ["BILLING_ENGINE"] = args.engine
            return run(parse_day(args.start, "--from"), parse_day(args.end, "--to")).status
        if args.command == "demo":
            return demo()
        if args.command == "ui":
            return ui(args.port)
        if args.command == "statements":
            return statements(sorted(set(parse_month(month) for month in args.month)))
        if args.command == "explain":
            return explain_command(args.document, args.meter, args.json, args.events)
        if args.command == "env":
            return env_command()
        from billing_assets.demo.embedded_s3 import stop_server

        print("stopped" if stop_server(Path(".demo")) else "no embedded S3 server was running")
        return 0
    except CliError as error:
        print(f"billing: error: {error}", file=sys.stderr)
        return error.status
    except KeyboardInterrupt:
        print("billing: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # one line for the operator; BILLING_DEBUG=1 shows the traceback
        if os.environ.get("BILLING_DEBUG"):
            raise
        print(f"billing: error: {_disk_full(error) or f'{type(error).__name__}: {error}'}".splitlines()[0],
              file=sys.stderr)
        return 1


def entry() -> None:
    """Console entry point. Everything is on disk or in S3 when main() returns; leaving with
    os._exit skips native teardown, where Arrow's worker threads can race interpreter exit
    ("terminate called without an active exception") and turn a good run into exit 134."""
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    entry()
