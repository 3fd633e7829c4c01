"""Ctrl-C and SIGTERM: no output, no temporary file, the earlier output untouched, exit 130 / 143 (spec section 8)."""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgelr import fileio, interrupts

EDGELR = [sys.executable, "-m", "edgelr"]
# The tests wait until the command has installed its handlers: /proc tells (Linux, as CI).
pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc/PID/status (Linux)")


def catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler for ``signum`` (the SigCgt mask of /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as f:
        mask = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
    return bool(mask & (1 << (signum - 1)))


def wait_for(condition, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the command ended early: {proc.communicate()}"
        assert time.monotonic() < deadline, "the command never got there"
        time.sleep(0.02)


@pytest.fixture
def spawn():
    """Popen for the tests, each process killed at teardown if a failed test left it running (sgd for 10^8 epochs)."""
    started: list[subprocess.Popen] = []

    def popen(args: list[str], **kwargs) -> subprocess.Popen:
        started.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs))
        return started[-1]

    yield popen
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def answered(folder: Path) -> bool:
    """Whether a temporary output in ``folder`` has some rows in it."""
    return any((folder / name).stat().st_size > 0 for name in leftovers(folder))


def fifo_writer(fifo: Path):
    """The named pipe opened for writing without waiting for its reader (Linux: read and write), so that
    a command that died before opening it fails the test instead of hanging it."""
    return os.fdopen(os.open(fifo, os.O_RDWR), "w")


@pytest.fixture
def model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    subprocess.run([*EDGELR, "train", "--val-fraction", "0", "-o", str(folder / "m.pt")], check=True,
                   capture_output=True)
    subprocess.run([*EDGELR, "export", str(folder / "m.pt"), "-o", str(folder / "m.onnx")], check=True,
                   capture_output=True)
    return folder / "m.onnx"


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_interrupted_predict_leaves_no_output_and_the_earlier_one_untouched(tmp_path, model, spawn, signum, status):
    # The rows come through a named pipe kept open: predict is mid-file, its temporary
    # output beside out.csv, for as long as the test likes.
    fifo, out = tmp_path / "rows.csv", tmp_path / "out.csv"
    os.mkfifo(fifo)
    out.write_text("earlier output\n")
    proc = spawn([*EDGELR, "predict", str(model), str(fifo), "-o", str(out)])
    with fifo_writer(fifo) as pipe:
        pipe.write("lecture_hours,lab_hours\n1,2\n5,3\n")
        pipe.flush()
        wait_for(lambda: catches(proc.pid, signal.SIGTERM) and leftovers(tmp_path), proc)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert err.strip() == f"Interrupted ({'Terminated' if signum == signal.SIGTERM else 'KeyboardInterrupt'}): " \
                          "no output was written."
    assert out.read_text() == "earlier output\n"
    assert leftovers(tmp_path) == []


def signal_a_thread_not_main(pid: int, signum: int) -> None:
    """Send ``signum`` to one of process ``pid``'s threads other than its main one (tgkill).

    Where the kernel may put a signal sent to the whole process (``kill``, Ctrl-C): to any
    thread that does not block it. CI's loaded machine did, now and then."""
    others = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid)
    assert others, "the command has no thread but its main one"
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.tgkill(pid, others[-1], signum) != 0:
        raise OSError(ctypes.get_errno(), "tgkill")


def signal_a_thread_not_main_and_wait(proc: subprocess.Popen, signum: int, what: str) -> None:
    """``signal_a_thread_not_main``, then a failed test if ``proc`` has not ended 20 s later."""
    signal_a_thread_not_main(proc.pid, signum)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{what} went on waiting after its {signum.name}")


@pytest.mark.skipif(not (sys.platform.startswith("linux") and hasattr(ctypes.CDLL(None), "tgkill")),
                    reason="needs Linux and glibc's tgkill (2.30 and later)")
