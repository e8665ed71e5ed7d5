"""``python -m slurm.status <sweep dir>``: the jobs of a sweep at a glance.

One line per task of a Hydra multirun (``hydra/launcher=slurm|local``; its ``.submitit`` folder)
or of any submitit folder: job id, Hydra job number and the overrides that differ between tasks, state (``sacct``, else
``squeue``, else what the files say), the record(s) it wrote or else its log, and for a failed
task the last error line of its log.
"""

from __future__ import annotations

import argparse
import pickle
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

ERROR_LINE = re.compile(r"^(error: |\w*(Error|Exception|Interrupt)\b|submitit ERROR)")


@dataclass
class Task:
    job_id: str  # "<array>_<index>" or "<job>"
    folder: Path

    def file(self, suffix: str) -> Path:
        return self.folder / f"{self.job_id}_0_{suffix}"

    @property
    def submitted(self) -> Path:
        return self.folder / f"{self.job_id}_submitted.pkl"


def find_tasks(root: Path) -> list[Task]:
    """Submitit task folders under ``root`` (``<job>`` or ``<array>_<index>`` holding ``*_submitted.pkl``)."""
    tasks = [Task(p.name[: -len("_submitted.pkl")], p.parent) for p in root.rglob("*_submitted.pkl")]
    return sorted(tasks, key=lambda t: [int(n) if n.isdigit() else n for n in re.split(r"[_.]", t.job_id)])


def scheduler_states(job_ids: list[str]) -> dict[str, str]:
    """``{job id: state}`` from sacct (every job it knows), completed by squeue (pending/running)."""
    jobs = sorted({j.split("_")[0] for j in job_ids})
    states: dict[str, str] = {}
    for command in (["sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", ",".join(jobs)],
                    ["squeue", "-h", "-r", "-o", "%i|%T", "-j", ",".join(jobs)]):  # fmt: skip
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=20)
        except (FileNotFoundError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0:
            for line in out.stdout.splitlines():
                job, _, state = line.partition("|")
                states.setdefault(job.strip(), state.split()[0] if state.split() else "?")
    return states


def hydra_task(task: Task) -> tuple[str, list[str]]:
    """(Hydra job number, overrides) from the submitted pickle of a Hydra launcher task, else ("", [])."""
    try:
        with open(task.submitted, "rb") as file:
            delayed = pickle.load(file)
        overrides, _, number = delayed.args[:3]
        return str(number), list(overrides)
    except Exception:  # not a Hydra task, or unreadable: the other columns still help
        return "", []


def result(task: Task) -> tuple[str, object] | None:
    """submitit's ("success", value) / ("error", traceback) once the task ended, else None."""
    path = task.file("result.pkl")
    if not path.exists():
        return None
    with open(path, "rb") as file:
        return pickle.load(file)


def error_line(task: Task, outcome) -> str:
    """The last line of the task's stderr that states an error (or of the remote traceback)."""
    text = outcome[1] if outcome and outcome[0] == "error" else ""
    for path in (task.file("log.err"), task.file("log.out")):
        if path.exists():
            text += "\n" + path.read_text(errors="replace")
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines()]
    errors = [line for line in lines if ERROR_LINE.match(line)]
    return errors[-1] if errors else ""


def where(task: Task, outcome) -> str:
    """The record paths a Hydra task returned, else the task's stderr log."""
    if outcome and outcome[0] == "success":
        value = getattr(outcome[1], "_return_value", outcome[1])
        if isinstance(value, list) and value and all(isinstance(p, (str, Path)) for p in value):
            return " ".join(str(p) for p in value)
    return str(task.file("log.err"))


def rows(folder: Path) -> list[dict[str, str]]:
    root = folder / ".submitit" if (folder / ".submitit").is_dir() else folder
    tasks = find_tasks(root)
    on_slurm = any(root.glob("**/*_submission.sh"))  # local executor job ids are PIDs: never ask SLURM
    states = scheduler_states([t.job_id for t in tasks]) if tasks and on_slurm else {}
    overrides = {task.job_id: hydra_task(task) for task in tasks}
    shared = set.intersection(*(set(o) for _, o in overrides.values())) if len(tasks) > 1 else set()
    table = []
    for task in tasks:
        outcome = result(task)
        failed_in_hydra = outcome and outcome[0] == "success" and isinstance(getattr(outcome[1], "_return_value", None), BaseException)
        state = states.get(task.job_id) or {None: "UNKNOWN", "success": "COMPLETED", "error": "FAILED"}[outcome and outcome[0]]
        if failed_in_hydra:
            state = "FAILED"
        number, own = overrides[task.job_id]
        failed = state not in ("COMPLETED", "RUNNING", "PENDING", "REQUEUED", "UNKNOWN")
        table.append({
            "job": task.job_id, "task": number, "overrides": " ".join(o for o in own if o not in shared), "state": state,
            "record / log": str(task.file("log.err")) if failed else where(task, outcome),
            "error": (str(outcome[1]._return_value).splitlines() or [""])[-1] if failed_in_hydra else error_line(task, outcome) if failed else "",
        })  # fmt: skip
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a Hydra sweep dir (holding .submitit/) or a submitit folder")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        print(f"error: {args.folder} is not a folder", file=sys.stderr)
        return 2
    table = rows(args.folder)
    if not table:
        print(f"error: no submitit jobs under {args.folder}", file=sys.stderr)
        return 2
    print(tabulate(table, headers="keys", tablefmt="plain"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
