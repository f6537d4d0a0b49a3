"""Raw objects → their non-blank lines, numbered as the producer wrote them. An object is read
in newline-aligned chunks of bounded size, so no object is ever held whole; any decoding
problem anywhere in it makes the whole object unreadable (quarantined as a file, never
half-counted)."""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from isal import igzip, isal_zlib  # ISA-L: gzip decoded twice as fast as by zlib

from billing_assets.lib.arrow_text import value_data, value_offsets


@dataclass(frozen=True)
class ObjectLines:
    """The non-blank lines of one raw object, or why the object could not be read at all."""

    key: str
    bytes_read: int
    line_numbers: np.ndarray | None = None  # each non-blank line's physical number (from 1)
    unreadable: str | None = None
    text: bytes | None = None  # the whole decoded object (valid UTF-8)
    newlines: int = 0  # how many newline bytes ``text`` holds
    longest_line: int = 0  # bytes
    lines_open_with_brace: bool = False  # every non-blank line's first byte is '{'
    split_lines: pa.LargeStringArray | None = None  # the lines, when finding them took splitting
    # else where each line ends in ``text`` (its newline, or the text's end): no blank line lies
    # between them, so line i starts one byte after line i - 1 ends
    line_ends: np.ndarray | None = None

    @cached_property
    def lines(self) -> pa.LargeStringArray:
        """The non-blank lines' text. An object whose every line opens with '{' has no blank
        line to skip, so its lines are only cut out of the text when something asks for them."""
        if self.split_lines is not None or self.text is None:
            return self.split_lines
        return _split(self.text).slice(0, len(self.line_numbers))

    @property
    def line_starts(self) -> np.ndarray:
        """Where each line starts in ``text``, when ``line_ends`` is known: one byte after the
        line before it ends."""
        return np.concatenate(([0], self.line_ends[:-1] + 1))[:len(self.line_ends)]

    @property
    def is_empty(self) -> bool:
        return self.unreadable is None and len(self.line_numbers) == 0

    def lines_at(self, positions: np.ndarray) -> pa.LargeStringArray:
        """The text of the lines at ``positions`` (ascending, among the non-blank lines), without
        cutting every line out of the text when it was not cut already."""
        taken = pa.array(positions, pa.int64())
        if self.line_ends is None:
            return self.lines.take(taken).cast(pa.large_string())
        # each line with the newline after it is a slice of the text as it is: take those, then
        # drop the newline (a line holds none of its own)
        bounds = np.minimum(np.concatenate(([0], self.line_ends + 1)), len(self.text))
        with_newlines = pa.LargeStringArray.from_buffers(len(self.line_ends), pa.py_buffer(bounds.astype(np.int64)),
                                                         pa.py_buffer(self.text))
        return pc.utf8_rtrim(with_newlines.take(taken), "\n")

    def subset(self, keep: np.ndarray) -> "ObjectLines":
        """Only the lines ``keep`` marks, as an object of their own: their text each followed by
        a newline (perhaps but the last), their numbers kept."""
        dropped = np.flatnonzero(~keep)
        if self.line_ends is not None and len(dropped) <= len(keep) // 8:
            # cut the few dropped lines out of the text rather than copy every kept line twice
            ends, starts = self.line_ends, self.line_starts
            whole, pieces, at = memoryview(self.text), [], 0
            for start, end in zip(starts[dropped].tolist(), ends[dropped].tolist()):
                pieces.append(whole[at:start])
                at = end + 1  # the line and its newline
            text = b"".join([*pieces, whole[at:]])
            lengths = (ends - starts)[keep]
            kept_ends = np.cumsum(lengths + 1) - 1  # each kept line then its newline, back to back
            data = np.frombuffer(self.text, dtype=np.uint8)
            # each dropped line took its newline along (the last line may have none): counting
            # what is left costs a scan of the whole text
            newlines = self.newlines - int(np.count_nonzero(ends[dropped] < len(self.text)))
            return ObjectLines(self.key, self.bytes_read, line_numbers=self.line_numbers[keep], text=text,
                               newlines=newlines, longest_line=int(lengths.max(initial=0)),
                               lines_open_with_brace=bool((data[starts[keep]] == ord("{")).all()),
                               line_ends=np.minimum(kept_ends, len(text)))
        lines = self.lines_at(np.flatnonzero(keep))
        newline, empty = (pa.scalar(text, lines.type) for text in ("\n", ""))
        text = value_data(pc.binary_join_element_wise(lines, empty, newline)).to_pybytes() if len(lines) else b""
        return ObjectLines(
            self.key, self.bytes_read, line_numbers=self.line_numbers[keep], text=text, newlines=len(lines),
            longest_line=int(pc.max(pc.binary_length(lines)).as_py() or 0),
            lines_open_with_brace=bool(pc.all(pc.starts_with(lines, "{")).as_py() is not False),
            split_lines=lines)


