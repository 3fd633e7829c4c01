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
import select
import signal
import stat
import threading
from collections.abc import Callable, Iterable, Iterator


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
_WAKE_SECONDS = 0.1  # how often a wait for a pipe's next bytes looks for a signal (and a close)


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


def raise_if_interrupted() -> None:
    """Raise the first interruption again if one arrived (and was swallowed on its way up)."""
    if _received:
        _raise(_received[0])


def exit_status(exc: KeyboardInterrupt | Terminated) -> int:
    """130 for Ctrl-C, 143 for SIGTERM."""
    return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED


class ReadAhead:
    """A thread that runs ``produce()`` and hands its items to the reader through a queue, at most
    ``ahead`` of them waiting: the one way edgelr reads a pipe ahead (``ThreadedReader``, the live
    pipe of ``pipes``, the records of ``streams.batches``). The reader's wait hears a signal (``get``).

    ``produce`` is called on the thread (an ``open`` that waits for a pipe's writer waits there).
    ``get`` gives the next item, ``END`` after the last (then and after), and raises the producer's
    error (then and after). ``close`` lets the thread go: it hands on nothing more and ends before
    its next item, or, blocked in a read, when that read returns (the writer writes or closes). A
    reader that leaves early leaves no thread blocked for good.
    """

    END = object()  # what ``get`` gives after the last item

    def __init__(self, produce: Callable[[], Iterable], ahead: int, name: str = "edgelr read"):
        self._items: queue.Queue = queue.Queue(maxsize=ahead)
        self._final = _NOTHING  # END or the producer's error, once taken: given by every later get
        self._closing = threading.Event()
        threading.Thread(target=self._run, args=(produce,), name=name, daemon=True).start()

    def _run(self, produce: Callable[[], Iterable]) -> None:
        try:
            for item in produce():
                if not self._hand(item):
                    return
            self._hand(self.END)
        except BaseException as exc:  # raised by the reader
            self._hand(_Failure(exc))

    def _hand(self, item) -> bool:
        """Queue ``item``; False once the reader has closed (nobody takes it, and nothing more is made)."""
        while not self._closing.is_set():
            with contextlib.suppress(queue.Full):
                self._items.put(item, timeout=_WAKE_SECONDS)
                # A put that close() made room for: no read after it (one that waits on a quiet pipe
                # would hold the handle's lock, and the caller's close of it, for as long).
                return not self._closing.is_set()
        return False

    def get(self):
        """The next item, waiting for it; ``END`` after the last, or once closed; the producer's error raised.

        The kernel may give a signal sent to the process to any thread that does not block
        it: onnxruntime's, torch's, or this reading thread. Python's C handler, run there,
        only marks the signal; the main thread runs the Python handler when it next runs
        Python code. A main thread waiting on a lock with no time limit never does:
        ``predict`` on a pipe kept open stayed deaf to SIGTERM and Ctrl-C (8 runs of 20 on a
        loaded machine). This wait returns to Python code every 0.1 s, and the main thread
        runs the marked handler there.
        """
        item = self._final
        while item is _NOTHING:
            if self._closing.is_set():  # nothing more comes: a reader of this one, on another thread, ends too
                return self.END
            with contextlib.suppress(queue.Empty):
                item = self._items.get(timeout=_WAKE_SECONDS)
        if item is self.END or isinstance(item, _Failure):
            self._final = item
        if isinstance(item, _Failure):
            item.raise_again()
        return item

    def arrived(self) -> Iterator:
        """The items that have arrived already, without waiting; the end and an error wait for ``get``."""
        while self._final is _NOTHING:
            try:
                item = self._items.get_nowait()
            except queue.Empty:
                return
            if item is self.END or isinstance(item, _Failure):
                self._final = item
                return
            yield item

    def close(self) -> None:
        self._closing.set()
        with contextlib.suppress(queue.Empty):  # room for the thread's pending put, after which _hand stops it
            while True:
                self._items.get_nowait()


class _Failure:
    """The producer's error, as an item."""

    def __init__(self, exc: BaseException):
        self.exc, self.traceback = exc, exc.__traceback__

    def raise_again(self):
        """Raise the error with the producer's frames, not those of every earlier raise of it."""
        raise self.exc.with_traceback(self.traceback)


_NOTHING = object()  # no item yet (None may be one)


