"""Numeric CSV blocks parsed in bulk with numpy alone, for ``edgelr predict``.

The exact reader (edgelr.data: the csv module, then a per-cell parse) takes ~10 s for a
1M x 30 file. This module parses a block of whole lines (512 KB) with a few dozen numpy
operations over all of its cells at once (~50 ns per cell), two blocks at a time on two
threads (numpy releases the GIL in its operations) while the caller scores and writes the
blocks before. It only takes what it can prove the exact reader reads the same way:

- fields split at commas, lines at ``\\n`` or ``\\r\\n``; no quote character in the
  block; every line with the header's number of fields (so no blank lines either);
- feature cells of the form ``[+-]digits[.digits][(e|E)[+-]d[d]]`` (or ``.5``, ``5.``),
  at most 24 characters besides the sign: no spaces, no missing cells, nothing that
  float() takes beyond spec section 2 (``1_000``, ``inf``, non-ASCII digits);
- values finite in float32.

Anything else raises NotFast, and the caller hands the file to the exact reader, which
reads it as it always has and names the file, line and column of any problem.

Values are those of the exact reader: the decimal correctly rounded to float64, then to
float32 (the model's input type). A cell's digits are read eight at a time from 64-bit
words (the SWAR technique of simdjson and fast_float: three multiplications turn eight
digits into their value), the value is formed in float64 to within a few units in the
last place, and it is taken when both ends of a bracket 2^-40 wide around it round to the
same float32: rounding is monotonic, so that is the float32 the exact parse gives. The
rare cell near the midpoint of two float32 values is parsed by float(), one by one.
"""

from __future__ import annotations

import collections
import csv
import io
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["NotFast", "PredictionWriter", "numeric_blocks", "parse_block", "data_lines", "MAX_DIGITS", "BLOCK_BYTES"]

BLOCK_BYTES = 1 << 19  # bytes of whole lines parsed at a time: ~54,000 cells, ~8 MB of temporaries
MAX_DIGITS = 24  # characters of a cell besides its sign: three 8-byte words
_PAD = 32  # bytes before and after a block, so that every gather stays inside the buffer
_BRACKET = 2.0**-40  # relative half-width of the bracket; the float64 estimate is within ~2^-50
_U = np.uint64
_ZEROS = _U(0x3030303030303030)  # eight ASCII '0'
_POINT_VALUES = _U(0x1E1E1E1E1E1E1E1E)  # eight '.' xor '0'
_ABOVE_9 = _U(0x7676767676767676)  # a byte above 9 plus this sets its top bit
_ONES = _U(0x0101010101010101)
_HIGH = _U(0x8080808080808080)
_LOW_BYTES = _U(0x000000FF000000FF)
_MUL1 = _U(100 + (1000000 << 32))
_MUL2 = _U(1 + (10000 << 32))
_POW10_INT = np.array([10**k for k in range(20)], dtype=np.uint64)
_POW10 = np.array([float(f"1e{k}") for k in range(-150, 151)])  # correctly rounded, 10^k at k + 150
_VOID = {n: np.dtype((np.void, 8 * n)) for n in (1, 2, 3)}
_SIGN = np.array([1.0, -1.0])
# (2^(8 b) * _BYTE_INDEX) >> 56 == 7 - b: the characters after byte b of a word.
_BYTE_INDEX = _U(sum((7 - b) << (8 * (7 - b)) for b in range(8)))


def _lead_masks(n_words: int) -> np.ndarray:
    """(n_words, w + 1) words, w = 8 n_words: for a cell right-aligned in w bytes after ``lead`` other
    bytes, the bytes of each word that are the cell's (row ``lead``; little-endian words)."""
    w = 8 * n_words
    masks = np.zeros((n_words, w + 1), dtype=np.uint64)
    for lead in range(w + 1):
        for k in range(n_words):
            masks[k, lead] = sum(0xFF << (8 * b) for b in range(8) if 8 * k + b >= lead)
    return masks


_LEAD = {n: _lead_masks(n) for n in (1, 2, 3)}


class NotFast(Exception):
    """A block the fast parse cannot prove it reads as the exact reader does."""


