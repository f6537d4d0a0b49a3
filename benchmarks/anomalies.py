"""``make bench-anomalies``: the anomaly detector judged on seeded usage with labelled faults.

Thresholds are chosen on seeds 0–9 (the grid below; the pick must keep false alerts under the
target there) and reported on seeds 100–109, which tuning never saw. Per fault type: recall
(a fault is caught when any of its days is flagged; a clock skew's next day counts) and days
to detect; per finding kind: precision (flagged runs of days that overlap a fault); false
alerts per 1,000 clean series-days (flagged days outside every fault, the negative controls
included); dollar-weighted recall (each fault weighted by the revenue it moves). The last
line is ``anomaly_outage_recall=R false_alerts_per_1000=F drop50_recall=… spike_recall=…``,
R over full outages on series averaging ≥ 20 events a day."""

from __future__ import annotations

import argparse
import itertools
import time
from collections import defaultdict
from dataclasses import replace

import numpy as np

from billing_assets.analytics.detect import FINDINGS, WINDOW, WEEK, Thresholds, classify, score_day
from billing_assets.demo.usage_series import FAULT_TYPES, UsageSeries, generate

TUNING_SEEDS = range(0, 10)
REPORT_SEEDS = range(100, 110)
FIRST_EVALUATED = WINDOW + WEEK  # every evaluated day has four weeks of history and a week of scores before
HIGH_VOLUME = 20.0
GRID = {"score": (3.5, 4.0, 4.5, 5.0, 5.5), "relative": (0.2, 0.3, 0.5), "zero_p": (1e-3, 1e-4, 1e-5)}
TUNING_FALSE_ALERTS = 0.8  # a margin under the target of 1 per 1,000, for seeds tuning never saw


def _scores(data: UsageSeries, quantity: np.ndarray, events: np.ndarray) -> list:
    return [score_day(quantity, events, data.known, data.is_count, day) if day >= FIRST_EVALUATED - WEEK else None
            for day in range(quantity.shape[1])]


def _kinds(scores: list, thresholds: Thresholds) -> np.ndarray:
    """[S, T] kinds, '' before the first evaluated day."""
    days = len(scores)
    kinds = np.full((scores[-1].observed.shape[0], days), "", dtype="<U20")
    for day in range(FIRST_EVALUATED, days):
        kinds[:, day] = classify(scores[day - thresholds.shift_days + 1:day + 1], thresholds)
    return kinds


def evaluate(data: UsageSeries, scores: list, first_scores: list, thresholds: Thresholds) -> dict:
    kinds = _kinds(scores, thresholds)
    flagged = np.isin(kinds, FINDINGS)
    in_fault = np.zeros_like(flagged)
    caught = []
    for fault in data.faults:
        end = fault.end + (1 if fault.kind == "clock_skew" else 0)
        hits = np.flatnonzero(flagged[fault.series, fault.start:end + 1])
        in_fault[fault.series, fault.start:end + 1] = True
        caught.append((fault, int(hits[0]) if hits.size else None))
    evaluated = np.zeros_like(flagged)
    evaluated[:, FIRST_EVALUATED:] = True
    evaluated &= data.known
    clean = evaluated & ~in_fault
    late = [control for control in data.controls if control.kind == "late_file"]
    first_kinds = {}  # a late file's day as first ingested, the rest of it not yet landed
    for start in sorted({control.start for control in late}):
        rows = [control.series for control in late if control.start == start]
        kinds_then = classify([day.take(rows) for day in first_scores[start - thresholds.shift_days + 1:start + 1]],
                              thresholds)
        first_kinds.update(zip(rows, kinds_then))
    episodes = defaultdict(lambda: [0, 0])  # kind → [runs overlapping a fault, runs]
    for series, day in zip(*np.nonzero(flagged & (np.roll(~flagged, 1, axis=1) | (np.arange(flagged.shape[1]) == 0)))):
        stop = day
        while stop + 1 < flagged.shape[1] and flagged[series, stop + 1]:
            stop += 1
        episodes[kinds[series, day]][1] += 1
        episodes[kinds[series, day]][0] += bool(in_fault[series, day:stop + 1].any())
    return {"caught": caught, "false": int((flagged & clean).sum()), "clean": int(clean.sum()),
            "episodes": dict(episodes), "mean": data.mean,
            "late_first_flagged": sum(kind in FINDINGS for kind in first_kinds.values()), "late_files": len(late),
            "late_still_flagged": sum(bool(flagged[c.series, c.start]) for c in late),
            "dips": [c for c in data.controls if c.kind == "organic_dip"], "flagged": flagged}


