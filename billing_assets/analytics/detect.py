"""The anomaly detector of daily metered usage (CONTRACT.md §9), over plain numpy arrays so any
engine, the asset and the benchmark alike, calls the same rules.

A series is one contract × priced meter's daily quantity. Its baseline for a day is the median
of the same weekday over the four weeks before (usage is weekly: Mondays are not Sundays); its
scale is the MAD of the four weeks' values about their own weekday's median, counts first
variance-stabilised (Anscombe, 2√(x + 3/8), which makes a Poisson count's spread about 1 at any
volume). A day is flagged only when the robust score, the relative change and the absolute change
all pass their thresholds (the ThirdEye guard against noise); a meter whose events stop is judged
by the Poisson zero test instead, P(no event on k days | λ) = e^(−kλ), λ the lower of the
weekday's and the four weeks' median event count. A drop or spike that has held, in the same
direction, on each of the days before it is a level shift.

These are statistics on usage, so floats are fine here; nothing computed here bills."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields

import numpy as np

WINDOW = 28  # four weeks of history
WEEK = 7
KINDS = ("normal", "stopped_reporting", "drop", "spike", "level_shift", "insufficient_history")
FINDINGS = ("stopped_reporting", "drop", "spike", "level_shift")
MAD_TO_SIGMA = 1.4826  # a normal's σ is 1.4826 MADs: the score reads as Iglewicz–Hoaglin's modified z
# the least spread of log(quantity per event): an event's mean size can be nearly constant, and a
# unit error is a factor of 1000 (log 6.9), so a 10 % floor keeps small drifts in size from scoring
SIZE_FLOOR = 0.1


@dataclass(frozen=True)
class Thresholds:
    """What a day must pass to be flagged. Tuned on the benchmark's seeds 0–9 (bench_anomalies)."""

    score: float = 5.0  # |robust z|
    relative: float = 0.3  # |observed − baseline| / baseline
    # a count's |observed − baseline|; a quantity meter has no unit-free size of change, so there
    # the events behind the day or its baseline, without which a sum's swing is noise
    absolute: float = 10.0
    zero_p: float = 1e-3  # the zero test's P(0 events over the run | λ)
    min_history: int = 14  # known days of the four weeks
    shift_days: int = 7  # a drop or spike held this many days in a row is a level shift

    def rule(self) -> str:
        return (f"flag when |robust z| ≥ {self.score:g} and the change is ≥ {self.relative:.0%} and ≥ "
                f"{self.absolute:g} events against the median of the same weekday over 4 weeks (scale: MAD, "
                f"counts Anscombe-transformed); stopped when no event arrives and P(0 | λ) = e^(−kλ) < "
                f"{self.zero_p:g}; a level shift when the change held {self.shift_days} days; "
                f"at least {self.min_history} days of history")


@dataclass(frozen=True)
class DayScores:
    """One day's statistics for every series (arrays of length S)."""

    observed: np.ndarray
    baseline: np.ndarray  # median of the same weekday's known days
    scale: np.ndarray  # robust σ, in the transformed space
    score: np.ndarray  # robust z of the day, in the transformed space
    relative: np.ndarray  # (observed − baseline) / baseline; inf when the baseline is 0
    zero_p: np.ndarray  # P(this run of event-less days | λ); 1 when the day had events
    zero_run: np.ndarray  # event-less known days ending at the day
    event_baseline: np.ndarray  # λ
    history: np.ndarray  # known days in the window
    weekdays: np.ndarray  # known same-weekday days in the window
    events: np.ndarray  # the day's event count
    is_count: np.ndarray
    by_size: np.ndarray  # the score is of the quantity per event (else of the count)
    evidence: np.ndarray  # what the absolute threshold is compared with (see Thresholds.absolute)

    def take(self, rows) -> DayScores:
        """The scores of some series only."""
        return DayScores(*(getattr(self, item.name)[rows] for item in fields(self)))


