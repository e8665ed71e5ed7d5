"""Preemption and time limits: a stop signal becomes a flag that training and evaluation check between
steps; they save their state atomically, then `StopSignals.stop` requeues the job and exits.

Signals: SIGTERM (preemption, ``scancel --signal=TERM``), SIGUSR1, and submitit's preemption
signal (SIGUSR2, sent ``signal_delay_s`` before the time limit or on preemption). Under submitit
(its SLURM and local executors, Hydra's launchers included) submitit's signal goes on to submitit's
own handler, which requeues the task (counting time-outs against ``max_num_timeout``). Any other
stop under SLURM requeues with ``scontrol requeue``; the requeued task reruns the same command and
resumes from the saved state. Outside SLURM the run stops with one error line; running the same
command again resumes.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from typing import NoReturn

from . import distributed
from .errors import BenchError

log = logging.getLogger("bench.preemption")
SUBMITIT_SIGNAL = getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))
SIGNALS = tuple(dict.fromkeys((signal.SIGTERM, signal.SIGUSR1, SUBMITIT_SIGNAL)))
REQUEUED_EXIT_CODE = 3


class Preempted(BenchError):
    """Stopped by a signal after saving the state; the same command resumes."""


class StopSignals:
    """``with StopSignals() as stop:`` catches the stop signals (main thread only) until the block ends;
    ``stop.requested()`` says (on every rank) whether one arrived."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._on_signal) for sig in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _on_signal(self, signum: int, frame) -> None:
        log.warning("received %s: stopping at the next step boundary", signal.Signals(signum).name)
        if self.received != SUBMITIT_SIGNAL:  # submitit's signal decides how to requeue
            self.received = signum

    def requested(self) -> bool:
        return distributed.any_rank(self.received is not None)

    def stop(self, saved: str) -> NoReturn:
        """Called once the state is saved (``saved`` says where): requeue and exit."""
        name = signal.Signals(self.received).name if self.received else "a stop request"
        previous = self._previous.get(self.received) if self.received else None
        self.__exit__()
        job = os.environ.get("SLURM_JOB_ID")
        by_submitit = self.received == SUBMITIT_SIGNAL and callable(previous) and os.environ.get("SUBMITIT_EXECUTOR")
        if (by_submitit or job) and distributed.is_writer():
            log.warning("%s: saved %s; requeueing %s", name, saved, "through submitit" if by_submitit else f"SLURM job {job}")
        if by_submitit:
            previous(self.received, None)  # submitit: re-pickle the task, requeue, sys.exit
        if job:
            if distributed.is_writer():
                subprocess.run(["scontrol", "requeue", job], check=False)
            raise SystemExit(REQUEUED_EXIT_CODE)  # not an Exception: submitit writes no failed result
        raise Preempted(f"stopped by {name} at {saved}; run the same command again to resume")
