"""Seeded daily metered usage with labelled faults, for evaluating the anomaly detector honestly
(INSIGHTS_NOTES.md §4): negative-binomial counts with weekly seasonality and a slow trend, high-
and low-volume series, and faults injected into some series — with negative controls (late
files, organic dips) that a good detector leaves alone."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

METERS = ("api_requests", "active_users", "build_runs", "sessions", "egress_gb")  # the last is a sum
UNIT_PRICES = (0.0004, 0.5, 0.05, 0.01, 0.08)
FAULT_TYPES = ("outage", "loss_10", "loss_25", "loss_50", "loss_90", "resend", "unit_x1000", "unit_div1000",
               "clock_skew", "price_x10", "not_wired")
CONTROL_TYPES = ("late_file", "organic_dip")
FIRST_FAULT_DAY = 42  # four weeks of history and a week of evaluation before any fault


@dataclass
class Fault:
    series: int
    kind: str
    start: int
    end: int  # inclusive
    weight: float = 0.0  # revenue the fault moves, for dollar-weighted recall


@dataclass
class UsageSeries:
    quantity: np.ndarray  # [S, T] as finally ingested
    events: np.ndarray
    known: np.ndarray
    is_count: np.ndarray  # [S]
    mean: np.ndarray  # [S] events a day before any fault
    faults: list[Fault] = field(default_factory=list)
    controls: list[Fault] = field(default_factory=list)
    first_seen: np.ndarray | None = None  # quantity as first ingested (a late file's day partial)
    first_seen_events: np.ndarray | None = None


def generate(seed: int, customers: int = 200, days: int = 120, fault_share: float = 0.4,
             control_share: float = 0.1) -> UsageSeries:
    rng = np.random.default_rng(seed)
    series = customers * len(METERS)
    meter = np.tile(np.arange(len(METERS)), customers)
    high = rng.random(series) < 0.7
    mean = np.where(high, np.exp(rng.uniform(np.log(20), np.log(5000), series)),
                    np.exp(rng.uniform(np.log(0.5), np.log(20), series)))
    weekend = rng.uniform(0.4, 1.0, series)
    phase = rng.integers(0, 7, series)
    trend = rng.uniform(-0.3, 0.3, series)
    dispersion = rng.uniform(5, 50, series)
    t = np.arange(days)
    is_weekend = ((t[None, :] + phase[:, None]) % 7) >= 5
    mu = mean[:, None] * np.where(is_weekend, weekend[:, None], 1.0) * np.exp(trend[:, None] * t[None, :] / days)
    control_dip = np.ones_like(mu)
    controls, faults = [], []
    order = rng.permutation(series)
    n_faults, n_controls = int(series * fault_share), int(series * control_share)
    for index in order[n_faults:n_faults + n_controls]:
        kind = CONTROL_TYPES[rng.integers(len(CONTROL_TYPES))]
        start = int(rng.integers(FIRST_FAULT_DAY, days - 8))
        length = 1 if kind == "late_file" else int(rng.integers(3, 8))
        controls.append(Fault(int(index), kind, start, start + length - 1))
        if kind == "organic_dip":
            control_dip[index, start:start + length] = 1 - rng.uniform(0.1, 0.25)
    mu = mu * control_dip
    events = rng.negative_binomial(dispersion[:, None], dispersion[:, None] / (dispersion[:, None] + mu)).astype(float)
    is_count = meter != len(METERS) - 1
    # the sum meter: each event carries Gamma(2, 0.05) GB, so a day's sum is Gamma(2 × events, 0.05)
    gigabytes = np.round(rng.gamma(np.maximum(2.0 * events, 1e-9), 0.05), 3) * (events > 0)
    quantity = np.where(is_count[:, None], events, gigabytes)
    clean = quantity.copy()
    known = np.ones((series, days), dtype=bool)
    price = np.array(UNIT_PRICES)[meter]
    for index in order[:n_faults]:
        kind = FAULT_TYPES[rng.integers(len(FAULT_TYPES))]
        if kind.startswith("unit_") and is_count[index]:
            kind = "outage"  # a count meter has no unit to get wrong; keep the draw's place
        start = int(rng.integers(FIRST_FAULT_DAY, days - 8))
        length = 1 if kind == "clock_skew" else int(rng.integers(1, 6))
        span = slice(start, start + length)
        if kind == "outage":
            events[index, span] = 0
            quantity[index, span] = 0
        elif kind.startswith("loss_"):
            keep = 1 - int(kind.split("_")[1]) / 100
            kept = rng.binomial(events[index, span].astype(np.int64), keep).astype(float)
            quantity[index, span] *= np.divide(kept, events[index, span], out=np.zeros_like(kept),
                                               where=events[index, span] > 0)
            events[index, span] = kept
            if is_count[index]:
                quantity[index, span] = kept
        elif kind == "resend":
            again = rng.binomial(events[index, span].astype(np.int64), rng.uniform(0.5, 1.0)).astype(float)
            ratio = np.divide(again, events[index, span], out=np.zeros_like(again), where=events[index, span] > 0)
            quantity[index, span] *= 1 + ratio
            events[index, span] += again
        elif kind == "unit_x1000":
            quantity[index, span] *= 1000
        elif kind == "unit_div1000":
            quantity[index, span] = np.round(quantity[index, span] / 1000, 3)
        elif kind == "clock_skew":  # a day's events stamped the next day
            events[index, start + 1] += events[index, start]
            quantity[index, start + 1] += quantity[index, start]
            events[index, start] = quantity[index, start] = 0
            length = 2
        elif kind == "not_wired":  # a contract whose usage never reaches it: nothing from its start
            start = int(rng.integers(FIRST_FAULT_DAY, days - 30))
            length = days - start
            known[index, :start] = False
            events[index, start:] = quantity[index, start:] = 0
        fault = Fault(int(index), kind, start, start + length - 1)
        window = slice(fault.start, fault.end + 1)
        moved = np.abs(quantity[index, window] - clean[index, window]).sum()
        fault.weight = float(9 * clean[index, window].sum() * price[index] if kind == "price_x10" else moved * price[index])
        faults.append(fault)
    first_seen, first_events = quantity.copy(), events.copy()
    for control in controls:
        if control.kind == "late_file":  # 40–70 % arrived on time, the rest a day later
            share = rng.uniform(0.4, 0.7)
            first_events[control.series, control.start] = np.floor(events[control.series, control.start] * share)
            first_seen[control.series, control.start] = np.round(quantity[control.series, control.start] * share, 3)
    # faults and controls all start on FIRST_FAULT_DAY or later: the days before are clean
    return UsageSeries(quantity, events, known, is_count, events[:, :FIRST_FAULT_DAY].mean(axis=1),
                       faults, controls, first_seen, first_events)
