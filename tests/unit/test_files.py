"""Atomic writes: the user's umask, no half-written files, no litter from killed writers, a full disk in one line."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys

import pytest
import torch

from bench import checkpoints
from bench.errors import BenchError
from bench.files import atomic_write_bytes


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_files_get_the_users_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "a" / "record.json", b"{}")
    finally:
        os.umask(previous)
    assert (tmp_path / "a" / "record.json").stat().st_mode & 0o777 == mode


def test_a_killed_writers_temporary_is_removed_by_the_next_write(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    target = tmp_path / "record.json"
    stale = tmp_path / f".record.json.tmp-{socket.gethostname()}-{dead}-abc123"
    alive = tmp_path / f".record.json.tmp-{socket.gethostname()}-{os.getpid()}-def456"  # a writer still at work
    other = tmp_path / f".other.json.tmp-{socket.gethostname()}-{dead}-abc123"  # another target's: not ours to judge
    for path in (stale, alive, other):
        path.write_bytes(b"half")
    atomic_write_bytes(target, b"whole")
    assert target.read_bytes() == b"whole"
    assert not stale.exists() and alive.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, alive.name, other.name])


@pytest.mark.parametrize("failing", ["fsync", "write"])
def test_a_full_disk_is_one_line_and_leaves_nothing_partial(tmp_path, monkeypatch, failing):
    target = tmp_path / "checkpoints" / "model.pt"
    atomic_write_bytes(target, b"old")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    class FullFile:  # the file the temporary's handle opens, on a full disk
        def __init__(self, handle, mode):
            self.file = real_fdopen(handle, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        write = full

    real_fdopen = os.fdopen
    if failing == "fsync":
        monkeypatch.setattr(os, "fsync", full)
    else:  # the write itself: through torch.save's checkpoint path
        monkeypatch.setattr(os, "fdopen", FullFile)
    with pytest.raises(BenchError) as caught:
        if failing == "fsync":
            atomic_write_bytes(target, b"x" * 1000)
        else:
            checkpoints.save({"w": torch.zeros(3)}, target)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"no space left in {target.parent}: writing model.pt needs ")
    assert failing != "fsync" or " needs 1000 bytes (" in message
    assert target.read_bytes() == b"old" and sorted(p.name for p in target.parent.iterdir()) == ["model.pt"]