def parse_block(lines: Lines | bytes, width: int, cols: list[int], keep: list[int] | None = None):
    """The feature cells of whole CSV lines as float32 (n_lines, len(cols)).

    lines : data lines, each ending with ``\n`` (or ``\r\n``): a Lines buffer, or bytes
    width : fields per line (the header's)
    cols : the feature columns by position in the line, in the model's order
    keep : columns whose cells are also returned, as text: then (values, kept) where kept[i] is
        line i's cells of those columns as written, each followed by a comma
    Raises NotFast where the exact reader must read it.
    """
    values, grid = _parse_block(lines, width, cols)
    if keep is None:
        return values
    if not isinstance(lines, Lines):
        lines = Lines.of(lines)
    return values, _kept_cells(lines, grid, keep)


def _kept_cells(lines: Lines, grid: np.ndarray, keep: list[int]) -> list[str]:
    """Per line, the ``keep`` fields' text (``grid``: each field's end, from the block's start), comma after each."""
    raw = bytes(lines.buffer[lines.start:lines.stop])
    stops = grid[:, keep]
    starts = np.empty_like(grid)
    starts[:, 1:] = grid[:, :-1] + 1
    starts[0, 0] = 0
    newlines = np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) == 10)  # one per line
    starts[1:, 0] = newlines[:-1] + 1
    starts = starts[:, keep]
    if raw.isascii():  # byte positions are character positions: slice one str
        text = raw.decode("ascii")
        if len(keep) == 1:
            return [text[a:b] + "," for a, b in zip(starts[:, 0].tolist(), stops[:, 0].tolist())]
        return ["".join(text[a:b] + "," for a, b in zip(row_a, row_b))
                for row_a, row_b in zip(starts.tolist(), stops.tolist())]
    return ["".join(raw[a:b].decode("utf-8") + "," for a, b in zip(row_a, row_b))
            for row_a, row_b in zip(starts.tolist(), stops.tolist())]


def _parse_block(lines: Lines | bytes, width: int, cols: list[int]) -> tuple[np.ndarray, np.ndarray | None]:
    """parse_block's values, and each field's end (n_lines, width) when it was computed."""
    if not isinstance(lines, Lines):
        lines = Lines.of(lines)
    buf, start, stop = lines.buffer, lines.start, lines.stop
    if buf.find(b'"', start, stop) >= 0 or buf.find(b"\0", start, stop) >= 0:
        raise NotFast("a quote character or a NUL byte")  # quoting changes how fields split; NUL, some csv modules
    crlf = buf.find(b"\r", start, stop) >= 0
    if crlf and buf.count(b"\r", start, stop) != buf.count(b"\r\n", start, stop):
        raise NotFast("a carriage return that does not end a line")
    padded = np.frombuffer(buf, dtype=np.uint8)  # positions in it: cell positions + start
    u = padded[start:stop]
    if u.max(initial=0) >= 128:
        try:
            bytes(u).decode("utf-8")  # text columns may hold any UTF-8; the exact reader names a bad byte's line
        except UnicodeDecodeError as exc:
            raise NotFast("not UTF-8") from exc
    ends = np.flatnonzero((u == 44) | (u == 10))  # each field's end: its comma or newline
    n_lines = int(np.count_nonzero(u == 10))
    if n_lines == 0 or ends.size != n_lines * width:
        raise NotFast("a line with another number of fields than the header")
    grid = ends.reshape(n_lines, width)
    if not (u[grid[:, -1]] == 10).all():  # each line's last field ends at its newline, so no other one does
        raise NotFast("a line with another number of fields than the header")
    if crlf:
        grid = grid.copy()
        grid[:, -1] -= u[grid[:, -1] - 1] == 13  # a line's last field ends before its \r\n
    if not cols:
        return np.empty((n_lines, 0), dtype=np.float32), grid
    if list(cols) == list(range(width)) and not crlf:
        stops = ends
        starts = np.empty_like(ends)
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
    else:
        starts_grid = np.empty_like(grid)
        starts_grid[:, 1:] = grid[:, :-1] + 1
        starts_grid[0, 0] = 0
        starts_grid[1:, 0] = ends.reshape(n_lines, width)[:-1, -1] + 1
        stops, starts = grid[:, cols].reshape(-1), starts_grid[:, cols].reshape(-1)
    del ends
    first = u[starts]
    negative = first == 45
    signed = negative | (first == 43)
    begins = starts + signed
    lengths = stops - begins
    if lengths.min() < 1 or lengths.max() > MAX_DIGITS:
        raise NotFast("an empty cell, a lone sign, or a cell longer than the fast parse takes")
    values, ok = _decimals(padded, stops + start, lengths)
    if not ok.all():  # an exponent, or a cell that is not a number
        bad = np.flatnonzero(~ok)
        values[bad] = _with_exponent(padded, stops[bad] + start, begins[bad] + start)
    values *= _SIGN.take(negative.view(np.uint8))
    with np.errstate(over="ignore"):  # past float32: infinity, refused below
        low = (values * (1.0 - _BRACKET)).astype(np.float32)
        out = (values * (1.0 + _BRACKET)).astype(np.float32)
    for i in np.flatnonzero(low != out).tolist():  # near the midpoint of two float32 values
        out[i] = np.float32(float(buf[start + starts[i]:start + stops[i]]))
    if np.isinf(out).any():
        raise NotFast("a value too large for float32")
    return out.reshape(n_lines, len(cols)), grid


