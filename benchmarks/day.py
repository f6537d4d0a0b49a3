"""One day of usage at benchmark scale, in the shapes users send: clean, about a third of the
lines quarantined, and many small objects beside a few large ones.

Lines are formatted column-wise by Arrow (tens of millions of lines in seconds) and each
object is gzipped in its own thread, so landing a 50M-event day does not dominate the benchmark.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from billing_assets.demo.synthetic import reference_objects
from billing_assets.lib.arrow_text import value_data

METERS = ("api_requests", "egress_gb", "storage_gb_hours", "build_minutes", "seats")
SHAPES = ("clean", "quarantined", "many_objects")
# one line in _BAD_EVERY of the quarantined shape is a bad line of one of these kinds, in turn
_BAD_EVERY = 97
_LONG_LINES = 3  # lines over 1 MiB in the quarantined shape


@dataclass(frozen=True)
class BenchDay:
    day: date
    events: int
    customers: int
    shape: str

    @property
    def contracted_customers(self) -> int:
        """The quarantined shape leaves a third of its customers without a contract."""
        return self.customers if self.shape != "quarantined" else self.customers * 2 // 3

    def reference(self) -> dict[str, bytes]:
        ids = [f"cust-{index:05d}" for index in range(self.customers)]
        return reference_objects(
            customers=[(cid, f"Customer {cid}", "USD") for cid in ids],
            contracts=[(f"ct-{cid}", cid, "pro", "2025-01-01", "", "") for cid in ids[:self.contracted_customers]],
            allocations=[("10.0.0.0/8", ids[0], "2025-01-01", "")],
            alerts=None,
        )

    @property
    def prefix(self) -> str:
        return f"raw/usage/dt={self.day.isoformat()}/"

    def object_lines(self) -> list[tuple[str, int, int]]:
        """(key, first line, lines) of each object: 8 large ones, and for many_objects a quarter
        of the day in 200 small ones before them."""
        small = _spread(self.events // 4, 200) if self.shape == "many_objects" else []
        sizes = [("small", size) for size in small] + [("bench", size) for size in _spread(self.events - sum(small), 8)]
        starts = np.concatenate(([0], np.cumsum([size for _, size in sizes])))
        return [(f"{self.prefix}{kind}-{number:04d}.jsonl.gz", int(start), size)
                for number, ((kind, size), start) in enumerate(zip(sizes, starts))]

    def unreadable_keys(self) -> list[str]:
        """The objects no reader can open: the quarantined shape's corrupt one."""
        return [f"{self.prefix}corrupt-0000.jsonl.gz"] if self.shape == "quarantined" else []

    def objects(self, threads: int = 4) -> Iterator[tuple[str, bytes]]:
        """(key, gzip body) of every object, the unreadable ones last."""
        with ThreadPoolExecutor(max_workers=threads) as pool:
            yield from pool.map(lambda job: (job[0], gzip.compress(self.lines(job[1], job[2]), compresslevel=1, mtime=0)),
                                self.object_lines())
        for key in self.unreadable_keys():
            yield key, b"\x1f\x8b\x08\x00 this object was cut short in transit"

    def lines(self, start: int, count: int) -> bytes:
        """Lines ``start`` … ``start + count - 1`` of the day, newline-terminated. One line in a
        hundred repeats the one before it (a plain duplicate)."""
        index = np.arange(start, start + count, dtype=np.int64)
        serial = np.where(index % 100 == 99, index - 1, index)
        meter = pa.array(np.array(METERS, dtype=object)[serial % len(METERS)], pa.string())
        midnight = int(datetime(self.day.year, self.day.month, self.day.day, tzinfo=timezone.utc).timestamp())
        moment = pc.cast(pa.array(midnight + serial % 86_400, pa.int64()).cast(pa.timestamp("s")), pa.string())
        stamp = pc.binary_join_element_wise(pc.replace_substring(moment, " ", "T"), "Z", "")
        thousandths = serial % 9973
        quantity = pc.if_else(pc.equal(meter, "api_requests"), "1", pc.binary_join_element_wise(
            _text(thousandths // 1000), pc.utf8_lpad(_text(thousandths % 1000), 3, "0"), "."))
        lines = pc.binary_join_element_wise(
            '{"event_id":"e', pc.utf8_lpad(_text(serial), 10, "0"), '","timestamp":"', stamp, '","meter":"', meter,
            '","customer_id":"cust-', pc.utf8_lpad(_text(serial % self.customers), 5, "0"), '","quantity":', quantity,
            "}", "")
        if self.shape == "quarantined":
            bad = index % _BAD_EVERY == 13
            if start == 0:
                bad[:_LONG_LINES] = True
            replacements = [BAD_LINES[(position // _BAD_EVERY) % len(BAD_LINES)](self, position)
                            if position >= _LONG_LINES else
                            '{"event_id":"long-%d","padding":"%s"}' % (position, "x" * (1 << 20))
                            for position in index[bad].tolist()]
            lines = pc.replace_with_mask(lines, pa.array(bad), pa.array(replacements, pa.string()))
        return value_data(pc.binary_join_element_wise(lines, "\n", "")).to_pybytes()


def _serial(index: int) -> int:
    """The event serial of regular line ``index`` (a duplicate line repeats its predecessor)."""
    return index - 1 if index % 100 == 99 else index


def _text(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values, pa.int64()), pa.string())


def _spread(total: int, parts: int) -> list[int]:
    """``total`` lines over ``parts`` objects as evenly as can be (no empty object)."""
    parts = max(1, min(parts, total))
    return [total // parts + (1 if part < total % parts else 0) for part in range(parts)]


def _event(day: BenchDay, serial: int, **fields: str) -> str:
    values = {"event_id": f"x{serial:010d}", "timestamp": f"{day.day.isoformat()}T12:00:00Z", "meter": "egress_gb",
              "customer_id": "cust-00000", "quantity": "1.5"} | fields
    return "{" + ",".join(f'"{name}":{value if name == "quantity" else chr(34) + value + chr(34)}'
                          for name, value in values.items() if value is not None) + "}"


# one of each line-level reason code besides no_active_contract (the shape's bulk) and
# line_too_long (a few lines of the first object)
BAD_LINES = (
    lambda day, serial: '{"event_id":"x%d","timestamp":' % serial,                                # malformed_json
    lambda day, serial: "[%d]" % serial,                                                         # not_an_object
    lambda day, serial: _event(day, serial, meter=None),                                         # missing_field
    lambda day, serial: _event(day, serial, event_id=f"bad id {serial}"),                        # invalid_field
    lambda day, serial: _event(day, serial, timestamp=f"{day.day.isoformat()} 12:00:00"),        # invalid_timestamp
    lambda day, serial: _event(day, serial, timestamp="2099-01-01T00:00:00Z"),                   # future_timestamp
    lambda day, serial: _event(day, serial, timestamp="2001-01-01T00:00:00Z"),                   # partition_mismatch
    lambda day, serial: _event(day, serial, meter="teleport_minutes"),                           # unknown_meter
    lambda day, serial: _event(day, serial, quantity="-1"),                                      # invalid_quantity
    lambda day, serial: _event(day, serial, customer_id=f"ghost-{serial}"),                      # unknown_customer
    lambda day, serial: _event(day, serial, customer_id=None, ip="192.0.2.7"),                   # unattributed_ip
    # the regular line before it, with another quantity
    lambda day, serial: _event(day, serial, event_id=f"e{_serial(serial - 1):010d}", quantity="999"),  # duplicate_conflict
)
