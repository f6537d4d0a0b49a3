"""A seeded sample of crash points (crash_points.py; `make crash-sweep` runs every one of them):
the first write, the last, and one between, drawn by a fixed seed. A run killed right after
any of them and run again leaves the lake as a run never killed does."""

import random

from billing_assets_tests.crash_points import clean_run, crash_at


def test_a_run_killed_after_a_sample_of_its_writes_converges(bucket, tmp_path):
    writes, reference = clean_run(tmp_path)
    middle = random.Random(17).sample(range(2, writes), 1)
    for k in sorted({1, writes, *middle}):
        assert crash_at(k, reference, tmp_path) == [], f"killed after write {k} of {writes}"
