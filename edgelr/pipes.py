"""A CSV on stdin or a pipe through csvblocks' fast parse, handed over to the exact reader where it must be.

A file can be read twice: its fast parse gives up at the first block it declines, and the
exact reader reads the file again from the start (``scoring.feature_blocks``). A pipe can
be read once, so here every byte read is also kept until the block it belongs to has been
scored. At the first block the fast parse declines (a quote, an empty cell, a word), the
exact reader (``streams.csv_source``) takes over from that block's first byte: the header
line again, then the kept bytes, then the rest of the pipe, its line numbers counted from
the blocks before. Its output and its messages are what they were without the fast parse.

Rows that arrive alone (a live pipe, ``tail -f``) are parsed and handed on as they come:
a block is whatever whole lines have arrived, read on a thread of its own so that the
wait stays interruptible, as the exact reader's is.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence

from edgelr.csvblocks import BLOCK_BYTES, NotFast, data_lines, parse_block
from edgelr.data import MISSING_TOKENS, check_header
from edgelr.errors import DataError
from edgelr.interrupts import ReadAhead
from edgelr.streams import Block, csv_source

_BOM = b"\xef\xbb\xbf"
# Reads a live pipe's thread may hold for the scorer. A fast pipe gives 64 KB a read: 16 fill two
# blocks (with 4, `cat | edgelr predict -` on 1M x 30 took ~10% longer). Memory stays flat: at most
# 16 reads of a block's size each, where a source gives that much at once.
_CHUNKS_AHEAD = 16


def piped_blocks(handle, name: str, live: bool, *, numeric: Sequence[str], text: Sequence[str] = (),
                 keep: Sequence[str] = (), allow_missing: bool, label: str | None = None,
                 out_format: str = "csv") -> Iterator[Block]:
    """``csv_source``'s blocks of a headed CSV from a binary handle read once (features ``numeric``, the
    label cells of ``label``), through the fast parse wherever it takes them. Text columns are the exact
    reader's alone."""
    if text:
        yield from csv_source(handle, name, live, numeric=numeric, text=text, allow_missing=allow_missing,
                              keep=keep, label=label, out_format=out_format)
        return
    with _Kept(handle, live) as source:  # closed, a live pipe's reading thread goes, left early or not
        header: list[bytes] = []
        start = 0  # the stream's offset of the first byte not yet handed on in a block
        lines_before = 0  # the stream's lines before that byte, the header's included
        handed = 0
        try:
            layout = None
            for lines in data_lines(source, BLOCK_BYTES, buffers=2, header_line=header):
                if layout is None:
                    layout = _layout(header[0], numeric, [*keep, *([label] if label else [])])
                    start, lines_before = source.offset_after_header(header[0]), 1
                width, cols, keep_cols = layout
                parsed = parse_block(lines, width, cols, keep_cols or None)
                values, kept = parsed if keep_cols else (parsed, None)
                labels = None
                if label:  # the last kept cell of each line; no quotes in a fast block, so a comma ends each cell
                    kept, labels = _split_labels(kept, bool(keep))
                if kept is not None and out_format != "csv":
                    kept = [k.split(",")[:-1] for k in kept]
                yield Block(values, None, kept, labels)
                handed += values.shape[0]
                start += lines.stop - lines.start
                lines_before += values.shape[0]  # one line a row: a fast block has no blank or quoted lines
                source.release(start)
            if handed:
                return
        except NotFast:
            pass
        # The exact reader from ``start``: the whole stream (the header not read yet), or the header line again,
        # then the rest. Nothing before ``start`` is read twice.
        replay = io.BufferedReader(_Replay(header[0] if start else b"", source, start))
        yield from csv_source(replay, name, live, numeric=numeric, text=(), allow_missing=allow_missing, keep=keep,
                              label=label, out_format=out_format, line_offset=max(lines_before - 1, 0),
                              rows_before=handed)


def _split_labels(kept: list[str], keep: bool) -> tuple[list[str] | None, list[str]]:
    """(the kept cells, each with its comma, or None; the label cells) from cells whose last is the label's.
    A label the exact reader would refuse (empty, a missing token) is NotFast: it names the line."""
    heads, labels = [], []
    for cells in kept:
        head, _, cell = cells[:-1].rpartition(",")
        value = cell.strip()
        if not value or value in MISSING_TOKENS:
            raise NotFast("a label the exact reader must name")
        heads.append(head + ",")
        labels.append(value)
    return (heads if keep else None), labels


