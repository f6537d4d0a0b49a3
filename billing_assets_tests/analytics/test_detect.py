"""The detector's rules on hand-built series; expected scores worked out by hand from the
formulas (Anscombe 2√(x + 3/8), MAD × 1.4826, same-weekday median)."""

import math

import numpy as np
import pytest

from billing_assets.analytics.detect import Thresholds, classify, score_day

WEEKS = 4


def _judge(values, today, events=None, is_count=True, known_days=None, days_before=(), thresholds=Thresholds()):
    """One series: ``values`` the 28 days before, then ``days_before`` (scored too, for a level
    shift), then ``today``. Returns (kind, scores of today)."""
    series = np.array([*values, *days_before, today], dtype=float)[None, :]
    counts = series if events is None else np.array(events, dtype=float)[None, :]
    known = np.ones_like(series, dtype=bool)
    if known_days is not None:
        known[:, :len(values) - known_days] = False
    last = series.shape[1] - 1
    scores = [score_day(series, counts, known, np.array([is_count]), day)
              for day in range(last - thresholds.shift_days + 1, last + 1)]
    return classify(scores, thresholds)[0], scores[-1]


def y(x):
    return 2 * math.sqrt(x + 0.375)


ALTERNATING = [100.0] * 7 + [120.0] * 7 + [100.0] * 7 + [120.0] * 7  # weeks of 100 and 120


def test_a_spike_scored_against_the_weekday_median_and_its_mad():
    # every day's deviation from the other weeks' median of its weekday is y(120) − y(100),
    # so MAD = 1.90564…, σ = 1.4826 MAD; the baseline is the median of 100,120,100,120
    kind, scores = _judge(ALTERNATING, 400)
    sigma = 1.4826 * (y(120) - y(100))
    assert scores.baseline[0] == 110
    assert scores.scale[0] == pytest.approx(sigma, rel=1e-9)
    assert scores.score[0] == pytest.approx((y(400) - (y(100) + y(120)) / 2) / sigma, rel=1e-9)  # 6.73
    assert kind == "spike"
    assert _judge(ALTERNATING, 160)[0] == "normal"  # z 1.5


def test_a_meter_that_stops_is_judged_by_the_poisson_zero_test():
    kind, scores = _judge([100.0] * 28, 0)
    assert kind == "stopped_reporting"
    assert scores.zero_run[0] == 1 and scores.zero_p[0] == pytest.approx(math.exp(-100))
    # a feed of one event a day sends none on a day often (e^-1 = 0.37): not flagged
    assert _judge([1.0] * 28, 0)[0] == "normal"
    # three silent days of a 3-a-day feed: e^-9 = 0.00012 < 0.001
    kind, scores = _judge([3.0] * 28, 0, days_before=[3, 3, 3, 3, 0, 0])
    assert kind == "stopped_reporting" and scores.zero_run[0] == 3


def test_every_threshold_must_pass():
    # 10,000 → 9,500: z = y(9500) − y(10000) = −5.06 (σ floored at 1) but only −5 %
    kind, scores = _judge([10_000.0] * 28, 9_500)
    assert scores.score[0] == pytest.approx(y(9500) - y(10000)) and scores.score[0] < -5
    assert kind == "normal"
    assert _judge([10_000.0] * 28, 6_000)[0] == "drop"  # −40 %, z −43


def test_a_short_history_is_not_judged():
    assert _judge([100.0] * 28, 0, known_days=13)[0] == "insufficient_history"
    assert _judge([100.0] * 28, 0, known_days=14)[0] == "stopped_reporting"


def test_a_drop_that_holds_a_week_is_a_level_shift():
    assert _judge([1000.0] * 28, 400)[0] == "drop"
    assert _judge([1000.0] * 28, 400, days_before=[400] * 6)[0] == "level_shift"
    assert _judge([1000.0] * 28, 400, days_before=[400] * 5 + [1000])[0] == "drop"


def test_a_unit_error_shows_in_the_quantity_per_event():
    # 50 events of 0.1 GB a day, then 50 events of 100 GB: ln(1000) over the 0.1 floor of σ
    events = [50.0] * 29
    kind, scores = _judge([5.0] * 28, 5000, events=events, is_count=False)
    assert scores.by_size[0] and scores.score[0] == pytest.approx(math.log(1000) / 0.1)
    assert kind == "spike"
    kind, scores = _judge([5.0] * 28, 0.005, events=events, is_count=False)
    assert kind == "drop" and scores.score[0] == pytest.approx(-math.log(1000) / 0.1)
