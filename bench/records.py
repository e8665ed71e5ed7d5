"""Run records: one JSON file per run, written atomically, never edited.

A record holds the numbers and everything needed to know how they were measured (principle 3 of
the design): the resolved config and its hash, git sha, seed, split and item count, the protocol
of every metric, rate, checkpoint hash, hardware and wall time. Its path is derived from the
suite, the tokenizer id and the config hash, so a rerun of the same config finds it and skips.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from .files import atomic_write_bytes

# Config fields that do not change the numbers: where or whether to run, how fast, which other runs
# a suite makes, what its page shows. Everything else (data, training, evaluation protocol, threads,
# tokenizer, seed) is hashed: two runs with the same hash measure the same thing.
NOT_MEASURED = (
    "output_dir", "leaderboard_dir", "redo", "reevaluate", "device", "eval_shards", "eval_shard",
    "suite.description", "suite.tokenizers", "suite.seeds", "suite.references", "suite.dataset.max_skipped",
    "suite.train.checkpoint_every", "suite.train.num_workers",
    "suite.eval.batch_size", "suite.eval.num_workers", "suite.eval.samples", "suite.eval.fid_weights",
)  # fmt: skip
# Fields added to the schema after records were published, with the value that reproduces what those
# records measured: at that value a field is left out, so earlier configs keep their hash and protocol.
ADDED_AT_DEFAULT = {
    "tokenizer.recipe.adversarial.discriminator_input": "reuse",
    "tokenizer.recipe.perceptual.dropout": False,
}


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
    data: dict[str, Any] = field(default_factory=dict)  # items evaluated, skipped (first files named), upsampled, padded
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))


def measured_fields(config: dict[str, Any], *, without: tuple[str, ...] = ()) -> dict[str, Any]:
    """The config as flat dotted keys (``suite.train.steps``), without `NOT_MEASURED`, ``without`` and
    the `ADDED_AT_DEFAULT` fields at their default."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if prefix in NOT_MEASURED or prefix in without or (prefix in ADDED_AT_DEFAULT and ADDED_AT_DEFAULT[prefix] == node):
            return
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else key)
        else:
            flat[prefix] = node

    walk(config, "")
    return flat


def config_hash(config: dict[str, Any], *, without: tuple[str, ...] = ()) -> str:
    """sha256 (12 hex digits) of the canonical JSON of the config's measured fields."""
    return hashlib.sha256(json.dumps(measured_fields(config, without=without), sort_keys=True).encode()).hexdigest()[:12]


def protocol_hash(config: dict[str, Any]) -> str:
    """The config hash without the seed: records of one protocol at different seeds share it."""
    return config_hash(config, without=("seed",))


def make_record(
    *, config: dict[str, Any], hash_: str, model, item_shape: tuple[int, ...], num_items: int, data: dict[str, Any], metrics: dict[str, Any],
    metric_protocols: dict[str, str], unavailable: dict[str, str], checkpoint_sha256: str, train: dict[str, Any],
    wall_time_s: float, device: torch.device,
) -> RunRecord:  # fmt: skip
    """The record of one finished run: ``config`` is the resolved run config, ``model`` the evaluated
    `Tokenizer` (its protocol gives the rate), ``metrics`` the flat metric values."""
    suite, tokenizer, dataset = config["suite"], config["tokenizer"], config["suite"]["dataset"]
    return RunRecord(
        suite=suite["name"],
        tokenizer=tokenizer["id"],
        arch=tokenizer["arch"],
        config_hash=hash_,
        git_sha=git_sha(),
        seed=config["seed"],
        split=dataset["eval_split"],
        num_items=num_items,
        metrics=metrics,
        unavailable=unavailable,
        protocol={
            "dataset": dataset["kind"],
            "root": dataset["root"],
            "split": dataset["eval_split"],
            "num_items": num_items,
            "input_shape": list(item_shape),
            "preprocessing": dataset["preprocessing"],
            "center_crop": dataset["center_crop"],
            "max_items": dataset["max_items"],
            "precision": suite["eval"]["precision"],
            "metrics": metric_protocols,
            "eval_shards": config["eval_shards"],
            "threads": suite["threads"],
        },
        rate=model.rate(item_shape),
        model={"parameters": sum(p.numel() for p in model.parameters()), "family": model.family, "paper": model.paper},
        checkpoint_sha256=checkpoint_sha256,
        train=train,
        wall_time_s=wall_time_s,
        hardware=hardware(device),
        config=config,
        data=data,
    )


