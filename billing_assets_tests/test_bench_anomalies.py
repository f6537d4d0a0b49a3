"""`make bench-anomalies` at a small size: the generator's labels are what it injected, and the
report ends with the line the issue names."""

import re

import numpy as np

from benchmarks import anomalies as bench_anomalies
from billing_assets.demo.usage_series import generate


def test_injected_faults_are_in_the_data_they_label():
    data = generate(3, customers=40, days=90)
    kinds = {fault.kind for fault in data.faults}
    assert {"outage", "loss_50", "resend", "clock_skew", "not_wired"} <= kinds
    for fault in data.faults:
        days = slice(fault.start, fault.end + 1)
        if fault.kind == "outage":
            assert not data.events[fault.series, days].any() and not data.quantity[fault.series, days].any()
        if fault.kind == "not_wired":
            assert not data.known[fault.series, :fault.start].any()
        if fault.kind == "clock_skew":
            assert data.events[fault.series, fault.start] == 0 < data.events[fault.series, fault.start + 1]
    late = [c for c in data.controls if c.kind == "late_file"]
    assert late and all(data.first_seen_events[c.series, c.start] <= data.events[c.series, c.start] for c in late)
    assert np.all(data.quantity >= 0)


def test_the_report_ends_with_the_summary_line(capsys):
    bench_anomalies.main(["--customers", "30", "--days", "80", "--no-tune"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(r"anomaly_outage_recall=[01]\.\d{3} false_alerts_per_1000=\d+\.\d\d "
                        r"drop50_recall=[01]\.\d{3} spike_recall=[01]\.\d{3}", last)
