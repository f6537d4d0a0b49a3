"""The benchmarks behind ``make bench``, ``make bench-spark``, ``make bench-anomalies`` and
``make bench-backfill``: run from the repository root, never part of the installed platform."""