@pytest.mark.parametrize("through", ["named pipe", "stdin"])
@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_another_thread_got_still_ends_predict_on_a_waiting_pipe(tmp_path, model, spawn, through,
                                                                          signum, status):
    # The main thread waits for more rows. A signal taken by another thread (onnxruntime's, the
    # pipe's reader) only marks it for the main thread, which must look: before, it never did.
    out = tmp_path / "out.csv"
    rows = "lecture_hours,lab_hours\n1,2\n5,3\n"
    if through == "stdin":
        proc = spawn([*EDGELR, "predict", str(model), "-", "-o", str(out)], stdin=subprocess.PIPE)
        pipe = proc.stdin
    else:
        fifo = tmp_path / "rows.csv"
        os.mkfifo(fifo)
        proc = spawn([*EDGELR, "predict", str(model), str(fifo), "-o", str(out)])
        pipe = fifo_writer(fifo)
    with pipe:
        pipe.write(rows)
        pipe.flush()
        # The two rows answered (a pipe's output is flushed after each block): predict waits for more.
        wait_for(lambda: catches(proc.pid, signal.SIGTERM) and answered(tmp_path), proc)
        time.sleep(0.2)  # back in its wait
        signal_a_thread_not_main_and_wait(proc, signum, f"predict on a {through}")
    assert proc.returncode == status, proc.stderr.read()
    assert not out.exists()
    assert leftovers(tmp_path) == []


@pytest.mark.skipif(not (sys.platform.startswith("linux") and hasattr(ctypes.CDLL(None), "tgkill")),
                    reason="needs Linux and glibc's tgkill (2.30 and later)")
@pytest.mark.parametrize("waiting", ["for a named pipe's writer", "to write to a stalled reader"])
@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_another_thread_got_still_ends_predict_waiting_in_an_open_or_a_write(tmp_path, model, spawn,
                                                                                       waiting, signum, status):
    # Waiting for a writer that never opens the pipe, predict waits in its open; writing its rows to a
    # pipe nobody reads, in a write once the pipe is full. Both waits were the main thread's, deaf to a
    # signal the kernel gave another thread (both tests hung); now a thread of its own waits in each.
    data, out = tmp_path / "rows.csv", tmp_path / "out.csv"
    if waiting == "for a named pipe's writer":
        os.mkfifo(data)
        args = ["-o", str(out)]
    else:
        data.write_text("lecture_hours,lab_hours\n" + "1.5,2.25\n4.75,3\n" * 100_000)  # ~5 MB of rows out
        args = []  # to stdout, which the test never reads
    proc = spawn([*EDGELR, "predict", str(model), str(data), *args])
    wait_for(lambda: catches(proc.pid, signal.SIGTERM) and len(os.listdir(f"/proc/{proc.pid}/task")) > 1, proc)
    time.sleep(2.0)  # in its wait
    signal_a_thread_not_main_and_wait(proc, signum, f"predict waiting {waiting}")
    assert proc.returncode == status, proc.stderr.read()
    assert not out.exists()
    assert leftovers(tmp_path) == []


@pytest.mark.skipif(not (sys.platform.startswith("linux") and hasattr(ctypes.CDLL(None), "tgkill")),
                    reason="needs Linux and glibc's tgkill (2.30 and later)")
@pytest.mark.parametrize("command", ["train", "report"])
@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_another_thread_got_still_ends_train_on_a_waiting_named_pipe(tmp_path, spawn, command, signum,
                                                                             status):
    # train and report read the whole table before they fit: here the pipe's writer stops half-way.
    fifo, out = tmp_path / "rows.csv", tmp_path / "m.pt"
    os.mkfifo(fifo)
    args = ["-o", str(out)] if command == "train" else ["--label", "passed", "-o", str(tmp_path / "report")]
    model = []
    if command == "report":
        subprocess.run([*EDGELR, "train", "--val-fraction", "0", "-o", str(tmp_path / "s.pt")], check=True,
                       capture_output=True)
        model = [str(tmp_path / "s.pt")]
    proc = spawn([*EDGELR, command, *model, str(fifo), *args])
    with fifo_writer(fifo) as pipe:
        pipe.write("lecture_hours,lab_hours,passed\n1,2,0\n5,3,1\n")
        pipe.flush()
        wait_for(lambda: catches(proc.pid, signal.SIGTERM) and len(os.listdir(f"/proc/{proc.pid}/task")) > 1, proc)
        time.sleep(1.0)  # in its wait for the rest of the rows
        signal_a_thread_not_main_and_wait(proc, signum, f"{command} on a named pipe")
    assert proc.returncode == status, proc.stderr.read()
    assert not out.exists() and not (tmp_path / "report").exists()
    assert leftovers(tmp_path) == []


