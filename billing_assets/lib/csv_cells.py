"""CSV files customers open in a spreadsheet: no cell may become a formula.

A cell that begins with ``= + - @``, a tab or a carriage return is read as a formula by Excel,
LibreOffice and Google Sheets (CSV injection), unless it is a number: "-12.90" must stay a
number a spreadsheet can add. Such a cell is prefixed with ``'``, which spreadsheets show as
text. An exact amount written as a fraction ("-49/31", a prorated fee) counts as a number."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?(/\d+)?")


def safe_cell(value) -> str:
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([safe_cell(value) for value in row] for row in rows)
    return out.getvalue().encode()