def record_path(output_dir: str | Path, suite: str, tokenizer: str, hash_: str) -> Path:
    return Path(output_dir) / suite / "records" / f"{tokenizer}-{hash_}.json"


def write_record(record: RunRecord, path: Path) -> None:
    atomic_write_bytes(path, (json.dumps(asdict(record), indent=2, sort_keys=True) + "\n").encode())


def read_records(folder: str | Path) -> list[dict[str, Any]]:
    """All records under ``folder`` (recursively), sorted by path."""
    return [json.loads(p.read_text()) for p in sorted(Path(folder).rglob("records/*.json"))]


# What `python -m bench.leaderboard` generates in the checkout: the pages, their figures and listening
# samples (git pathspecs; `*` stops at `/`). Changing them changes no number, so they leave a record clean.
GENERATED = ("leaderboards/*.md", "leaderboards/*/*.png", "leaderboards/*/audio/*.flac")
CHECKOUT = Path(__file__).resolve().parent.parent


def git_sha(root: Path = CHECKOUT) -> str:
    """The commit of the code that ran, with ``-dirty`` when the tree had uncommitted changes other
    than `GENERATED` files (untracked files count, one by one)."""
    exclude = [f":(top,glob,exclude){pattern}" for pattern in GENERATED]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        status = ["git", "status", "--porcelain", "--untracked-files=all", "--", ":(top)", *exclude]
        dirty = subprocess.run(status, cwd=root, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


# CPU features that choose between kernels in torch (its ATen CPU capability) and in oneDNN / MKL:
# two CPUs that agree on these (and on vendor, family and model) run the same float operations.
KERNEL_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_vnni",
    "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve", "sve2",
)


def cpu_identity() -> dict[str, Any]:
    """The CPU as far as it decides float results: model name, vendor, family / model / stepping (a
    virtual machine may name every CPU "Intel(R) Xeon(R) Processor"), the instruction-set flags
    that select kernels, and torch's CPU capability (the ATen kernels it dispatches to)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip():
                break  # the first processor's block is enough
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    return {
        "model_name": fields.get("model name") or platform.processor() or platform.machine(),
        "vendor": fields.get("vendor_id") or fields.get("CPU implementer", ""),
        "family": fields.get("cpu family", ""),
        "model": fields.get("model") or fields.get("CPU part", ""),
        "stepping": fields.get("stepping", ""),
        "kernel_flags": [flag for flag in KERNEL_FLAGS if flag in flags],
        "torch_capability": torch.backends.cpu.get_cpu_capability(),
    }


def describe_cpu(identity: dict[str, Any]) -> str:
    """One line naming a `cpu_identity`: ``Intel(R) Xeon(R) Processor (GenuineIntel family 6 model 207,
    torch AVX512 kernels; avx2 fma avx512f ...)``."""
    kind = " ".join(f"{key} {identity[key]}" for key in ("family", "model") if identity.get(key))
    return f"{identity['model_name']} ({' '.join(filter(None, [identity.get('vendor'), kind]))}, torch {identity['torch_capability']} kernels; {' '.join(identity['kernel_flags'])})"


def hardware(device: torch.device) -> dict[str, Any]:
    identity = cpu_identity()
    info = {
        "device": str(device),
        "cpu": identity["model_name"],
        "cpu_identity": identity,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