class ThreadedReader(io.RawIOBase):
    """A binary file opened and read on a thread of its own (``ReadAhead``), a few reads ahead.

    For a named pipe read in the main thread (``edgelr train`` or ``report`` on one): its
    open and its reads block until the writer writes, and a signal the kernel hands to
    another thread (torch's) goes unheard for that long (``ReadAhead.get``). Here the thread
    blocks instead and the main thread's wait wakes. Wrap it in ``io.BufferedReader``.
    The open's error is raised by the constructor.
    """

    def __init__(self, path: str, read_bytes: int = 1 << 16, ahead: int = 4):
        self._ahead = ReadAhead(lambda: _reads(path, read_bytes), ahead)
        self._left = b""
        self._take()

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._ahead.close()
        super().close()

    def _take(self) -> None:
        item = self._ahead.get()
        self._left = b"" if item is ReadAhead.END else item

    def readinto(self, b) -> int:
        if not self._left:
            self._take()
        data, self._left = self._left[: len(b)], self._left[len(b) :]
        b[: len(data)] = data
        return len(data)


class ThreadedWriter:
    """Text for a pipe (stdout read by another program), written on a thread of its own.

    A reader that stops reading leaves the pipe full, and a write to it waits; in the main
    thread that wait is deaf to a signal the kernel hands another thread (``ReadAhead.get``):
    ``edgelr predict ... | stalled`` ignored SIGTERM. Here the thread waits in the write and
    the main thread in ``write`` or ``flush`` wakes every 0.1 s. The thread writes to a copy of
    the descriptor: left blocked in a write when the process ends (an interruption), it holds
    no lock that Python's shutdown would wait for, as the flush of ``sys.stdout`` would.
    The writer's error (BrokenPipeError: the reader went away) is raised by the next call.
    """

    def __init__(self, fd: int, encoding: str = "utf-8", errors: str = "strict", ahead: int = 2):
        self._fd = os.dup(fd)
        self._encoding, self._errors = encoding, errors
        self._items: queue.Queue = queue.Queue(maxsize=ahead)  # blocks of rows: a few MB each at most
        self._sent = self._written = 0
        self._error: _Failure | None = None
        self._closed = False
        self._progress = threading.Condition()
        threading.Thread(target=self._run, name="edgelr write", daemon=True).start()

    def _run(self) -> None:
        try:
            while (data := self._items.get()) is not None:
                view = memoryview(data)
                while view:  # a pipe's write may take part of it
                    view = view[_write_waiting(self._fd, view):]
                with self._progress:
                    self._written += 1
                    self._progress.notify_all()
        except BaseException as exc:  # raised by the caller's next write or flush
            with self._progress:
                self._error = _Failure(exc)
                self._progress.notify_all()
        finally:
            os.close(self._fd)

    def __enter__(self) -> ThreadedWriter:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        """Wait until everything written is in the pipe (an error's message then follows the rows before
        it). Not after an interruption: a stalled reader may be its reason, and the rows not in the pipe
        yet are dropped."""
        if kind is not None and issubclass(kind, INTERRUPTIONS):
            return
        try:
            self.close()
        except OSError:
            if kind is None:
                raise  # else the error on its way stands

    def write(self, text: str) -> int:
        if self._closed:
            raise ValueError("write to a closed ThreadedWriter")
        self._raise()
        data = text.encode(self._encoding, self._errors)
        while True:
            with contextlib.suppress(queue.Full):
                self._items.put(data, timeout=_WAKE_SECONDS)
                break
            self._raise()
        self._sent += 1
        return len(text)

    def flush(self) -> None:
        """Wait until every write so far is in the pipe."""
        with self._progress:
            while self._written < self._sent and self._error is None:
                self._progress.wait(_WAKE_SECONDS)
        self._raise()

    def close(self) -> None:
        """Flush, then let the thread go."""
        self.flush()
        self._closed = True
        self._items.put(None)

    def _raise(self) -> None:
        if self._error is not None:
            self._error.raise_again()


def open_heard(path: str) -> io.BufferedReader:
    """``open(path, "rb")``; for a named pipe, whose open waits until a writer opens it, the open runs on a
    thread (``ReadAhead``) and the wait hears a signal. Left early, that thread's handle, opened later, is
    closed when it is dropped."""
    try:
        fifo = stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        fifo = False  # the open says what is wrong
    if not fifo:
        return open(path, "rb")
    ahead = ReadAhead(lambda: [open(path, "rb")], 1, "edgelr open")
    try:
        return ahead.get()
    finally:
        ahead.close()


def _write_waiting(fd: int, data) -> int:
    """``os.write``, which waits for room on a descriptor its other user made non-blocking too."""
    while True:
        try:
            return os.write(fd, data)
        except BlockingIOError:
            select.select([], [fd], [])


def _reads(path: str, size: int) -> Iterator[bytes]:
    with open(path, "rb", buffering=0) as handle:
        while chunk := handle.read(size):
            yield chunk
