"""Numeric CSV blocks parsed in bulk with numpy alone, for ``edgelr predict``.

The exact reader (edgelr.data: the csv module, then a per-cell parse) takes ~10 s for a
1M x 30 file. This module parses a block of whole lines (~1 MB) with a few dozen numpy
operations over all of its cells at once. It only takes what it can prove the exact
reader reads the same way:

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
ASCII digits into their value), the value is formed in float64 to within a few units in
the last place, and it is taken when both ends of a bracket 2^-40 wide around it round to
the same float32: rounding is monotonic, so that is the float32 the exact parse gives.
The rare cell near the midpoint of two float32 values is parsed by float(), one by one.
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

BLOCK_BYTES = 1 << 18  # bytes of whole lines parsed at a time: ~27,000 cells, a few MB of temporaries
MAX_DIGITS = 24  # characters of a cell besides its sign: three 8-byte words
_PAD = 32  # bytes before and after a block, so that every gather stays inside the buffer
_BRACKET = 2.0**-40  # relative half-width of the bracket; the float64 estimate is within ~2^-50
_U = np.uint64
_ZEROS = _U(0x3030303030303030)  # eight ASCII '0'
_POINTS = _U(0x2E2E2E2E2E2E2E2E)  # eight '.'
_ONES = _U(0x0101010101010101)
_ADD = _U(0x4646464646464646)  # a byte above '9' plus this sets its top bit
_HIGH = _U(0x8080808080808080)
_LOW_BYTES = _U(0x000000FF000000FF)
_MUL1 = _U(100 + (1000000 << 32))
_MUL2 = _U(1 + (10000 << 32))
_POW10_INT = np.array([10**k for k in range(20)], dtype=np.uint64)
_POW10 = np.array([float(f"1e{k}") for k in range(-150, 151)])  # correctly rounded, 10^k at k + 150
_VOID = {n: np.dtype((np.void, 8 * n)) for n in (1, 2, 3)}
# (2^(8 b) * _BYTE_INDEX) >> 56 == 7 - b: the characters after byte b of a word.
_SIGN = np.array([1.0, -1.0])
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


def parse_block(buf: bytes, width: int, cols: list[int]) -> np.ndarray:
    """The feature cells of whole CSV lines as float32 (n_lines, len(cols)).

    buf : data lines, each ending with ``\\n`` (or ``\\r\\n``)
    width : fields per line (the header's)
    cols : the feature columns by position in the line, in the model's order
    Raises NotFast where the exact reader must read it.
    """
    if b'"' in buf or b"\0" in buf:  # quoting changes how fields split; NUL some csv modules refuse
        raise NotFast("a quote character or a NUL byte")
    crlf = b"\r" in buf
    if crlf and buf.count(b"\r") != buf.count(b"\r\n"):
        raise NotFast("a carriage return that does not end a line")
    if not buf.isascii():
        try:
            buf.decode("utf-8")  # text columns may hold any UTF-8; the exact reader names a bad byte's line
        except UnicodeDecodeError as exc:
            raise NotFast("not UTF-8") from exc
    u = np.frombuffer(buf, dtype=np.uint8)
    ends = np.flatnonzero((u == 44) | (u == 10))  # each field's end: its comma or newline
    n_lines = int(np.count_nonzero(u == 10))
    if n_lines == 0 or ends.size != n_lines * width:
        raise NotFast("a line with another number of fields than the header")
    grid = ends.reshape(n_lines, width)
    if not (u[grid[:, -1]] == 10).all():  # each line's last field ends at its newline, so no other one does
        raise NotFast("a line with another number of fields than the header")
    if not cols:
        return np.empty((n_lines, 0), dtype=np.float32)
    if crlf:
        grid = grid.copy()
        grid[:, -1] -= u[grid[:, -1] - 1] == 13  # a line's last field ends before its \r\n
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
    first = u[starts]
    negative = first == 45
    signed = negative | (first == 43)
    begins = starts + signed
    lengths = stops - begins
    if lengths.min() < 1 or lengths.max() > MAX_DIGITS:
        raise NotFast("an empty cell, a lone sign, or a cell longer than the fast parse takes")
    padded = np.frombuffer(b"0" * _PAD + buf + b"0" * _PAD, dtype=np.uint8)
    values, ok = _decimals(padded, stops + _PAD, lengths)
    if not ok.all():  # an exponent, or a cell that is not a number
        bad = np.flatnonzero(~ok)
        values[bad] = _with_exponent(padded, stops[bad], begins[bad])
    values *= _SIGN.take(negative.view(np.uint8))
    with np.errstate(over="ignore"):  # past float32: infinity, refused below
        low = (values * (1.0 - _BRACKET)).astype(np.float32)
        out = (values * (1.0 + _BRACKET)).astype(np.float32)
    for i in np.flatnonzero(low != out).tolist():  # near the midpoint of two float32 values
        out[i] = np.float32(float(buf[starts[i]:stops[i]]))
    if np.isinf(out).any():
        raise NotFast("a value too large for float32")
    return out.reshape(n_lines, len(cols))


def _decimals(padded: np.ndarray, stops: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(float64 estimates, whether the cell is digits with at most one point) of the unsigned cells of
    ``lengths`` bytes ending before ``stops`` (positions in ``padded``)."""
    n = lengths.size
    n_words = (int(lengths.max()) + 7) // 8
    w = 8 * n_words
    window = np.ndarray(shape=(padded.size - w + 1,), dtype=_VOID[n_words], buffer=padded, strides=(1,))
    x = window[stops - w].view("<u8")  # (n * n_words,): each cell's words, right-aligned, in a row
    lead = w - lengths  # bytes of the window before the cell
    masks = np.empty((n, n_words), dtype=np.uint64)
    for k in range(n_words):
        masks[:, k] = _LEAD[n_words][k].take(lead)
    x ^= _ZEROS
    x &= masks.reshape(-1)
    x ^= _ZEROS  # the bytes before the cell are '0' now
    d = x ^ _POINTS
    flags = (d - _ONES) & ~d & _HIGH  # the top bit of each '.' byte (exact for the lowest one)
    lowest = (flags & (_U(0) - flags)) >> _U(7)  # 2^(8 b) for the first '.' at byte b, else 0
    x ^= lowest * _U(0x1E)  # that '.' becomes '0'
    bad = ((x + _ADD) | (x - _ZEROS)) & _HIGH  # any other byte that is not a digit, a second '.' too
    after = (lowest * _BYTE_INDEX) >> _U(56)  # characters after that '.' in its word (7 - b)
    parts = _eight_digits(x).reshape(n, n_words)
    has = (flags != 0).reshape(n, n_words)
    after = after.reshape(n, n_words).astype(np.int64)
    bad = bad.reshape(n, n_words)
    # Column by column: numpy's reductions along a short axis are slow.
    points, fraction, any_bad = has[:, 0].astype(np.int64), after[:, 0] * has[:, 0], bad[:, 0]
    for k in range(1, n_words):
        # A point in word k has the characters after it in k, and 8 more per word right of it.
        points = points + has[:, k]
        fraction = fraction + (after[:, k] + 8 * (n_words - 1 - k)) * has[:, k]
        any_bad = any_bad | bad[:, k]
    if n_words > 1:  # the point's word has 8 characters per word right of it too
        fraction = fraction + 8 * (n_words - 1) * has[:, 0]
    whole = parts[:, 0] if n_words == 1 else parts[:, 0] * _U(10**8) + parts[:, 1] if n_words == 2 else None
    has_point = points > 0
    ok = (any_bad == 0) & (points <= 1) & (lengths - has_point >= 1)
    f = fraction * (points == 1)  # 0 without a point (and for two, which ok refuses)
    if whole is not None:  # the digits fit a uint64 exactly
        right = np.remainder(whole, _POW10_INT.take(f))  # the digits after the point
        left = (whole - right).astype(np.float64)
        right = right.astype(np.float64)
    else:
        left, right = np.zeros(n), np.zeros(n)
        for k in range(n_words):
            shift = 8 * (n_words - 1 - k)
            part = parts[:, k]
            r = np.remainder(part, _POW10_INT.take(np.clip(f - shift, 0, 8))).astype(np.float64)
            scale = 10.0**shift
            right += r * scale
            left += (part.astype(np.float64) - r) * scale
    # The point counted as a digit 0: dropping it divides the digits left of it by ten.
    values = left * _POW10.take(150 - f - has_point) + right * _POW10.take(150 - f)
    return values, ok


def _with_exponent(padded: np.ndarray, stops: np.ndarray, begins: np.ndarray) -> np.ndarray:
    """Estimates of unsigned ``mantissa(e|E)[+-]d[d]`` cells (positions in the unpadded block); NotFast
    for anything else."""
    lengths = stops - begins
    n, w = stops.size, MAX_DIGITS
    window = np.ndarray(shape=(padded.size - w + 1,), dtype=_VOID[3], buffer=padded, strides=(1,))
    chars = window[stops + _PAD - w].view(np.uint8).reshape(n, w)
    own = np.arange(w) >= (w - lengths)[:, None]
    is_e = ((chars | 32) == 101) & own  # 'e' or 'E'
    if not (is_e.sum(axis=1) == 1).all():
        raise NotFast("a cell that is not a number")
    e_col = is_e.argmax(axis=1)
    tail = w - 1 - e_col  # characters after the 'e'
    sign = chars[np.arange(n), np.minimum(e_col + 1, w - 1)]
    n_exp = tail - ((sign == 45) | (sign == 43))
    last = chars[:, w - 1].astype(np.int64) - 48
    before = chars[:, w - 2].astype(np.int64) - 48
    two = n_exp == 2
    if not (((n_exp == 1) | two) & (last >= 0) & (last < 10) & (~two | ((before >= 0) & (before < 10)))).all():
        raise NotFast("a cell that is not a number, or an exponent of more than two digits")
    exponent = np.where(two, before * 10 + last, last)
    exponent = np.where(sign == 45, -exponent, exponent)
    m_stops = stops - tail - 1
    m_lengths = m_stops - begins
    if m_lengths.min() < 1:
        raise NotFast("an exponent without a mantissa")
    mantissa, ok = _decimals(padded, m_stops + _PAD, m_lengths)
    if not ok.all():
        raise NotFast("a cell that is not a number")
    return mantissa * _POW10.take(150 + exponent)


def _eight_digits(x: np.ndarray) -> np.ndarray:
    """The value of the eight ASCII digits of each word, the first character in its lowest byte."""
    x = x - _ZEROS
    x = x * _U(10) + (x >> _U(8))
    return (((x & _LOW_BYTES) * _MUL1 + ((x >> _U(16)) & _LOW_BYTES) * _MUL2) >> _U(32)) & _U(0xFFFFFFFF)


def data_lines(handle, block_bytes: int = BLOCK_BYTES):
    """Blocks of whole data lines, each ending with its newline, from a binary file after its header line.

    Raises NotFast when the header line might not end at the first newline (a quote, a lone carriage
    return): only the csv module knows where such a header ends. Blank lines at the end of the file
    are dropped, as the exact reader skips them; a last line without a newline gets one.
    """
    pending = handle.read(block_bytes)
    if pending.startswith(b"\xef\xbb\xbf"):  # the UTF-8 byte order mark (the exact reader's utf-8-sig)
        pending = pending[3:]
    while b"\n" not in pending:  # a header longer than a block
        more = handle.read(block_bytes)
        if not more:
            return  # no data line: the exact reader says what is wrong
        pending += more
    end = pending.index(b"\n") + 1
    header = pending[:end]
    if b'"' in header or header.count(b"\r") != header.count(b"\r\n"):
        raise NotFast("a header line that the csv module must split")
    pending = pending[end:]
    while True:
        cut = pending.rfind(b"\n") + 1
        body = pending[:cut]
        lines = body.rstrip(b"\r\n")
        if lines:  # held back: newlines after the last line, which may be blank lines at the end
            lines = body[: len(lines) + (2 if body.startswith(b"\r\n", len(lines)) else 1)]
            yield lines
            pending = pending[len(lines):]
        chunk = handle.read(block_bytes)
        if not chunk:
            break
        pending += chunk
    last = pending.rstrip(b"\r\n")
    if last:
        yield last + b"\n"


class PredictionWriter:
    """``edgelr predict``'s CSV: a ``label`` column (the class name), then ``probability_<class>`` per class.

    Rows are formatted a few thousand at a time with one ``%`` operation: the class name as
    csv.writer writes that field, each probability as ``%.9g`` of its float32 value (every
    digit it has). The same text a csv.writer row by row gives, about twice as fast.
    """

    CHUNK = 4096  # rows per format operation: short enough for other threads to get the GIL between them

    def __init__(self, out, classes: np.ndarray):
        """out: a text file; classes: the model's class values, indexed by the label index."""
        self.out = out
        self.started = False
        self._header = ["label", *(f"probability_{c}" for c in classes.tolist())]
        self._labels = np.array([_csv_field(c) for c in classes], dtype=object)
        self._format = "%s" + ",%.9g" * len(classes) + "\n"
        self._formats: dict[int, str] = {}

    def header(self) -> None:
        csv.writer(self.out, lineterminator="\n").writerow(self._header)
        self.started = True

    def rows(self, labels: np.ndarray, proba: np.ndarray) -> None:
        """labels: (n,) class indices; proba: (n, n_classes) float32."""
        for i in range(0, labels.shape[0], self.CHUNK):
            idx, p = labels[i:i + self.CHUNK], proba[i:i + self.CHUNK]
            cells = np.empty((idx.shape[0], 1 + p.shape[1]), dtype=object)
            cells[:, 0] = self._labels[idx]
            cells[:, 1:] = p  # Python floats with the float32 values
            fmt = self._formats.get(idx.shape[0])
            if fmt is None:
                fmt = self._formats[idx.shape[0]] = self._format * idx.shape[0]
            self.out.write(fmt % tuple(cells.ravel().tolist()))


def _csv_field(value) -> str:
    """A value as csv.writer writes it as one field of a row (quoted where it must be)."""
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerow([value, ""])
    return text.getvalue()[:-2]  # less the empty last field's ',' and the '\n'


def numeric_blocks(path: str, width: int, cols: list[int], *, threads: int = 2,
                   block_bytes: int | None = None) -> Iterator[np.ndarray]:
    """``parse_block`` of each block of the file's data lines, in order, parsed on ``threads`` threads.

    numpy releases the GIL inside its operations, so blocks parse side by side while the
    caller scores and writes the ones before. Raises NotFast (after yielding the blocks
    before it) at the first block the fast parse does not take.
    """
    block_bytes = block_bytes or BLOCK_BYTES
    if os.path.getsize(path) > 8 * block_bytes:
        _keep_freed_memory()
    with open(path, "rb") as handle, ThreadPoolExecutor(threads, thread_name_prefix="edgelr-csv") as pool:
        pending: collections.deque = collections.deque()
        try:
            for buf in data_lines(handle, block_bytes):
                pending.append(pool.submit(parse_block, buf, width, cols))
                if len(pending) > threads:  # at most threads + 1 blocks in flight: memory stays flat
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


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
