"""Writing files safely: atomic replacement with the user's umask, and no litter.

Every record, checkpoint, page and plot goes through `atomic_write_bytes`: the bytes go to a
temporary file beside the target (``.<name>.tmp-<host>-<pid>-<random>``), are fsynced, given the
permissions a plain ``open(path, "w")`` would give (``0o666 & ~umask``), and renamed over the target.
Readers see the old file or the new one, never half of one. A temporary left by a killed writer is
removed by the next write of the same target: at once when its writer (on this host) is gone, after
a day when it was written from another host. A full disk (or quota) is one line naming the folder
and the bytes the write needed (`reporting_full_disk`), and leaves nothing partial behind.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from .errors import BenchError

_FOREIGN_TEMPORARY_AGE_S = 24 * 3600


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _writer_is_gone(temporary: Path) -> bool:
    try:
        host, pid = temporary.name.rsplit(".tmp-", 1)[1].rsplit("-", 2)[:2]
        pid = int(pid)
    except ValueError:
        return False
    if host != socket.gethostname():
        return time.time() - temporary.stat().st_mtime > _FOREIGN_TEMPORARY_AGE_S
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove the temporaries of ``path`` whose writers died; returns what was removed."""
    removed = []
    for temporary in path.parent.glob(f".{path.name}.tmp-*"):
        try:
            if _writer_is_gone(temporary):
                temporary.unlink()
                removed.append(temporary)
        except FileNotFoundError:  # another cleaner was faster
            continue
    return removed


def atomic_write_bytes(path: str | Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` atomically (see the module docstring)."""
    path = Path(path)
    with reporting_full_disk(path, len(payload)):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-{socket.gethostname()}-{os.getpid()}-")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(payload)
                file.flush()
                os.fchmod(file.fileno(), 0o666 & ~_umask())
                os.fsync(file.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


@contextmanager
def reporting_full_disk(path: Path, size: int):
    """Turn a full disk or quota (``ENOSPC``, ``EDQUOT``) met while writing ``size`` bytes to ``path`` into
    one `BenchError` line naming the folder, the bytes needed and the bytes free."""
    try:
        yield
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        folder = path.parent
        try:
            free = f"{shutil.disk_usage(folder).free} bytes free"
        except OSError:
            free = "free space unknown"
        raise BenchError(f"no space left in {folder}: writing {path.name} needs {size} bytes ({free}); free some space or set output_dir elsewhere") from error


@contextmanager
def exclusive_lock(path: Path):
    """Hold an exclusive ``flock`` on ``path`` (created if needed) for the ``with`` block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
