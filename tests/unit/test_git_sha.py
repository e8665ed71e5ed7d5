"""A record's git sha is ``-dirty`` for changed code, data or records, never for the pages, figures
and listening samples `bench.leaderboard` generates."""

from __future__ import annotations

import subprocess

import pytest

from bench.records import git_sha


def git(root, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root, check=True, capture_output=True)


@pytest.mark.parametrize(
    ("path", "dirty"),
    [
        ("leaderboards/builtin.md", False),
        ("leaderboards/new_suite.md", False),
        ("leaderboards/builtin/rate_distortion.png", False),
        ("leaderboards/builtin_speech/audio/original-0.flac", False),
        ("leaderboards/records/builtin/records/a.json", True),
        ("leaderboards/builtin/notes.txt", True),
        ("leaderboards/builtin/deeper/figure.png", True),
        ("bench/run.py", True),
    ],
)
def test_only_generated_pages_leave_the_sha_clean(tmp_path, path, dirty):
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "run.py").write_text("code\n")
    (tmp_path / "leaderboards").mkdir()
    (tmp_path / "leaderboards" / "builtin.md").write_text("page\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "first")
    assert not git_sha(tmp_path).endswith("-dirty")
    changed = tmp_path / path
    changed.parent.mkdir(parents=True, exist_ok=True)
    with changed.open("a") as file:
        file.write("changed\n")
    assert git_sha(tmp_path).endswith("-dirty") == dirty
