"""Atomic writes: the user's umask, no half-written files, and no litter from killed writers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

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