def _layout(header: bytes, numeric: Sequence[str], keep: Sequence[str]) -> tuple[int, list[int], list[int]]:
    """(fields per line, feature columns, kept columns) from a header line, or NotFast where the exact reader
    must read the header (and name what is wrong with it)."""
    try:
        row = next(csv.reader([header.decode("utf-8").rstrip("\r\n")]))
        names = check_header(row, "stdin")
    except (UnicodeDecodeError, csv.Error, DataError, StopIteration) as exc:
        raise NotFast("a header the exact reader must read") from exc
    if any(n not in names for n in [*numeric, *keep]):
        raise NotFast("a column the header lacks: the exact reader names it")
    return len(names), [names.index(n) for n in numeric], [names.index(n) for n in keep]


class _Kept(io.RawIOBase):
    """A binary handle read in chunks, each byte kept from the last ``release`` on (``_Replay`` reads them
    again). Live, a thread reads the chunks as they arrive and ``readinto`` gives whatever has."""

    def __init__(self, handle, live: bool):
        self.handle, self.live = handle, live
        self.kept = bytearray()
        self.base = 0  # the stream's offset of kept[0]
        self.in_header = True  # the header line's newline not read yet
        self.first = b""  # the stream's first bytes (a byte order mark, or not)
        self.left = b""  # a chunk's bytes that did not fit the last readinto
        self.ahead = ReadAhead(lambda: _chunks(handle), _CHUNKS_AHEAD, "edgelr pipe") if live else None

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if self.ahead is not None:
            self.ahead.close()
        super().close()

    def next_bytes(self, size: int) -> bytes:
        """Up to ``size`` more bytes of the stream (b"" at its end), not kept; live, at least one, as they
        arrive, and more when more have."""
        if not self.left:
            if not self.live:
                return self.handle.read(size)
            item = self.ahead.get()  # waits for the pipe
            if item is ReadAhead.END:
                return b""
            self.left = item
            arrivals = self.ahead.arrived()  # what else has arrived, without waiting
            while len(self.left) < size and (item := next(arrivals, None)) is not None:
                self.left += item
        data, self.left = self.left[:size], self.left[size:]
        return data

    def readinto(self, b) -> int:
        data = self.next_bytes(len(b))
        if self.in_header and b"\n" in data:
            # The read that ends the header line ends there: data_lines reads again before it hands on the
            # lines after the header that it read with it, and on a live pipe those rows would wait.
            end = data.index(b"\n") + 1
            data, self.left, self.in_header = data[:end], data[end:] + self.left, False
        b[: len(data)] = data
        if len(self.first) < 3:
            self.first = (self.first + data)[:3]
        self.kept += data
        return len(data)

    def offset_after_header(self, header: bytes) -> int:
        return (len(_BOM) if self.first == _BOM else 0) + len(header)

    def release(self, offset: int) -> None:
        """Forget the bytes before stream offset ``offset`` (bytes read already: a block's end)."""
        if not self.base <= offset <= self.base + len(self.kept):
            raise RuntimeError(f"stream offset {offset} outside the kept bytes [{self.base}, "
                               f"{self.base + len(self.kept)}]")  # a hand-over from here would lose bytes
        del self.kept[: offset - self.base]
        self.base = offset


def _chunks(handle) -> Iterator[bytes]:
    """A live handle's bytes, a read at a time, as they arrive."""
    read = getattr(handle, "read1", None) or handle.read  # read1: what has arrived, one read
    while chunk := read(BLOCK_BYTES):
        yield chunk


class _Replay(io.RawIOBase):
    """``prefix``, then the stream from offset ``start`` on: the kept bytes, then the rest as it comes.

    The prefix (the header line again) comes in a read of its own: the exact reader decodes each read as one
    chunk, and a bad byte in the kept bytes would otherwise be reported on the header's line.
    """

    def __init__(self, prefix: bytes, source: _Kept, start: int):
        self.source = source
        self.prefix, self.pending = bytes(prefix), bytes(source.kept[start - source.base :])

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self.prefix:
            data, self.prefix = self.prefix[: len(b)], self.prefix[len(b) :]
            b[: len(data)] = data
            return len(data)
        if not self.pending:
            self.pending = self.source.next_bytes(len(b))
        data, self.pending = self.pending[: len(b)], self.pending[len(b) :]
        b[: len(data)] = data
        return len(data)

