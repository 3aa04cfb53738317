"""Lanes and CPU accounting: child processes pinned to cores, slices counted in CPU time, stop signals.

A lane is a thread that runs one child process at a time (a trainer, or one of the campaign's own commands)
pinned to its own core with a fixed number of threads, so two lanes never share a core. A slice ends when
the child has used its CPU seconds (so a paused campaign or a busy machine does not shorten it), at a
deadline, or on SIGINT/SIGTERM (:class:`Stop`); the trainer then checkpoints on its SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .bundles import Bundle

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SIGTERM_EXIT = 143  # a trainer stopped by SIGTERM, after its checkpoint: a slice that ended as planned


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class Stop:
    """Set by SIGINT/SIGTERM: the lanes stop their trainers (which checkpoint) and finish."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.event.set())

    @classmethod
    def installed(cls) -> Stop:
        """A stop flag that this process's SIGINT and SIGTERM set."""
        stop = cls()
        stop.install()
        return stop


@dataclass(frozen=True)
class Lanes:
    """``count`` lanes over this process's cores, each with ``threads`` of them (the first one its own)."""

    cores: tuple[int, ...]
    count: int
    threads: int

    @classmethod
    def plan(cls, parallel: int, jobs: int | None = None) -> Lanes:
        """At most ``parallel`` lanes (and ``jobs``), at most one per core; the cores shared out evenly."""
        cores = tuple(sorted(os.sched_getaffinity(0)))
        count = max(1, min(parallel, len(cores), jobs if jobs is not None else parallel))
        return cls(cores, count, max(1, len(cores) // count))

    def core(self, index: int) -> int | None:
        """The core lane ``index`` pins its children to (None with a single lane: it may use them all)."""
        return self.cores[index * self.threads] if self.count > 1 else None

    def run(self, lane: Callable[[int], None], stagger: float = 0.0) -> None:
        """Run ``lane(index)`` in each lane's thread (started ``stagger`` seconds apart) until all return."""
        workers = [threading.Thread(target=lane, args=(i,), daemon=True) for i in range(self.count)]
        for w in workers:
            w.start()
            time.sleep(stagger)
        for w in workers:
            while w.is_alive():
                w.join(timeout=1.0)  # a short join keeps the main thread responsive to signals


def pinned_to(core: int | None) -> Callable[[], None]:
    """A child's first act: its own process group (the campaign's signals reach it only as the campaign
    decides) and, in a lane, that lane's core, so two lanes never share one."""
    def pin() -> None:
        os.setpgrp()
        if core is not None:
            os.sched_setaffinity(0, {core})
    return pin


def train_slice(command: list[str], log_path: Path, core: int | None, cpu_seconds: float, deadline: float,
                stop: Stop) -> int:
    """Run one trainer until it used ``cpu_seconds`` of CPU (or the deadline / a stop), then SIGTERM it."""
    with open(log_path, "a") as log:
        log.write(f"\n# {datetime.now():%Y-%m-%d %H:%M} {' '.join(command)}\n")
        log.flush()
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, preexec_fn=pinned_to(core))
        while proc.poll() is None:
            try:
                used = process_cpu_seconds(proc.pid)
            except OSError:
                used = 0.0
            if used >= cpu_seconds or time.time() >= deadline or stop.event.is_set():
                proc.send_signal(signal.SIGTERM)
                break
            time.sleep(5)
        return proc.wait()


def call_campaign(arguments: Sequence[str], core: int | None, threads: int, log_path: Path) -> int:
    """Run one of the campaign's own commands (``python -m tools.campaign``; the child inherits this process's
    working folder and environment, so it finds the package as this one did) pinned to the lane's core, with
    ``threads`` threads, its output appended to the log."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "tools.campaign", *arguments, "--threads", str(threads)]
    with open(log_path, "a") as log:
        return subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, preexec_fn=pinned_to(core), env=env)


def consider_in_process(bundle: Bundle, candidate: Path, core: int | None, threads: int, log_path: Path,
                        note: str) -> int:
    """``consider`` (target rows only) in a child pinned to the lane's core."""
    return call_campaign(["consider", bundle.name, str(candidate), "--note", note, "--target-rows-only"],
                         core, threads, log_path)


def score_in_process(bundle: Bundle, weights: Path, core: int | None, threads: int, out: Path,
                     log_path: Path) -> dict[str, dict[str, float]]:
    """The target rows of ``weights``, measured in a child pinned to the lane's core."""
    call_campaign(["score", bundle.name, str(weights), "--out", str(out)], core, threads, log_path)
    return json.loads(out.read_text()) if out.is_file() else {}