def _nanmedian(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """The median over ``axis`` ignoring NaN (NaN where nothing is left): numpy's nanmedian
    goes through masked arrays, fifty times slower on the few values a weekday has."""
    ordered = np.sort(np.moveaxis(values, axis, -1), axis=-1)  # NaN sorts last
    count = (~np.isnan(ordered)).sum(axis=-1, keepdims=True)
    low = np.take_along_axis(ordered, np.maximum((count - 1) // 2, 0), axis=-1)
    high = np.take_along_axis(ordered, np.maximum(count // 2, 0) - (count == 0), axis=-1)
    return np.where(count > 0, (low + high) / 2, np.nan)[..., 0]


def _anscombe(values: np.ndarray) -> np.ndarray:
    return 2.0 * np.sqrt(np.maximum(values, 0.0) + 0.375)


def _robust_z(window: np.ndarray, today: np.ndarray, same: np.ndarray, phases: np.ndarray,
              floor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(scale, score) of ``today`` against ``window`` ([S, W], NaN where unknown): the baseline
    is the median of the ``same``-weekday columns, the scale the MAD of each window day from the
    median of the other days of its weekday (about a median it is part of, a day's deviation
    would be a third too small, and the day scored is not part of its baseline)."""
    deviations = np.full_like(window, np.nan)
    for phase in range(WEEK):
        columns = np.flatnonzero(phases == phase)
        if columns.size > 1:
            others = np.array([[other for other in columns if other != column] for column in columns])
            deviations[:, columns] = window[:, columns] - _nanmedian(window[:, others], axis=2)
    scale = np.maximum(MAD_TO_SIGMA * np.nan_to_num(_nanmedian(np.abs(deviations), axis=1)), floor)
    return scale, np.nan_to_num((today - _nanmedian(window[:, same], axis=1)) / scale)


def score_day(quantity: np.ndarray, events: np.ndarray, known: np.ndarray, is_count: np.ndarray,
              day: int) -> DayScores:
    """Scores of column ``day`` of ``quantity`` and ``events`` ([S, T] floats; a known day
    without usage is 0), from the ``WINDOW`` days before it where ``known`` ([S, T] bool: the
    day's usage was ingested and the customer had a contract). ``is_count``: per series, whether
    its quantity is a count (count and unique_count meters): scored Anscombe-transformed. Any
    other quantity (a sum, a max) is scored twice, and the larger |z| stands: its events,
    Anscombe-transformed (a lost or doubled feed), and the log of its quantity per event (a unit
    error: as many events, each a thousand times the size)."""
    start = max(day - WINDOW, 0)
    seen = known[:, start:day]
    offsets = np.arange(start, day)
    phases = (day - offsets) % WEEK
    same = phases == 0
    window, counts = quantity[:, start:day], events[:, start:day]
    observed, observed_events = quantity[:, day], events[:, day]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        # nanmedian warns on an all-NaN row (a series without history): that row is NaN, as meant
        warnings.simplefilter("ignore", RuntimeWarning)
        baseline = _nanmedian(np.where(seen[:, same], window[:, same], np.nan), axis=1)
        ones = np.ones(len(observed))
        counted = np.where(is_count[:, None], window, counts)
        scale, score = _robust_z(np.where(seen, _anscombe(counted), np.nan),
                                 _anscombe(np.where(is_count, observed, observed_events)), same, phases, ones)
        size = np.where(seen & (counts > 0), np.log(window / counts), np.nan)
        size_today = np.where(observed_events > 0, np.log(observed / observed_events), np.nan)
        size_scale, size_score = _robust_z(size, size_today, same, phases, SIZE_FLOOR * ones)
        by_size = ~is_count & (np.abs(size_score) > np.abs(score))
        scale, score = np.where(by_size, size_scale, scale), np.where(by_size, size_score, score)
        relative = np.where(baseline > 0, (observed - baseline) / baseline, np.where(observed > 0, np.inf, 0.0))
        seen_counts = np.where(seen, counts, np.nan)
        event_baseline = np.fmin(_nanmedian(seen_counts[:, same], axis=1), _nanmedian(seen_counts, axis=1))
    zero_run = _zero_run(events, known, day)
    zero_p = np.where(zero_run > 0, np.exp(-zero_run * np.nan_to_num(event_baseline)), 1.0)
    return DayScores(observed, baseline, scale, score, relative, zero_p, zero_run, event_baseline,
                     seen.sum(axis=1), seen[:, same].sum(axis=1), observed_events, is_count, by_size,
                     np.where(is_count, np.abs(observed - np.nan_to_num(baseline)),
                              np.fmax(observed_events, np.nan_to_num(event_baseline))))


def _zero_run(events: np.ndarray, known: np.ndarray, day: int) -> np.ndarray:
    """Known event-less days in a row ending at ``day`` (0 when the day had events), up to a window."""
    run = np.zeros(events.shape[0], dtype=np.int64)
    going = np.ones(events.shape[0], dtype=bool)
    for back in range(min(WINDOW, day + 1)):
        column = day - back
        empty = known[:, column] & (events[:, column] == 0)
        going &= empty
        run += going
    return run


def direction(scores: DayScores, thresholds: Thresholds) -> np.ndarray:
    """−1 / +1 where the day is a drop / spike by every threshold, else 0."""
    big = scores.evidence >= thresholds.absolute
    down = big & (scores.score <= -thresholds.score) & (scores.relative <= -thresholds.relative)
    up = big & (scores.score >= thresholds.score) & (scores.relative >= thresholds.relative)
    return np.where(down, -1, np.where(up, 1, 0))


def classify(days: list[DayScores], thresholds: Thresholds = Thresholds()) -> np.ndarray:
    """Each series' kind on the last of ``days`` (consecutive days' scores, oldest first; the
    days before the last only decide whether a drop or spike has held long enough to be a level
    shift)."""
    today = days[-1]
    moved = direction(today, thresholds)
    held = np.ones_like(moved, dtype=bool)
    before = days[-thresholds.shift_days:-1]
    for scores in before:
        held &= direction(scores, thresholds) == moved
    held &= len(before) == thresholds.shift_days - 1
    stopped = (today.zero_run > 0) & (today.zero_p < thresholds.zero_p) & (np.nan_to_num(today.baseline) > 0)
    short = (today.history < thresholds.min_history) | (today.weekdays < 2)
    kinds = np.select(
        [short, stopped, (moved != 0) & held, moved < 0, moved > 0],
        ["insufficient_history", "stopped_reporting", "level_shift", "drop", "spike"], default="normal")
    return kinds
