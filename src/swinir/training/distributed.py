"""Distributed plumbing of the trainer: where a process sits, and the few collective calls the loop makes.

A run launched by ``torchrun`` has one process per device (gloo on CPU, nccl on CUDA); a plain process is a
run of one, and every helper here is then a no-op or its trivial result, so the loop never branches on it.
The collectives, all called by every rank at the same point of the loop:

* :func:`agree` : the MAX all-reduce of per-rank flags (a stop signal, a timed checkpoint), so all ranks stop
  or save at the same iteration even when only one got the signal or saw the clock pass;
* :func:`check_replicas_agree`: a checksum of the weights per rank before a save (DDP keeps replicas identical,
  so a difference means a broken setup, caught before it is written);
* :func:`gather_rng_states`: every rank's generator states, for rank 0's checkpoint;
* :func:`barrier`: after rank 0's validation.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..errors import SwinIRError
from ..processes import ProcessPlace, process_place
from .state import capture_rng

DistInfo = ProcessPlace  # the trainer's name for its place among the processes


def init_distributed(device: str) -> tuple[DistInfo, bool]:
    """Join the process group torchrun describes (env WORLD_SIZE/RANK/...); a plain process stays alone.

    Returns the process's place and whether this call created the group (and so should leave it).
    """
    info = process_place()
    if not info.active:
        return info, False
    if dist.is_initialized():
        return info, False
    if device.startswith("cuda"):
        torch.cuda.set_device(info.local_rank)
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return info, True


def leave_distributed(owns_group: bool) -> None:
    """Destroy the process group if :func:`init_distributed` created it (after the last collective call)."""
    if owns_group and dist.is_initialized():
        dist.destroy_process_group()


def resolve_device(device: str, info: DistInfo) -> torch.device:
    """The torch device of ``--device`` for this process (a distributed rank takes ``cuda:LOCAL_RANK``)."""
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SwinIRError("--device cuda: no CUDA device is available to this PyTorch; use --device cpu")
        return torch.device("cuda", info.local_rank if info.active else torch.device(device).index or 0)
    if device != "cpu":
        raise SwinIRError(f"--device must be cpu or cuda[:N], got {device!r}")
    return torch.device("cpu")


def process_threads(configured: int | None, info: DistInfo, device: torch.device) -> int | None:
    """Torch CPU threads for this process: ``train.threads``, else on the CPU the cores this process may use
    (its affinity mask) shared out among the local ranks, so one run uses every core of an idle machine and N
    processes on one machine do not each start a thread per core; None on GPUs (torch's default)."""
    if configured:
        return configured
    if device.type == "cpu":
        return info.default_threads()
    return None


def wrap(module: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """``module`` under DistributedDataParallel in a distributed run (gradients averaged), else itself."""
    if not info.active:
        return module
    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


def agree(info: DistInfo, device: torch.device, *flags: bool) -> tuple[bool, ...]:
    """Each flag, true on every rank when it is true on any."""
    if not info.active:
        return flags
    values = torch.tensor([float(f) for f in flags], device=device)
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return tuple(bool(v) for v in values)


def check_replicas_agree(info: DistInfo, model: nn.Module, device: torch.device) -> None:
    """Raise when the ranks hold different weights (a float64 checksum of the parameters per rank)."""
    if not info.active:
        return
    checksum = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().reshape(1).to(device)
    gathered = [torch.zeros_like(checksum) for _ in range(info.world_size)]
    dist.all_gather(gathered, checksum)
    if any(not torch.equal(g, gathered[0]) for g in gathered):
        raise RuntimeError(f"distributed ranks hold different weights: {[g.item() for g in gathered]}")


def gather_rng_states(info: DistInfo) -> list[dict[str, Any]]:
    """Every rank's generator states (:func:`~swinir.training.state.capture_rng`), in rank order."""
    rng = capture_rng()
    if not info.active:
        return [rng]
    gathered: list[Any] = [None] * info.world_size
    dist.all_gather_object(gathered, rng)
    return gathered


def barrier(info: DistInfo) -> None:
    if info.active:
        dist.barrier()