def summarise(results: list[dict]) -> dict:
    by_type = defaultdict(lambda: [0, 0, []])  # type → [caught, faults, days to detect]
    weight_caught = weight_all = 0.0
    false = clean = dip_days = dip_flags = 0
    episodes = defaultdict(lambda: [0, 0])
    late = [0, 0, 0]
    for result in results:
        for fault, first in result["caught"]:
            names = [fault.kind]
            if fault.kind == "outage":
                names.append(f"outage_{fault.end - fault.start + 1}d")
                names.append("outage_high" if result["mean"][fault.series] >= HIGH_VOLUME else "outage_low")
            for name in names:
                entry = by_type[name]
                entry[1] += 1
                if first is not None:
                    entry[0] += 1
                    entry[2].append(first)
            weight_all += fault.weight
            weight_caught += fault.weight if first is not None else 0.0
        false, clean = false + result["false"], clean + result["clean"]
        for kind, (hit, total) in result["episodes"].items():
            episodes[kind][0] += hit
            episodes[kind][1] += total
        late = [late[0] + result["late_files"], late[1] + result["late_first_flagged"],
                late[2] + result["late_still_flagged"]]
        for dip in result["dips"]:
            dip_days += dip.end - dip.start + 1
            dip_flags += int(result["flagged"][dip.series, dip.start:dip.end + 1].sum())
    recall = {name: caught / total for name, (caught, total, _) in by_type.items()}
    return {"by_type": dict(by_type), "recall": recall, "false_per_1000": 1000 * false / max(clean, 1),
            "dollar_recall": weight_caught / weight_all if weight_all else 0.0, "episodes": dict(episodes),
            "late": late, "dips": (dip_flags, dip_days)}


def _objective(summary: dict) -> float:
    """Mean recall over the detectable fault types (a price-book error and an unwired contract
    leave usage as it is, so no usage detector can see them)."""
    kinds = [kind for kind in FAULT_TYPES if kind not in ("price_x10", "not_wired") and kind in summary["recall"]]
    return float(np.mean([summary["recall"][kind] for kind in kinds]))


def run(seeds, thresholds_list, customers: int, days: int) -> list[dict]:
    """Per thresholds, the summary over ``seeds`` (scores computed once per seed)."""
    per = [[] for _ in thresholds_list]
    for seed in seeds:
        data = generate(seed, customers=customers, days=days)
        scores = _scores(data, data.quantity, data.events)
        first = _scores(data, data.first_seen, data.first_seen_events)
        for index, thresholds in enumerate(thresholds_list):
            per[index].append(evaluate(data, scores, first, thresholds))
    return [summarise(results) for results in per]


def _report(summary: dict, thresholds: Thresholds) -> None:
    print(f"thresholds: score {thresholds.score}, relative {thresholds.relative}, absolute {thresholds.absolute}, "
          f"zero_p {thresholds.zero_p:g}, level shift after {thresholds.shift_days} days")
    print(f"{'fault':<16}{'faults':>7}{'recall':>8}{'median days to detect':>24}")
    for name in sorted(summary["by_type"]):
        caught, total, delays = summary["by_type"][name]
        median = f"{np.median(delays):.0f}" if delays else "-"
        print(f"{name:<16}{total:>7}{caught / total:>8.2f}{median:>24}")
    print(f"{'finding kind':<20}{'runs':>6}{'precision':>11}")
    for kind, (hit, total) in sorted(summary["episodes"].items()):
        print(f"{kind:<20}{total:>6}{hit / total:>11.2f}")
    late, (dip_flags, dip_days) = summary["late"], summary["dips"]
    print(f"false alerts per 1,000 clean series-days: {summary['false_per_1000']:.2f}")
    print(f"dollar-weighted recall (all faults): {summary['dollar_recall']:.3f}")
    print(f"late files (negative control): {late[0]}; flagged when first ingested {late[1]}, "
          f"still flagged after the late data {late[2]}")
    print(f"organic dips (negative control): {dip_flags} flagged of {dip_days} dip days")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--no-tune", action="store_true", help="report the shipped thresholds without the grid")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    shipped = Thresholds()
    chosen = shipped
    if not args.no_tune:
        grid = [replace(shipped, score=s, relative=r, zero_p=z) for s, r, z in itertools.product(*GRID.values())]
        tuned = run(TUNING_SEEDS, grid, args.customers, args.days)
        admissible = [(_objective(summary), -summary["false_per_1000"], index)
                      for index, summary in enumerate(tuned) if summary["false_per_1000"] <= TUNING_FALSE_ALERTS]
        if admissible:
            chosen = grid[max(admissible)[2]]
        print(f"tuned on seeds {TUNING_SEEDS.start}–{TUNING_SEEDS.stop - 1}: {len(grid)} threshold sets, "
              f"{len(admissible)} with ≤ {TUNING_FALSE_ALERTS} false alerts per 1,000; "
              f"picked score {chosen.score}, relative {chosen.relative}, zero_p {chosen.zero_p:g} "
              f"({'the shipped defaults' if chosen == shipped else 'NOT the shipped defaults: update Thresholds'})")
    summary = run(REPORT_SEEDS, [chosen], args.customers, args.days)[0]
    print(f"reported on seeds {REPORT_SEEDS.start}–{REPORT_SEEDS.stop - 1} ({args.customers} customers × 5 meters "
          f"× {args.days} days each), {time.perf_counter() - started:.0f} s in all")
    _report(summary, chosen)
    recall = summary["recall"]
    print(f"anomaly_outage_recall={recall.get('outage_high', 0):.3f} "
          f"false_alerts_per_1000={summary['false_per_1000']:.2f} drop50_recall={recall.get('loss_50', 0):.3f} "
          f"spike_recall={recall.get('resend', 0):.3f}")


if __name__ == "__main__":
    main()