def _decimals(padded: np.ndarray, stops: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(float64 estimates, whether the cell is digits with at most one point) of the unsigned cells of
    ``lengths`` bytes ending before ``stops`` (positions in ``padded``)."""
    n = lengths.size
    n_words = (int(lengths.max()) + 7) // 8
    w = 8 * n_words
    window = np.ndarray(shape=(padded.size - w + 1,), dtype=_VOID[n_words], buffer=padded, strides=(1,))
    x = window[stops - w].view("<u8")  # (n * n_words,): each cell's words, right-aligned, in a row
    # In place where it can be, and each temporary dropped once used: two parse threads' peak
    # memory is most of predict's (~32 bytes per byte of the block otherwise).
    lead = w - lengths  # bytes of the window before the cell
    masks = np.empty((n, n_words), dtype=np.uint64)
    for k in range(n_words):
        _LEAD[n_words][k].take(lead, out=masks[:, k])
    del lead
    # Byte values: a digit its value, '.' 0x1E, the bytes before the cell 0.
    x ^= _ZEROS
    x &= masks.reshape(-1)
    flags = masks.reshape(-1)  # reused
    del masks
    np.bitwise_xor(x, _POINT_VALUES, out=flags)
    lowest = flags - _ONES
    np.invert(flags, out=flags)
    flags &= lowest
    flags &= _HIGH  # the top bit of each '.' byte (exact for the lowest one)
    np.negative(flags, out=lowest)
    lowest &= flags
    lowest >>= _U(7)  # 2^(8 b) for the first '.' at byte b, else 0
    has = (flags != 0).reshape(n, n_words)
    del flags
    x ^= lowest * _U(0x1E)  # that '.' becomes a digit 0
    bad = x + _ABOVE_9
    bad |= x
    bad &= _HIGH  # a byte above 9: not a digit (a second '.' too)
    bad = bad.reshape(n, n_words)
    lowest *= _BYTE_INDEX
    lowest >>= _U(56)  # characters after that '.' in its word (7 - b)
    after = lowest.reshape(n, n_words)
    del lowest
    parts = _eight_digits(x).reshape(n, n_words)
    del x
    # Column by column: numpy's reductions along a short axis are slow. A point in word k has the
    # characters after it in k, and 8 more per word right of it (``after`` is 0 for a word without one).
    fraction, any_bad, has_point, two = after[:, 0], bad[:, 0], has[:, 0], None
    if n_words > 1:
        fraction = fraction + _U(8 * (n_words - 1)) * has[:, 0]
    for k in range(1, n_words):
        fraction += after[:, k]
        fraction += _U(8 * (n_words - 1 - k)) * has[:, k]
        any_bad = any_bad | bad[:, k]
        both = has_point & has[:, k]
        two = both if two is None else two | both
        has_point = has_point | has[:, k]
    del after, bad, has
    ok = (any_bad == 0) & (lengths > has_point)  # and at least one digit
    if two is not None:
        ok &= ~two
        fraction[two] = 0
    if n_words <= 2:  # the digits fit a uint64 exactly
        whole = parts[:, 0] if n_words == 1 else parts[:, 0] * _U(10**8) + parts[:, 1]
        right = np.remainder(whole, _POW10_INT.take(fraction)).astype(np.float64)  # the digits after the point
        whole = whole.astype(np.float64)
    else:
        whole, right = np.zeros(n), np.zeros(n)
        for k in range(n_words):
            shift = 8 * (n_words - 1 - k)
            part = parts[:, k]
            keep = np.minimum(np.maximum(fraction.astype(np.int64) - shift, 0), 8)
            right += np.remainder(part, _POW10_INT.take(keep)).astype(np.float64) * 10.0**shift
            whole += part.astype(np.float64) * 10.0**shift
    # The point read as a digit 0 at place f: dropping it, the digits left of it move one place right,
    # so the mantissa is whole / 10 + 0.9 right; no point: whole itself.
    values = whole * 0.1
    values += right * 0.9
    values *= _POW10.take(151 - has_point.view(np.uint8) - fraction.astype(np.int64))
    return values, ok


def _with_exponent(padded: np.ndarray, stops: np.ndarray, begins: np.ndarray) -> np.ndarray:
    """Estimates of unsigned ``mantissa(e|E)[+-]d[d]`` cells (positions in ``padded``); NotFast for
    anything else."""
    # The last four characters (the bytes before a shorter cell are its separator, never 'e'): c[0] the last.
    tail = np.ndarray(shape=(padded.size - 3,), dtype="<u4", buffer=padded, strides=(1,))[stops - 4]
    c = [((tail >> np.uint32(8 * (3 - i))) & np.uint32(0xFF)).astype(np.int64) for i in range(4)]
    is_e = [(ch | 32) == 101 for ch in c]  # 'e' or 'E'
    digit = [(ch >= 48) & (ch <= 57) for ch in c]
    sign = [(ch == 43) | (ch == 45) for ch in c]
    # The exponent is 'e' and 1 digit, 'e' and 2 digits or a sign and 1 digit, or 'e', a sign and 2 digits.
    one = is_e[1] & digit[0]
    two = is_e[2] & digit[0] & (digit[1] | sign[1])
    three = is_e[3] & digit[0] & digit[1] & sign[2]
    if not (one | two | three).all():
        raise NotFast("a cell that is not a number, or an exponent of more than two digits")
    size = np.where(one, 2, np.where(two, 3, 4))  # characters of the exponent part, its 'e' too
    tens = np.where(three | (two & digit[1]), c[1] - 48, 0)
    exponent = tens * 10 + (c[0] - 48)
    negative = (two & (c[1] == 45)) | (three & (c[2] == 45))
    exponent = np.where(negative, -exponent, exponent)
    m_stops = stops - size
    m_lengths = m_stops - begins
    if m_lengths.min() < 1:
        raise NotFast("an exponent without a mantissa")
    mantissa, ok = _decimals(padded, m_stops, m_lengths)
    if not ok.all():
        raise NotFast("a cell that is not a number")
    return mantissa * _POW10.take(150 + exponent)


def _eight_digits(x: np.ndarray) -> np.ndarray:
    """The value of the eight digits (byte values 0-9) of each word, the first in its lowest byte; in place.

    fast_float's parse_eight_digits_unrolled: pairs, then fours, then the eight, in 64-bit words.
    """
    x *= _U(2561)  # 10 * 256 + 1: each byte plus ten times the one below it
    x >>= _U(8)
    high = x >> _U(16)
    x &= _LOW_BYTES
    x *= _MUL1
    high &= _LOW_BYTES
    high *= _MUL2
    x += high
    x >>= _U(32)
    return x


class Lines:
    """Whole CSV lines at ``buffer[start:stop]``, each ending with its newline, with at least _PAD
    bytes of the buffer before and after them (the parse's gathers reach that far)."""

    __slots__ = ("buffer", "start", "stop")

    def __init__(self, buffer: bytearray, start: int, stop: int):
        self.buffer, self.start, self.stop = buffer, start, stop

    @classmethod
    def of(cls, data: bytes) -> Lines:
        return cls(bytearray(_ZERO_PAD + data + _ZERO_PAD), _PAD, _PAD + len(data))

    def tobytes(self) -> bytes:
        return bytes(self.buffer[self.start:self.stop])


_ZERO_PAD = b"0" * _PAD


def data_lines(handle, block_bytes: int | None = None, buffers: int = 2,
               header_line: list | None = None) -> Iterator[Lines]:
    """Blocks of whole data lines from a binary file, after its header line, read into ``buffers``
    reused buffers (a block's buffer is filled again ``buffers`` blocks later: its parse must be done).
    ``header_line``: a list the header line (its bytes, with its newline, less a byte order mark) is added to.

    Raises NotFast when the header line might not end at the first newline (a quote, a lone carriage
    return): only the csv module knows where such a header ends. Blank lines at the end of the file
    are dropped, as the exact reader skips them; a last line without a newline gets one.
    """
    block_bytes = block_bytes or BLOCK_BYTES
    head = handle.read(block_bytes)
    while b"\n" not in head:  # a header longer than a block (or a pipe's first read, however short)
        more = handle.read(block_bytes)
        if not more:
            return  # no data line: the exact reader says what is wrong
        head += more
    if head.startswith(b"\xef\xbb\xbf"):  # the UTF-8 byte order mark (the exact reader's utf-8-sig)
        head = head[3:]
    end = head.index(b"\n") + 1
    header = head[:end]
    if b'"' in header or header.count(b"\r") != header.count(b"\r\n"):
        raise NotFast("a header line that the csv module must split")
    if header_line is not None:
        header_line.append(header)
    pending = head[end:]  # read, not yet handed out: a partial line, or newlines held back
    ring = [bytearray(_ZERO_PAD) for _ in range(max(buffers, 1))]
    turn, done = 0, False
    while not done:
        buffer = ring[turn % len(ring)]
        turn += 1
        size = _PAD + len(pending) + block_bytes + _PAD
        if len(buffer) < size:
            buffer.extend(bytes(size - len(buffer)))
        buffer[_PAD:_PAD + len(pending)] = pending
        filled = _PAD + len(pending)
        got = handle.readinto(memoryview(buffer)[filled:filled + block_bytes])
        done = not got
        filled += got
        if done:  # the end: a last line may lack its newline
            filled = _rstrip_newlines(buffer, _PAD, filled)
            if filled > _PAD:
                buffer[filled:filled + 1] = b"\n"
                yield Lines(buffer, _PAD, filled + 1)
            return
        cut = buffer.rfind(b"\n", _PAD, filled) + 1
        stop = _rstrip_newlines(buffer, _PAD, cut) if cut else _PAD
        if stop > _PAD:  # newlines after the last line are held back: they may be blank lines at the end
            stop += 2 if buffer.startswith(b"\r\n", stop) else 1
            pending = bytes(buffer[stop:filled])
            yield Lines(buffer, _PAD, stop)
        else:
            pending = bytes(buffer[_PAD:filled])


def _rstrip_newlines(buffer: bytearray, start: int, stop: int) -> int:
    """The end of ``buffer[start:stop]`` less the \r and \n characters it ends with."""
    while stop > start and buffer[stop - 1] in (10, 13):
        stop -= 1
    return stop


class PredictionWriter:
    """``edgelr predict``'s CSV: the ``--keep`` columns, a ``label`` column (the class name), then
    ``probability_<class>`` per class, then with --explain ``contribution_<column>`` per input column.

    Rows are formatted a few thousand at a time with one ``%`` operation: the class name as
    csv.writer writes that field, each probability as ``%.9g`` of its float32 value (every
    digit it has), each contribution as ``%.9g`` of its float64 value, the kept cells as the
    input had them. The same text a csv.writer row by row gives, about twice as fast.
    """

    CHUNK = 4096  # rows per format operation: short enough for other threads to get the GIL between them

    def __init__(self, out, classes: np.ndarray, keep=(), explain=()):
        """out: a text file; classes: the model's class values, indexed by the label index; keep: the kept
        columns' names; explain: the explained columns' names (none: no contribution columns)."""
        self.out = out
        self.started = False
        self._header = [*keep, "label", *(f"probability_{c}" for c in classes.tolist()),
                        *(f"contribution_{c}" for c in explain)]
        self._labels = np.array([_csv_field(c) for c in classes], dtype=object)
        self._extra = bool(keep) + len(explain)
        self._kept = bool(keep)
        self._format = ("%s" if keep else "") + "%s" + ",%.9g" * (len(classes) + len(explain)) + "\n"
        self._chunk_format = self._format * self.CHUNK  # a block's shorter last chunk builds its own

    def header(self) -> None:
        csv.writer(self.out, lineterminator="\n").writerow(self._header)
        self.started = True

    def rows(self, labels: np.ndarray, proba: np.ndarray, kept: list | None = None,
             contributions: np.ndarray | None = None) -> None:
        """labels: (n,) class indices; proba: (n, n_classes) float32; kept: (n,) the kept cells' text, a comma
        after each; contributions: (n, n_columns) float64."""
        for i in range(0, labels.shape[0], self.CHUNK):
            idx, p = labels[i:i + self.CHUNK], proba[i:i + self.CHUNK]
            if not self._extra:
                cells = np.empty((idx.shape[0], 1 + p.shape[1]), dtype=object)
                cells[:, 0] = self._labels[idx]
                cells[:, 1:] = p  # Python floats with the float32 values
            else:
                width = contributions.shape[1] if contributions is not None else 0
                first = int(self._kept)
                cells = np.empty((idx.shape[0], first + 1 + p.shape[1] + width), dtype=object)
                if self._kept:
                    cells[:, 0] = kept[i:i + self.CHUNK]
                cells[:, first] = self._labels[idx]
                cells[:, first + 1:first + 1 + p.shape[1]] = p
                if width:
                    cells[:, first + 1 + p.shape[1]:] = contributions[i:i + self.CHUNK]
            fmt = self._chunk_format if idx.shape[0] == self.CHUNK else self._format * idx.shape[0]
            self.out.write(fmt % tuple(cells.ravel().tolist()))


def _csv_field(value) -> str:
    """A value as csv.writer writes it as one field of a row (quoted where it must be)."""
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerow([value, ""])
    return text.getvalue()[:-2]  # less the empty last field's ',' and the '\n'


def numeric_blocks(path: str, width: int, cols: list[int], *, threads: int = 2,
                   block_bytes: int | None = None, keep: list[int] | None = None,
                   on_bytes=None, check=None) -> Iterator:
    """``parse_block`` of each block of the file's data lines, in order, parsed on ``threads`` threads.

    numpy releases the GIL inside its operations, so blocks parse side by side while the
    caller scores and writes the ones before. Raises NotFast (after yielding the blocks
    before it) at the first block the fast parse does not take. With ``keep``, each block is
    (values, kept cells) as parse_block gives them; with ``check``, a function of the values also
    run on the parse thread (the drift counts), (values, kept cells or None, its result).
    ``on_bytes(n)`` is told each block's size as it is handed out (a progress bar).
    """
    block_bytes = block_bytes or BLOCK_BYTES
    if os.path.getsize(path) > 8 * block_bytes:
        _keep_freed_memory()
    with open(path, "rb") as handle, ThreadPoolExecutor(threads, thread_name_prefix="edgelr-csv") as pool:
        pending: collections.deque = collections.deque()
        try:
            # At most threads + 1 blocks in flight, and one more being read: memory stays flat.
            for lines in data_lines(handle, block_bytes, buffers=threads + 2):
                job = pool.submit(parse_block, lines, width, cols, keep) if check is None else \
                    pool.submit(_parse_and_check, lines, width, cols, keep, check)
                pending.append((job, lines.stop - lines.start))
                if len(pending) > threads:
                    yield _handed(pending.popleft(), on_bytes)
            while pending:
                yield _handed(pending.popleft(), on_bytes)
        finally:
            for future, _ in pending:
                future.cancel()


def _parse_and_check(lines: Lines, width: int, cols: list[int], keep: list[int] | None, check):
    parsed = parse_block(lines, width, cols, keep)
    values, kept = parsed if keep is not None else (parsed, None)
    return values, kept, check(values)


def _handed(job, on_bytes):
    future, size = job
    result = future.result()
    if on_bytes is not None:
        on_bytes(size)
    return result


_TOP_PAD = 64 << 20


def _keep_freed_memory() -> None:
    """Have glibc's malloc keep up to 64 MB of freed memory at the top of its heaps (M_TOP_PAD).

    A block's parse allocates and frees a few MB of temporaries; by default malloc hands
    that memory back to the system after each block, and the next block faults it in
    again page by page: half of the parse time on 1M x 30 (measured). Memory in use is
    unchanged. Elsewhere than glibc this does nothing.
    """
    try:
        import ctypes

        ctypes.CDLL(None).mallopt(-2, _TOP_PAD)  # M_TOP_PAD
    except (OSError, AttributeError):
        pass
