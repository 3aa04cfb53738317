"""Sharing one list of files among the processes that torchrun starts, on one machine or several.

``torchrun --nproc_per_node N -m swinir restore DIR -o OUT`` starts N copies of the command; each reads its
place from the environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE) and takes every
WORLD_SIZE-th file of the list, starting at its RANK. The list is the same on every process (it comes from the
same arguments and folders), so no message is needed to split it, and striding spreads a folder's large and
small files evenly. A gloo process group is used for two small exchanges only: at the start, to check that
every process sees the same list (machines that mount the inputs differently would otherwise restore some
files twice and others never); at the end, to gather each process's report, so that rank 0 prints one summary
and every process exits 1 when any file anywhere failed.

A plain process (no torchrun) is rank 0 of 1, and nothing here touches torch.distributed.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import signal
import sys
from collections.abc import Sequence
from types import TracebackType
from typing import Any, TypeVar

from .errors import SwinIRError
from .processes import ProcessPlace

_T = TypeVar("_T")
# The final gather waits for the slowest process, which may restore videos for days; a process that dies
# closes its connections (and torchrun stops the others), so a long timeout does not hang a broken run.
GATHER_TIMEOUT = datetime.timedelta(days=7)


def digest(names: Sequence[str]) -> str:
    """A short fingerprint of a list of names, to compare the lists processes see."""
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


class ProcessGroup:
    """The gloo group of a sharded run, for :meth:`require_same` and :meth:`gather` (no-ops when alone).

    A group already set up by the caller is used and left alone; one created here is destroyed on exit.
    """

    def __init__(self, shard: ProcessPlace) -> None:
        self.shard = shard
        self._created = False

    def __enter__(self) -> ProcessGroup:
        if self.shard.active:
            import torch.distributed as dist

            if not dist.is_initialized():
                missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
                if missing:
                    raise SwinIRError(f"WORLD_SIZE is {self.shard.world_size} but {' and '.join(missing)} not set; "
                                      "start the processes with torchrun")
                try:
                    dist.init_process_group("gloo", timeout=GATHER_TIMEOUT)
                except (RuntimeError, ValueError) as err:
                    reason = " ".join(str(err).split())[:200]
                    raise SwinIRError(f"cannot join the other processes ({reason}); check --rdzv_endpoint and "
                                      "that every machine can reach it") from err
                self._created = True
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._created:
            import torch.distributed as dist

            dist.destroy_process_group()

    def gather(self, value: Any) -> list[Any]:
        """Every process's ``value`` (picklable), in rank order, on every process."""
        if not self.shard.active:
            return [value]
        import torch.distributed as dist

        values: list[Any] = [None] * self.shard.world_size
        dist.all_gather_object(values, value)
        return values

    def require_same(self, value: str, what: str) -> None:
        """Refuse, on every process, a run whose processes disagree on ``value`` (e.g. the input list)."""
        values = self.gather(value)
        if len(set(values)) > 1:
            ranks = [rank for rank, other in enumerate(values) if other != values[0]]
            raise SwinIRError(f"rank(s) {', '.join(map(str, ranks))} see other {what} than rank 0; put the inputs "
                              "on a filesystem that every machine mounts at the same path")

    def finish(self, code: int) -> None:
        """End a sharded process with the run's ``code``, once every process has got here.

        torchrun stops the remaining processes as soon as one exits with 1, so the processes wait for each
        other (rank 0 has printed the summary by then) and leave at once, skipping Python's shutdown: a
        process caught in it by torchrun's SIGTERM would report the signal instead of the outcome. Every
        output is already complete and fsynced. A plain process returns and exits normally.
        """
        if not self.shard.active:
            return
        import torch.distributed as dist

        signal.signal(signal.SIGTERM, lambda signum, frame: _leave(code))
        dist.barrier()
        _leave(code)


def _leave(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
