"""Ctrl-C and SIGTERM end a command cleanly: no output, no temporary file, exit 130 / 143 (spec section 8).

SIGTERM is what ``systemd`` and ``docker stop`` send. Python's default for it is to die
on the spot, which skips every ``finally`` -- and with them ``fileio.atomic_path``'s
removal of its temporary file. ``catch_interruptions`` turns SIGTERM into an exception
raised in the main thread, as Ctrl-C already is (KeyboardInterrupt), so the same
unwinding cleans up after both.

An exception raised by a signal handler lands wherever the main thread happens to be,
and library code with a bare ``except:`` (torch's import path has some) can swallow it:
a run once went on training after its SIGTERM. So the handlers also remember the
signal, and ``raise_if_interrupted`` raises it again where a command would otherwise
go on: before an output file is renamed into place and between training epochs.
Standard library only: the edge commands use it.
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import signal
import threading


class Terminated(BaseException):
    """SIGTERM arrived. A BaseException, as KeyboardInterrupt: ``except Exception`` does not swallow it."""


INTERRUPTIONS = (KeyboardInterrupt, Terminated)
# Exit statuses of a command ended by a signal, as a shell reports a process it killed: 128 + the signal.
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143

_received: list[int] = []  # the signals that arrived, first first
_retries: list[threading.Timer] = []  # signals to send again (below), pending
_state = threading.Lock()  # held while a retry sends its signal, and while a command's handlers go
_active = [False]  # whether a command's handlers are installed: a retry after its end sends nothing
_RETRY_SECONDS = 0.05  # a signal that arrived during an import is sent again after this long
_RETRIES = 60  # ... at most this many times (3 s: torch's import takes 1-2 s); then it is raised where it lands
_TORCH = f"{os.sep}torch{os.sep}"  # in the file names of torch's modules
_WAKE_SECONDS = 0.1  # how often the main thread's wait for a pipe's next bytes looks for a signal


def _handle(signum, frame) -> None:
    if not _active[0]:  # the command is handing its handlers back: it ends anyway
        return
    _received.append(signum)
    if _unsafe(frame) and len(_received) <= _RETRIES:  # a wait in torch's Python code must still end
        # An exception in the middle of importing torch left it half-initialized, and the
        # process crashed on the way out (SIGSEGV, SIGABRT); one inside torch's own
        # callbacks was printed and ignored. The same signal comes again, to the main
        # thread, a moment later: by then it is back in code that unwinds cleanly.
        retry = threading.Timer(_RETRY_SECONDS, _send_again, (signum,))
        retry.daemon = True
        _retries.append(retry)
        retry.start()
        return
    _raise(signum)


def _send_again(signum: int) -> None:
    # Only while the command's handlers are in place: after they are gone, the signal's
    # default would kill a process that already unwound (exit -15 instead of 143).
    with _state:
        if _active[0]:
            signal.pthread_kill(threading.main_thread().ident, signum)


def _unsafe(frame) -> bool:
    """Whether ``frame`` (where the main thread was interrupted) is inside an import or torch's code."""
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith("<frozen importlib") or _TORCH in name:
            return True
        frame = frame.f_back
    return False


def _raise(signum: int) -> None:
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


@contextlib.contextmanager
def catch_interruptions():
    """While it lasts, raise ``Terminated`` (SIGTERM) and KeyboardInterrupt (Ctrl-C) in the main thread,
    and remember them; afterwards the earlier handlers are back and nothing is remembered (a process
    that runs several commands, e.g. tests through CliRunner, starts each afresh).

    A no-op off the main thread, where Python cannot install signal handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _active[0] = True
    earlier = {s: signal.signal(s, _handle) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        with _state:  # no retry sends its signal from here on
            _active[0] = False
            for retry in _retries:
                retry.cancel()
            _retries.clear()
        for s, handler in earlier.items():
            signal.signal(s, handler)
        _received.clear()


def next_item(items: queue.Queue):
    """``items.get()``, which a signal ends whichever thread the kernel handed it to.

    The kernel may give a signal sent to the process to any thread that does not block
    it: onnxruntime's, or the thread reading the pipe. Python's C handler, run there,
    only marks the signal; the main thread runs the Python handler when it next runs
    Python code. A main thread waiting on a lock with no time limit never does:
    ``predict`` on a pipe kept open stayed deaf to SIGTERM and Ctrl-C (8 runs of 20 on a
    loaded machine). A wait with a time limit returns to Python code every 0.1 s, and
    the main thread runs the marked handler there.
    """
    while True:
        try:
            return items.get(timeout=_WAKE_SECONDS)
        except queue.Empty:
            continue


def raise_if_interrupted() -> None:
    """Raise the first interruption again if one arrived (and was swallowed on its way up)."""
    if _received:
        _raise(_received[0])


def exit_status(exc: KeyboardInterrupt | Terminated) -> int:
    """130 for Ctrl-C, 143 for SIGTERM."""
    return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED


class ThreadedReader(io.RawIOBase):
    """A binary file opened and read on a thread of its own, its bytes waited for with ``next_item``.

    For a named pipe read in the main thread (``edgelr train`` or ``report`` on one): its
    open and its reads block until the writer writes, and a signal the kernel hands to
    another thread (torch's) goes unheard for that long (``next_item``). Here the thread
    blocks instead, a few reads ahead, and the main thread's wait wakes. Wrap it in
    ``io.BufferedReader``. Closed before the pipe's end, the thread stops at its next read
    (one blocked in a read ends when the writer writes or closes).
    """

    _AHEAD = 4  # reads the thread may hold

    def __init__(self, path: str, read_bytes: int = 1 << 16):
        self._chunks: queue.Queue = queue.Queue(maxsize=self._AHEAD)
        self._left = b""
        self._end: bool | BaseException = False  # True at the end; the reader's error once it is raised
        self._closing = threading.Event()
        threading.Thread(target=self._produce, args=(path, read_bytes), name="edgelr read", daemon=True).start()
        self._take()  # the open's error, if any, is raised here

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._closing.set()
        with contextlib.suppress(queue.Empty):  # room for the thread's pending put, which then sees the flag
            while True:
                self._chunks.get_nowait()
        super().close()

    def _produce(self, path: str, read_bytes: int) -> None:
        try:
            with open(path, "rb", buffering=0) as handle:
                while not self._closing.is_set():
                    chunk = handle.read(read_bytes)
                    self._hand(chunk)
                    if not chunk:
                        return
        except BaseException as exc:  # raised by the reader, in the main thread
            self._hand(exc)

    def _hand(self, item) -> None:
        """Queue ``item`` for the reader, unless it has closed (nobody would take it)."""
        while not self._closing.is_set():
            with contextlib.suppress(queue.Full):
                self._chunks.put(item, timeout=_WAKE_SECONDS)
                return

    def _take(self) -> None:
        """The next read's bytes into ``_left`` (b"" at the end); the reader's error raised, then and after."""
        if isinstance(self._end, BaseException):
            raise self._end
        if self._end:
            return
        item = next_item(self._chunks)
        if isinstance(item, BaseException):
            self._end = item
            raise item
        self._left, self._end = item, not item

    def readinto(self, b) -> int:
        if not self._left:
            self._take()
        data, self._left = self._left[: len(b)], self._left[len(b) :]
        b[: len(data)] = data
        return len(data)