def test_sigterm_during_predict_on_a_large_file(tmp_path, model, spawn):
    # 10M rows (~80 MB, a couple of seconds of scoring): the signal lands while the output is being written.
    data, out = tmp_path / "big.csv", tmp_path / "out.csv"
    with open(data, "w") as f:
        f.write("lecture_hours,lab_hours\n")
        block = "1.5,2.25\n4.75,3\n" * 50_000
        for _ in range(100):
            f.write(block)
    proc = spawn([*EDGELR, "predict", str(model), str(data), "-o", str(out)])
    wait_for(lambda: catches(proc.pid, signal.SIGTERM) and leftovers(tmp_path), proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert not out.exists()
    assert leftovers(tmp_path) == []


def test_sigterm_during_training_leaves_the_earlier_checkpoint(tmp_path, spawn):
    out = tmp_path / "model.pt"
    out.write_bytes(b"earlier checkpoint")
    # sgd for far more epochs than the test waits: SIGTERM lands mid-fit.
    proc = spawn([*EDGELR, "train", "--optimizer", "sgd", "--epochs", "100000000", "-o", str(out)])
    wait_for(lambda: catches(proc.pid, signal.SIGTERM), proc)
    time.sleep(0.5)  # into the imports, where the signal must wait for them to finish
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert out.read_bytes() == b"earlier checkpoint"
    assert leftovers(tmp_path) == []


def test_an_interruption_something_swallowed_still_keeps_the_output_out(tmp_path, monkeypatch):
    # The handler raised, library code swallowed the exception, and the command went on
    # to its end: the output must still not be put in place.
    monkeypatch.setattr(interrupts, "_received", [signal.SIGTERM])
    target = tmp_path / "out.txt"
    with pytest.raises(interrupts.Terminated), fileio.atomic_path(target) as tmp:
        tmp.write_text("finished anyway")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_handled_interruption_is_forgotten_when_the_command_ends(tmp_path):
    # In one process (CliRunner, a notebook) the next command starts afresh, with the earlier handlers.
    before = signal.getsignal(signal.SIGINT)
    with interrupts.catch_interruptions():
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    assert signal.getsignal(signal.SIGINT) is before
    with fileio.atomic_path(tmp_path / "later.txt") as tmp:
        tmp.write_text("written")
    assert (tmp_path / "later.txt").read_text() == "written"


def test_a_signal_sent_again_after_the_command_ended_does_not_kill_the_process():
    """A SIGTERM that arrived in an import is sent again 50 ms later; when the command has ended by then
    (its handlers handed back), nothing is sent: the default action would turn exit 143 into a kill."""
    code = (
        "import os, signal, sys, time\n"
        "from edgelr import interrupts\n"
        "interrupts._unsafe = lambda frame: True  # as if the signal landed inside an import\n"
        "interrupts._RETRY_SECONDS = 0.2\n"
        "with interrupts.catch_interruptions():\n"
        "    os.kill(os.getpid(), signal.SIGTERM)  # deferred: a retry is pending\n"
        "    time.sleep(0.01)\n"
        "time.sleep(0.5)  # the retry's moment has passed\n"
        "print('alive')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, (result.returncode, result.stderr)
    assert result.stdout.strip() == "alive"


def test_a_threaded_reader_closed_early_lets_its_writer_go_and_raises_its_error_again(tmp_path):
    fifo = tmp_path / "rows.csv"
    os.mkfifo(fifo)
    ended = []

    def write() -> None:
        try:
            with open(fifo, "wb") as out:
                for _ in range(400):  # 25 MB: far past the pipe's buffer and the reader's reads ahead
                    out.write(b"x" * 65_536)
        except BrokenPipeError:
            ended.append("broken pipe")

    writer = threading.Thread(target=write)
    writer.start()
    reader = io.BufferedReader(interrupts.ThreadedReader(str(fifo)))
    assert reader.read(10) == b"x" * 10
    reader.close()
    writer.join(10)
    assert not writer.is_alive() and ended == ["broken pipe"]
    with pytest.raises(IsADirectoryError):
        interrupts.ThreadedReader(str(tmp_path))


def reading_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name in ("edgelr read", "edgelr pipe")]


def wait_until_gone(threads: list[threading.Thread], seconds: float = 10.0) -> None:
    for thread in threads:
        thread.join(seconds)
    assert not [t for t in threads if t.is_alive()], "a reading thread was left blocked after its reader left"


def test_live_batches_left_early_let_their_reading_thread_go():
    # A library caller stops after one batch of an endless source: the thread that read ahead used to
    # stay blocked in its queue's put for good.
    from edgelr.streams import batches

    before = set(reading_threads())
    rows = batches(iter(range(10**12)), live=True, width=1)
    assert next(rows)[:3] == [0, 1, 2]
    started = [t for t in reading_threads() if t not in before]
    assert started
    rows.close()
    wait_until_gone(started)


@pytest.mark.parametrize("row", [b"1,2\n", b'"1",2\n'])  # the fast parse; a quote: the exact reader's
def test_a_live_pipe_left_early_lets_its_reading_threads_go_while_its_writer_is_quiet(row):
    # The writer writes more than the threads read ahead, then goes quiet (a sensor, `tail -f`) with the
    # pipe open. Left early, each thread must end without starting another read: one would wait on the
    # quiet pipe, holding the handle's lock, and the caller's close of the handle with it.
    from edgelr.pipes import piped_blocks

    read_end, write_end = os.pipe()
    quiet, ended = threading.Event(), []

    def write() -> None:
        with open(write_end, "wb") as out:
            out.write(b"lecture_hours,lab_hours\n")
            with contextlib.suppress(BrokenPipeError):
                for _ in range(100):  # ~3.5 MB, past the threads' queues and the pipe's buffer
                    out.write(row * 4096)
                quiet.wait(30)  # the pipe open, nothing written
            ended.append(True)

    writer = threading.Thread(target=write)
    writer.start()
    before = set(reading_threads())
    handle = open(read_end, "rb")
    blocks = piped_blocks(handle, "stdin", True, numeric=["lecture_hours", "lab_hours"], allow_missing=False)
    assert next(blocks).numbers[0].tolist() == [1.0, 2.0]
    time.sleep(0.5)  # the threads read ahead until their queues are full
    started = [t for t in reading_threads() if t not in before]
    assert started
    blocks.close()
    wait_until_gone(started, seconds=3.0)
    closing = threading.Thread(target=handle.close)
    closing.start()
    closing.join(3.0)
    quiet.set()
    writer.join(10)
    assert not closing.is_alive(), "closing the handle waited on a read of the quiet pipe"
    assert ended == [True]


def test_a_read_ahead_closed_makes_nothing_more():
    # Its producer waits to hand on item 2 (item 1 queued): the close makes room for that put, and
    # then nothing more may be made. Made, the next item would be a read, which on a quiet pipe waits.
    made = []

    def produce():
        for i in range(100):
            made.append(i)
            yield i

    ahead = interrupts.ReadAhead(produce, 1)
    assert ahead.get() == 0
    time.sleep(0.3)
    assert made == [0, 1, 2]
    ahead.close()
    time.sleep(0.3)
    assert made == [0, 1, 2]


def test_a_wait_for_a_read_ahead_ends_when_it_is_closed():
    # A reader of a reader (the exact reader's records read from the fast parse's kept bytes) waits in
    # the first one's get on a thread of its own: closed, that get ends too, with END.
    release = threading.Event()

    def produce():
        release.wait(30)
        yield b"late"

    ahead = interrupts.ReadAhead(produce, 1)
    got = []
    waiter = threading.Thread(target=lambda: got.append(ahead.get()))
    waiter.start()
    time.sleep(0.2)
    ahead.close()
    waiter.join(5)
    release.set()
    assert not waiter.is_alive() and got == [interrupts.ReadAhead.END]


def test_a_read_ahead_gives_items_in_order_then_the_end_or_its_error_each_time():
    ahead = interrupts.ReadAhead(lambda: iter([1, 2, 3]), 2)
    assert [ahead.get(), ahead.get(), ahead.get()] == [1, 2, 3]
    assert ahead.get() is interrupts.ReadAhead.END and ahead.get() is interrupts.ReadAhead.END

    def failing():
        yield 1
        raise OSError("the disk went")

    ahead = interrupts.ReadAhead(failing, 4)
    time.sleep(0.2)  # both queued: arrived() gives the item, the error waits for get
    assert list(ahead.arrived()) == [1]
    for _ in range(2):
        with pytest.raises(OSError, match="the disk went"):
            ahead.get()


def test_a_threaded_writer_writes_every_text_in_order_and_raises_its_readers_going_away():
    read_end, write_end = os.pipe()
    got = []
    reader = threading.Thread(target=lambda: got.append(read_all(read_end)))
    reader.start()
    out = interrupts.ThreadedWriter(write_end, "utf-8")
    os.close(write_end)  # the writer keeps a copy of its own
    texts = [f"{i},é\n" * (i % 7 + 1) for i in range(3000)]  # more than a pipe holds, in many writes
    for text in texts:
        assert out.write(text) == len(text)
    out.close()
    reader.join(10)
    assert got[0].decode("utf-8") == "".join(texts)

    read_end, write_end = os.pipe()
    out = interrupts.ThreadedWriter(write_end)
    os.close(write_end)
    os.close(read_end)  # the reader went away
    out.write("a,b\n")
    with pytest.raises(BrokenPipeError):
        out.flush()
    with pytest.raises(BrokenPipeError):  # and again
        out.write("c,d\n")


def read_all(fd: int) -> bytes:
    with open(fd, "rb") as handle:
        return handle.read()


def test_rows_before_an_error_reach_a_piped_stdout_as_they_reach_any_other(tmp_path, model):
    # On a pipe, predict's rows go through a writer thread: the batches scored before a bad cell must
    # still reach the reader before the error ends the process.
    from click.testing import CliRunner

    from edgelr.cli import main

    data = tmp_path / "rows.csv"
    data.write_text("lecture_hours,lab_hours\n" + "1.5,2.25\n" * 300_000 + "x,1\n")
    piped = subprocess.run([*EDGELR, "predict", str(model), str(data)], capture_output=True, text=True)
    direct = CliRunner().invoke(main, ["predict", str(model), str(data)])
    assert piped.returncode == direct.exit_code == 1
    assert "line 300002, column 'lecture_hours'" in piped.stderr
    assert piped.stdout.count("\n") > 200_000 and piped.stdout == direct.stdout


def test_a_threaded_writer_waits_for_room_on_a_non_blocking_pipe():
    # A parent may hand over stdout non-blocking: a write to the full pipe then fails with EAGAIN
    # (BlockingIOError) instead of waiting. The writer's thread waits for room and goes on.
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    got = []

    def slow_reader() -> None:
        time.sleep(0.3)  # the pipe fills first
        got.append(read_all(read_end))

    reader = threading.Thread(target=slow_reader)
    reader.start()
    with interrupts.ThreadedWriter(write_end) as out:
        os.close(write_end)
        for i in range(40):
            out.write(f"{i}," * 10_000 + "\n")
    reader.join(10)
    assert got[0].decode() == "".join(f"{i}," * 10_000 + "\n" for i in range(40))
    with pytest.raises(ValueError, match="closed"):
        out.write("late\n")


def test_a_read_ahead_hands_on_none_as_any_item():
    ahead = interrupts.ReadAhead(lambda: [1, None, 2], 4)
    assert [ahead.get() for _ in range(4)] == [1, None, 2, interrupts.ReadAhead.END]


def test_rows_before_a_bad_line_on_a_pipe_are_answered_then_the_error_ends_predict(model):
    # The exact reader's records come from a thread: its error arrives after the rows before it, which
    # are scored and written first, whatever the timing of the two threads.
    done = subprocess.run([*EDGELR, "predict", str(model), "-"], capture_output=True, text=True,
                          input="lecture_hours,lab_hours\n1,2\n5,3\n1,2,3\n")
    assert done.returncode == 1 and done.stderr.startswith("Error: stdin, line 4"), done.stderr
    assert done.stdout.splitlines()[0] == "label,probability_0,probability_1"
    assert len(done.stdout.splitlines()) == 3