def read_object_lines(key: str, body: bytes) -> ObjectLines:
    """One whole object's lines at once (what a reader holding the bytes wants): read in one
    chunk, which ``object_chunks`` always gives."""
    return next(object_chunks(key, io.BytesIO(body)))


class _Counted(io.RawIOBase):
    """A stream that counts the bytes taken from it (an object's size as read, compressed)."""

    def __init__(self, stream: BinaryIO):
        self.stream, self.count = stream, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.stream.read(len(buffer))
        buffer[:len(data)] = data
        self.count += len(data)
        return len(data)


def object_chunks(key: str, stream: BinaryIO, chunk_bytes: int | None = None) -> Iterator[ObjectLines]:
    """The object's non-blank lines, in chunks of about ``chunk_bytes`` decoded bytes cut after a
    newline (a line longer than that stays whole), or all at once when ``chunk_bytes`` is None.
    Lines keep their physical numbers across chunks. If the object turns out unreadable (a
    corrupt gzip shows only at its end), the last chunk says so and the object is unreadable
    as a whole, whatever came before. A chunk of blank lines only is not given, but the
    last chunk always is (it carries the bytes read; an empty object gives one empty chunk)."""
    counted = _Counted(stream)
    if key.endswith(".jsonl.gz"):
        source = igzip.GzipFile(fileobj=io.BufferedReader(counted, 1 << 20), mode="rb")
    elif key.endswith(".jsonl"):
        source = io.BufferedReader(counted, 1 << 20)
    else:
        while stream.read(1 << 20):  # counted as read, like every other object
            pass
        yield ObjectLines(key, counted.count, unreadable="not a .jsonl or .jsonl.gz object")
        return
    carry, first_line, offset, fresh = b"", 1, 0, True
    while True:
        try:
            block = source.read(-1 if chunk_bytes is None else chunk_bytes)
        except (OSError, EOFError, zlib.error, isal_zlib.error) as error:
            yield ObjectLines(key, counted.count, unreadable=f"corrupt gzip: {error}")
            return
        last = chunk_bytes is None or not block
        if fresh:  # the object's first bytes: a byte order mark goes once three bytes are in
            block, carry = carry + block, b""
            if len(block) >= 3 or last:
                block, fresh = block.removeprefix(b"\xef\xbb\xbf"), False
        if last:
            data = carry + block
        else:
            # the carry is the part of a line after the last newline: it holds none
            cut = block.rfind(b"\n") + 1
            if not cut:  # one line longer than a chunk: read on
                carry += block
                continue
            # one copy of the chunk at most: past 32 MiB each copy also pays its page faults
            data = block if cut == len(block) and not carry else b"".join((carry, memoryview(block)[:cut]))
            carry = block[cut:]
        chunk = _lines_of(key, counted.count, data, first_line, offset)
        if chunk.unreadable or len(chunk.line_numbers) or last:  # the last carries the bytes read
            yield chunk
            if chunk.unreadable:
                return
        first_line, offset = first_line + chunk.newlines, offset + len(data)
        if last:
            return


