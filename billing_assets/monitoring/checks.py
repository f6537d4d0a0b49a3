"""Freshness of the promises the platform makes, judged every hour, and the SLA report's contract."""

from datetime import timedelta

import dagster as dg

from billing_assets.invoicing.policy import BillingPolicy
from billing_assets.lib.checks import pandera_asset_check
from billing_assets.lib.lake import BillingLake
from billing_assets.monitoring.schemas import ReconciliationRow, SlaReportRow
from billing_assets.monitoring.sla import SlaPolicy, judge_day, materialised_at
from billing_assets.partitions import daily_usage_partitions, monthly_billing_partitions
from billing_assets.usage.assets import raw_prefix

# judged at five past every hour, whatever else runs: a stalled pipeline must still turn red
HOURLY = dg.AutomationCondition.cron_tick_passed("5 * * * *", "UTC").since_last_handled()

sla_report_matches_contract = pandera_asset_check(
    asset="sla_report", table="sla_report", model=SlaReportRow, partitions_def=daily_usage_partitions)
reconciliation_matches_contract = pandera_asset_check(
    asset="reconciliation", table="reconciliation", model=ReconciliationRow, partitions_def=monthly_billing_partitions)


def recent_days(sla: SlaPolicy) -> list[str]:
    """Days whose metering deadline has passed, newest first, within the lookback."""
    now = sla.now()
    days = [(now.date() - timedelta(days=offset)).isoformat() for offset in range(1, sla.lookback_days + 2)]
    return [day for day in days if sla.metered_deadline(day) <= now][:sla.lookback_days]


@dg.asset_check(
    asset="metered_usage",
    name="metered_by_deadline",
    description="Each recent day's files were metered by 06:00 UTC the next day (SLA hour configurable). "
                "Fails when files that landed on time were not metered by the deadline; warns when a day "
                "had no usage at all or its files all landed late.",
    automation_condition=HOURLY,
)
def metered_by_deadline(context: dg.AssetCheckExecutionContext, lake: BillingLake, sla: SlaPolicy) -> dg.AssetCheckResult:
    verdicts = []
    for day in recent_days(sla):
        metered = [at for at, _ in materialised_at(context.instance, "metered_usage", day)]
        verdicts.append(judge_day(day, list(lake.list_objects(raw_prefix(day))), metered, sla.metered_deadline(day)))
    missed = [v.detail for v in verdicts if v.severity == "missed"]
    warnings = [v.detail for v in verdicts if v.severity in ("no_files", "producer_late")]
    return dg.AssetCheckResult(
        passed=not missed and not warnings,
        severity=dg.AssetCheckSeverity.ERROR if missed else dg.AssetCheckSeverity.WARN,
        description="; ".join(missed or warnings) or f"{len(verdicts)} day(s) metered on time",
        metadata={"days_judged": len(verdicts), "missed": dg.MetadataValue.json(missed),
                  "warnings": dg.MetadataValue.json(warnings), "as_of": sla.now().isoformat()},
    )


def recent_months(sla: SlaPolicy, billing_policy: BillingPolicy) -> list[str]:
    """Months whose issuing deadline passed within the lookback."""
    now = sla.now()
    return [month for month in monthly_billing_partitions.get_partition_keys(current_time=now)[-3:]
            if sla.issued_deadline(month, billing_policy) <= now < sla.issued_deadline(month, billing_policy)
            + timedelta(days=sla.lookback_days)]


@dg.asset_check(
    asset="invoices",
    name="invoices_issued_on_time",
    description="Each month the platform metered usage for has every invoice issued within 6 hours (configurable) "
                "of the end of its grace period.",
    automation_condition=HOURLY,
)
def invoices_issued_on_time(context: dg.AssetCheckExecutionContext, sla: SlaPolicy,
                            billing_policy: BillingPolicy) -> dg.AssetCheckResult:
    metered_months = {day[:7] for day in context.instance.get_materialized_partitions(dg.AssetKey("metered_usage"))}
    late = []
    months = [month for month in recent_months(sla, billing_policy) if month in metered_months]
    for month in months:
        deadline = sla.issued_deadline(month, billing_policy)
        issued_in_time = [at for at, metadata in materialised_at(context.instance, "invoices", month)
                          if at <= deadline and metadata.get("invoices_draft") == 0]
        if not issued_in_time:
            late.append(f"{month}: invoices not all issued by {deadline:%Y-%m-%d %H:%M} UTC")
    return dg.AssetCheckResult(
        passed=not late,
        description="; ".join(late) or (f"{', '.join(months)} issued on time" if months else "no month due"),
        metadata={"months_judged": dg.MetadataValue.json(months), "late": dg.MetadataValue.json(late),
                  "as_of": sla.now().isoformat()},
    )
