"""Atomic file writes: write beside the target, rename on success (spec section 8)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edgelr.errors import OutputError
from edgelr.interrupts import raise_if_interrupted


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only on success.

    A failed or interrupted write leaves any earlier file at ``path`` untouched and no
    partial file behind. The temporary file sits in the same folder so that the final
    ``os.replace`` is a rename on one file system, which is atomic.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise OutputError(f"{target}: cannot write there ({exc.strerror or exc}); "
                          "expected a path in a writable folder") from exc
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates the file 0600; give the result the permissions a plain open() would.
    os.chmod(tmp, 0o666 & ~_current_umask())
    try:
        yield tmp
        raise_if_interrupted()  # an interrupted run never puts its output in place, even if it got this far
        os.replace(tmp, target)
    finally:
        # On success the rename already consumed tmp; on any failure remove the leftovers.
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
