"""Where this process sits among the processes torchrun starts, on one machine or several.

torchrun describes each process in its environment (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE); a plain
process is rank 0 of 1. The trainer (data-parallel training) and ``swinir restore`` (files shared out among
processes) both read their place here, so the rules (validation, threads per process, which GPU) are one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from .errors import SwinIRError

_T = TypeVar("_T")


@dataclass(frozen=True)
class ProcessPlace:
    """This process's place among the processes of one run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def prefix(self) -> str:
        """What starts this process's printed lines: ``[rank 1] `` (nothing for a plain process)."""
        return f"[rank {self.rank}] " if self.active else ""

    def take(self, items: Sequence[_T]) -> list[_T]:
        """This process's share: items rank, rank + world_size, ..."""
        return list(items[self.rank :: self.world_size])

    def default_threads(self, *, leave_busy_cores: bool = False) -> int:
        """The CPU cores this process may use, divided among the processes on this machine; with
        ``leave_busy_cores`` (a single process), less the cores other processes keep busy right now
        (:func:`busy_cpus`), so that no thread waits on a core it does not get."""
        cpus = os.sched_getaffinity(0)
        free = len(cpus)
        if leave_busy_cores and self.local_world_size == 1:
            free -= busy_cpus(cpus)
        return max(1, free // self.local_world_size)

    def device(self, device: str) -> str:
        """``cuda`` means this process's own GPU (``cuda:LOCAL_RANK``) when several share a machine."""
        return f"cuda:{self.local_rank}" if self.active and device == "cuda" else device


def busy_cpus(cpus: set[int], interval: float = 0.2) -> int:
    """How many of ``cpus`` are kept busy (over 50 %) by other processes, sampled over ``interval`` seconds.

    PyTorch's threads wait for each other at every operation, so one thread that shares its core with another
    busy process stalls them all: a 2-thread forward beside one busy process took 3x as long as a 1-thread
    one (SwinIR-S, Intel Xeon, 2 cores, 2026-12-05). 0 where the use cannot be read."""
    try:
        import psutil

        per_cpu = psutil.cpu_percent(interval=interval, percpu=True)
    except (ImportError, OSError):
        return 0
    return sum(1 for i in cpus if i < len(per_cpu) and per_cpu[i] > 50.0)


def process_place(environ: Mapping[str, str] = os.environ) -> ProcessPlace:
    """The :class:`ProcessPlace` torchrun describes in the environment; a plain process is rank 0 of 1."""

    def number(key: str, default: int) -> int:
        value = environ.get(key)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            raise SwinIRError(f"{key}={value!r} is not a number; start the processes with torchrun") from None

    world = number("WORLD_SIZE", 1)
    rank = number("RANK", 0)
    local_world = number("LOCAL_WORLD_SIZE", world)
    if world < 1 or not 0 <= rank < world or local_world < 1:
        raise SwinIRError(f"RANK={rank} / WORLD_SIZE={world} / LOCAL_WORLD_SIZE={local_world} do not describe a "
                          "valid process; start the processes with torchrun")
    return ProcessPlace(rank, world, number("LOCAL_RANK", 0), local_world)
