"""Run records: one JSON file per run, written atomically, never edited.

A record holds the numbers and everything needed to know how they were measured (principle 3 of
the design): the resolved config and its hash, git sha, seed, split and item count, the protocol
of every metric, rate, checkpoint hash, hardware and wall time. Its path is derived from the
suite, the tokenizer id and the config hash, so a rerun of the same config finds it and skips.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

# Config fields that say where or whether to run, not what is measured: left out of the hash.
_NOT_HASHED = ("output_dir", "leaderboard_dir", "redo", "device", "eval_shards", "eval_shard")


@dataclass
class RunRecord:
    suite: str
    tokenizer: str
    arch: str
    config_hash: str
    git_sha: str
    seed: int
    split: str
    num_items: int
    metrics: dict[str, Any]
    unavailable: dict[str, str]
    protocol: dict[str, Any]
    rate: dict[str, Any]
    model: dict[str, Any]
    checkpoint_sha256: str | None
    train: dict[str, Any]
    wall_time_s: float
    hardware: dict[str, Any]
    config: dict[str, Any]
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))


def config_hash(config: dict[str, Any]) -> str:
    """sha256 (12 hex digits) of the canonical JSON of the config, without where-to-run fields."""
    measured = {k: v for k, v in config.items() if k not in _NOT_HASHED}
    return hashlib.sha256(json.dumps(measured, sort_keys=True).encode()).hexdigest()[:12]


def record_path(output_dir: str | Path, suite: str, tokenizer: str, hash_: str) -> Path:
    return Path(output_dir) / suite / "records" / f"{tokenizer}-{hash_}.json"


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``: readers see the
    old file or the new one, never a half-written one (a killed run leaves at most a stray ``.tmp``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_record(record: RunRecord, path: Path) -> None:
    atomic_write_bytes(path, (json.dumps(asdict(record), indent=2, sort_keys=True) + "\n").encode())


def read_records(folder: str | Path) -> list[dict[str, Any]]:
    """All records under ``folder`` (recursively), sorted by path."""
    return [json.loads(p.read_text()) for p in sorted(Path(folder).rglob("records/*.json"))]


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def git_sha() -> str:
    """The commit of the code that ran, with ``-dirty`` when the tree had uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def hardware(device: torch.device) -> dict[str, Any]:
    info = {
        "device": str(device),
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