def _lines_of(key: str, bytes_read: int, data: bytes, first_line: int, offset: int) -> ObjectLines:
    """The non-blank lines of decoded text whose first line is number ``first_line`` and whose
    first byte is at ``offset`` in the object."""
    try:
        _one_value(data, pa.large_binary()).cast(pa.large_string())
    except pa.ArrowInvalid:
        return ObjectLines(key, bytes_read,
                           unreadable=f"not UTF-8 (invalid byte at offset {offset + _first_invalid_utf8(data)})")
    newline_at = _newline_positions(data)
    has_cr = b"\r" in data
    if not has_cr:  # the producers' layout: every line opens with '{', so none is blank
        starts = np.concatenate(([0], newline_at + 1))
        if starts[-1] == len(data):
            starts = starts[:-1]  # nothing after the final newline
        others = np.flatnonzero(np.frombuffer(data, dtype=np.uint8)[starts] != ord("{"))
        # a few lines that do not open with '{' (a day of rejected lines) need not split the
        # text, unless one of them is blank
        ends = np.append(newline_at, len(data))[:len(starts)]
        if len(starts) and (len(others) == 0 or len(others) <= len(starts) // 8 and not _any_blank(
                data, starts[others], ends[others])):
            return ObjectLines(key, bytes_read, line_numbers=np.arange(first_line, first_line + len(starts), dtype=np.int64),
                               text=data, newlines=len(newline_at), longest_line=int(np.max(ends - starts)),
                               lines_open_with_brace=len(others) == 0, line_ends=ends)
    lines = _split(data)
    if has_cr:
        lines = pc.replace_substring_regex(lines, r"\r$", "")
    numbers = np.arange(first_line, first_line + len(lines), dtype=np.int64)
    blank = pc.equal(pc.binary_length(pc.ascii_trim_whitespace(lines)), 0)
    trailing = len(lines) > 0 and blank[len(lines) - 1].as_py()  # the empty string after a final newline
    if (pc.sum(blank).as_py() or 0) != int(trailing):
        keep = pc.invert(blank)
        lines, numbers = lines.filter(keep), numbers[keep.to_numpy(zero_copy_only=False)]
    else:
        lines, numbers = lines.slice(0, len(lines) - int(trailing)), numbers[:len(lines) - int(trailing)]
    starts = value_offsets(lines)[:-1]
    opens_with_brace = bool((np.frombuffer(lines.buffers()[2], dtype=np.uint8)[starts] == ord("{")).all()) if len(lines) else True
    longest = int(pc.max(pc.binary_length(lines)).as_py() or 0)
    return ObjectLines(key, bytes_read, line_numbers=numbers, text=data, newlines=len(newline_at), longest_line=longest,
                       lines_open_with_brace=opens_with_brace, split_lines=lines)


def _any_blank(data: bytes, starts: np.ndarray, ends: np.ndarray) -> bool:
    """Whether any of the lines from ``starts`` to ``ends`` (newline excluded) holds only
    whitespace (a CR-free text)."""
    return any(not data[start:end].strip() for start, end in zip(starts.tolist(), ends.tolist()))


def _split(data: bytes) -> pa.LargeStringArray:
    return pc.split_pattern(_one_value(data, pa.large_string()), "\n").flatten()


_SCAN_WINDOW = 1 << 20


def _newline_positions(data: bytes) -> np.ndarray:
    array = np.frombuffer(data, dtype=np.uint8)
    # in windows: each comparison's temporary stays in cache
    found = [np.flatnonzero(array[start:start + _SCAN_WINDOW] == ord("\n")) + start
             for start in range(0, len(array), _SCAN_WINDOW)]
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


def _one_value(data: bytes, kind: pa.DataType) -> pa.Array:
    """``data`` as the single value of a large string or binary array, without copying it."""
    return pa.Array.from_buffers(kind, 1, [None, pa.py_buffer(np.array([0, len(data)], dtype=np.int64)), pa.py_buffer(data)])


def _first_invalid_utf8(data: bytes) -> int:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start
    return -1

