"""When a stage re-materialises by itself: whenever what it was computed from changed."""

import dagster as dg


def follows_upstream() -> dg.AutomationCondition:
    """True for every partition, old ones included, whose upstream partitions were updated since
    it was last requested or materialised. ``eager()`` looks only at the latest time window, so a
    late file for last month would never reach last month's invoices with it.

    Not on missing partitions (history is not backfilled by itself), not while upstream is in
    progress, not over a failed blocking check upstream. Reference-file updates are ignored:
    the reference sensor knows which partitions a change touches and requests exactly those."""
    has_failed_blocking_check = dg.AutomationCondition.any_checks_match(
        dg.AutomationCondition.check_failed(), blocking_only=True)
    return (
        dg.AutomationCondition.any_deps_updated().ignore(dg.AssetSelection.groups("reference")).since_last_handled()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
        & ~dg.AutomationCondition.any_deps_match(has_failed_blocking_check)
    ).with_label("upstream updated, any partition")
