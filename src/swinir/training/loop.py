"""The training loop: one :class:`Trainer` per process, single-process or DistributedDataParallel.

Per iteration: the learning rate of the step (a pure function of the iteration, :meth:`RunConfig.learning_rate`),
forward under autocast (bf16 on CPU or CUDA, fp16 on CUDA with a GradScaler), the task's loss, backward,
optional gradient clipping, the optimiser step, and the EMA update. The EMA decay is
``min(ema_decay, (1 + i) / (10 + i))`` with ``train.ema_warmup`` (the default), so the average is useful
from the first validations on and reaches ``ema_decay`` (0.999) after ~9,000 iterations.

Checkpoints are written every ``checkpoint.every`` iterations, every ``checkpoint.every_minutes``, at the
end, and on SIGINT/SIGTERM: the running step finishes, the checkpoint is written, and :meth:`Trainer.run`
returns 130 (SIGINT) or 143 (SIGTERM), the shell's codes for those signals, so that a job script can tell
"stopped, resumable" from "finished" (0). A second SIGINT aborts at once without saving.

Exact resume: the checkpoint holds model, EMA, optimiser, scaler, every generator's state and the data
position; batches are pure functions of (seed, iteration, slot) (see :mod:`.data`), and the learning rate
of the iteration. So a run stopped at step k and resumed gives, at step n, bitwise the weights of an
uninterrupted run on the same machine (CPU; CUDA kernels may be non-deterministic).

Distributed: launched by ``torchrun``, one process per device; gloo on CPU, nccl on CUDA. The global batch
``data.batch_size`` is split evenly across ranks (the same samples a single process would draw), gradients
are averaged by DDP, and only rank 0 validates and writes logs, plots and checkpoints. Stop signals and
timed checkpoints are agreed on by all ranks every step (one small all-reduce), so all stop together.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from .. import __version__
from ..checkpoints import check_state_dict, read_checkpoint, save_safetensors
from ..errors import SwinIRError
from ..fileio import write_bytes_atomic
from ..metrics import psnr, quantize, ssim
from .config import RunConfig, apply_overrides, parse_config
from .data import TrainDataset, ValImage, load_validation, make_loader
from .losses import discriminator_loss, generator_adversarial_loss, pixel_loss
from .monitor import BASE_COLUMNS, GAN_COLUMNS, CsvLog, EventWriter, plot_progress
from .state import (
    BEST_WEIGHTS,
    CHECKPOINT_FORMAT,
    capture_rng,
    continued_lineage,
    files_digest,
    latest_checkpoint,
    list_checkpoints,
    remove_temporaries,
    restore_rng,
    save_checkpoint,
    segment_record,
    training_metadata,
)
from .tasks import task_behaviour

EXIT_FINISHED = 0
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
# Keys that may differ when a run is resumed: they change neither the weights nor the data order
# (train.iterations re-spreads fractional milestones over the new budget; see docs/training.md). The starting
# weights (init_weights, continue_from) are read only when a run starts; a resumed run takes its checkpoint's.
SAFE_ON_RESUME = ("train.iterations", "train.threads", "data.num_workers", "data.cache_images", "data.root",
                  "train.init_weights", "train.continue_from", "val.every", "log.", "checkpoint.")


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in a distributed run (all zeros/ones for a single process)."""

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


def init_distributed(device: str) -> tuple[DistInfo, bool]:
    """Join the process group torchrun describes (env WORLD_SIZE/RANK/...); a plain process stays alone.

    Returns the process's place and whether this call created the group (and so should destroy it).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), False
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")),
                    int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    if dist.is_initialized():
        return info, False
    if device.startswith("cuda"):
        torch.cuda.set_device(info.local_rank)
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return info, True


def resolve_device(device: str, info: DistInfo) -> torch.device:
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SwinIRError("--device cuda: no CUDA device is available to this PyTorch; use --device cpu")
        return torch.device("cuda", info.local_rank if info.active else torch.device(device).index or 0)
    if device != "cpu":
        raise SwinIRError(f"--device must be cpu or cuda[:N], got {device!r}")
    return torch.device("cpu")


def config_differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any, Any]]:
    """``(key, old, new)`` for every leaf value that differs between two plain configs."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += config_differences(a, b, name + ".")
        elif a != b:
            out.append((name, a, b))
    return out


def check_resumable(saved: RunConfig, new: RunConfig) -> list[str]:
    """The safe keys that changed; raises when any other key changed (it would not be the same run)."""
    diffs = config_differences(saved.to_dict(), new.to_dict())
    unsafe = [d for d in diffs if not d[0].startswith(SAFE_ON_RESUME)]
    if unsafe:
        shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in unsafe[:5]) + ("; ..." if len(unsafe) > 5 else "")
        raise SwinIRError(
            f"the config differs from the run's ({shown}); a resumed run must keep its config. Only "
            f"{', '.join(k.rstrip('.') + ('*' if k.endswith('.') else '') for k in SAFE_ON_RESUME)} may change; "
            "start a new run (another --out) to train differently"
        )
    return [k for k, _, _ in diffs]


def ema_decay(config: RunConfig, iteration: int) -> float:
    decay = config.train.ema_decay
    return min(decay, (1 + iteration) / (10 + iteration)) if config.train.ema_warmup else decay


class _StopSignals:
    """SIGINT/SIGTERM set a flag (the loop finishes the step and saves); a second SIGINT aborts."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.received: int | None = None
        self._log = log
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in EXIT_CODES:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, _frame: object) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum
        self._log(f"received {signal.Signals(signum).name}: finishing this step, saving a checkpoint, then exiting"
                  + (" (Ctrl-C again aborts without saving)" if signum == signal.SIGINT else ""))


class Trainer:
    """Everything one process needs to train (or resume) a run in ``run_dir``.

    Args:
        config: the run config; None with ``resume`` takes the run's own config (plus ``overrides``).
        run_dir: where checkpoints, logs, plot and exported weights go.
        device: ``cpu`` or ``cuda`` (each distributed rank takes ``cuda:LOCAL_RANK``).
        resume: continue the newest checkpoint in ``run_dir`` (refused when the config differs in keys
            that would change the training; see :data:`SAFE_ON_RESUME`).
        overrides: ``section.key=value`` strings applied to the run's own config when resuming.
        log: where messages go (rank 0 only); default: stderr.
    """

    def __init__(self, config: RunConfig | None, run_dir: str | os.PathLike, *, device: str = "cpu",
                 resume: bool = False, overrides: Sequence[str] = (), log: Callable[[str], None] | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.dist, self._owns_group = init_distributed(device)
        self.device = resolve_device(device, self.dist)
        self._log_fn = log or (lambda message: print(message, file=sys.stderr, flush=True))
        self._bar: Any = None
        self._run_started: float | None = None
        self._run_cpu_started: float | None = None

        resumed: dict[str, Any] | None = None
        changed: list[str] = []
        if resume:
            path, resumed = latest_checkpoint(self.run_dir, log=self.log)
            saved = parse_config(resumed["config"])
            if config is None:
                config = parse_config(apply_overrides(resumed["config"], overrides))
            changed = check_resumable(saved, config)
        elif config is None:
            raise SwinIRError("give a config (or resume an existing run)")
        elif list_checkpoints(self.run_dir):
            raise SwinIRError(f"{self.run_dir} already holds a run ({list_checkpoints(self.run_dir)[-1][1].name}); "
                              "continue it with --resume, or choose another --out")
        self.config: RunConfig = config
        self.behaviour = task_behaviour(config.task.name)
        tr = config.train
        if tr.precision == "fp16" and self.device.type != "cuda":
            raise SwinIRError("train.precision fp16 needs CUDA; on a CPU use bf16 (or fp32)")
        threads = tr.threads or (max(1, (os.cpu_count() or 1) // self.dist.local_world_size)
                                 if self.dist.active and self.device.type == "cpu" else None)
        if threads:
            torch.set_num_threads(threads)

        # Same initial weights on every rank (DDP would broadcast rank 0's anyway), then per-rank streams.
        torch.manual_seed(tr.seed)
        self.model = config.model.build(drop_path_rate=tr.drop_path_rate).to(self.device)
        self.model.set_grad_checkpointing(tr.grad_checkpointing)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        stream = int(np.random.SeedSequence([tr.seed, self.dist.rank, 7]).generate_state(1)[0])
        torch.manual_seed(stream)
        np.random.seed(stream)
        random.seed(stream)

        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=tr.lr, betas=tr.betas,
                                          weight_decay=tr.weight_decay)
        self.pixel_loss = pixel_loss(self.behaviour.loss if tr.loss == "auto" else tr.loss, tr.charbonnier_eps)
        self.scaler = torch.amp.GradScaler("cuda") if tr.precision == "fp16" else None
        self.gan = tr.stage == "gan"
        if self.gan:
            self._build_gan()

        self.dataset = TrainDataset(config, log=self.log)
        self.val_set: list[ValImage] = load_validation(config, log=self.log) if self.dist.is_main else []

        self.iteration = 0
        self.elapsed = 0.0
        self.segment_start = 0  # iteration where the current optimiser state began (warm-up, history)
        self.segment_elapsed = 0.0  # elapsed seconds at that point
        self.cpu_seconds = 0.0  # CPU time of the process (all threads) before this segment of the loop
        self.segment_cpu = 0.0  # CPU seconds at the start of the optimiser segment
        self.history: list[dict[str, Any]] = []  # earlier segments of the weights' training (continue_from)
        self.best: tuple[float, int] | None = None  # (psnr, iteration)
        self.last_val: dict[str, float] = {}
        self.digest = files_digest([p for p, _ in self.dataset.entries])
        if resumed is not None:
            self._restore(resumed, path, changed)
        elif tr.init_weights:
            self._load_init_weights(tr.init_weights)
        elif tr.continue_from:
            self._continue_from(tr.continue_from)
        self.net: nn.Module = self._wrap(self.model)
        if self.gan:
            self.disc_net = self._wrap(self.disc)

        self.csv: CsvLog | None = None
        self.events: EventWriter | None = None
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            removed = remove_temporaries(self.run_dir)
            if removed:
                self.log(f"removed {removed} half-written checkpoint file(s) left by an interrupted save")
            write_bytes_atomic(self.run_dir / "config.yaml", config.to_yaml().encode())
            columns = BASE_COLUMNS + (GAN_COLUMNS if self.gan else ())
            self.csv = CsvLog(self.run_dir / "log.csv", columns, keep_until=self.iteration if resumed else None)
            self.events = EventWriter(self.run_dir) if config.log.tensorboard else None
        self.baseline = self._baseline_scores()

    # ---- construction helpers ---------------------------------------------------------------------

    def _build_gan(self) -> None:
        from .gan import PerceptualLoss, UNetDiscriminator

        tr = self.config.train
        self.disc = UNetDiscriminator(self.config.model.in_chans, tr.d_channels).to(self.device)
        self.optimizer_d = torch.optim.Adam(self.disc.parameters(), lr=tr.d_lr, betas=tr.betas)
        self.scaler_d = torch.amp.GradScaler("cuda") if tr.precision == "fp16" else None
        self.perceptual: nn.Module | None = None
        if tr.perceptual_weight > 0:
            if tr.perceptual_weights is None:
                raise SwinIRError("the GAN stage needs train.perceptual_weights: a VGG19 weights file (torchvision's "
                                  "vgg19 state dict as .pth or safetensors); it is never downloaded")
            path = self.config.resolve_path(tr.perceptual_weights)
            self.perceptual = PerceptualLoss(tr.perceptual_layers, path).to(self.device)

    def _wrap(self, module: nn.Module) -> nn.Module:
        if not self.dist.active:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def _load_init_weights(self, weights: str) -> None:
        state, _ = read_checkpoint(self.config.resolve_path(weights))
        check_state_dict(self.model, state)
        self.model.load_state_dict(state, strict=True)
        self.ema.load_state_dict(state, strict=True)
        self.log(f"initialised from {weights}")

    def _continue_from(self, weights: str) -> None:
        """Start from exported weights and carry on their counters: iterations, hours, history."""
        path = self.config.resolve_path(weights)
        state, meta = read_checkpoint(path)
        check_state_dict(self.model, state)
        self.model.load_state_dict(state, strict=True)
        self.ema.load_state_dict(state, strict=True)
        lineage = continued_lineage(meta)
        self.iteration = self.segment_start = lineage.iterations
        self.elapsed = self.segment_elapsed = lineage.hours * 3600
        self.cpu_seconds = self.segment_cpu = lineage.cpu_hours * 3600
        self.history = list(lineage.history)
        self.log(f"continuing {weights} at iteration {self.iteration:,} ({lineage.hours:.2f} h trained before; "
                 "fresh optimiser state)")

    def _restore(self, state: Mapping[str, Any], path: Path, changed: list[str]) -> None:
        self.model.load_state_dict(state["params"])
        self.ema.load_state_dict(state["params_ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.gan:
            self.disc.load_state_dict(state["discriminator"])
            self.optimizer_d.load_state_dict(state["optimizer_d"])
            if self.scaler_d is not None and state.get("scaler_d"):
                self.scaler_d.load_state_dict(state["scaler_d"])
        self.iteration = int(state["iteration"])
        progress = state.get("progress", {})
        self.elapsed = float(progress.get("elapsed", 0.0))
        self.segment_start = int(progress.get("segment_start", 0))
        self.segment_elapsed = float(progress.get("segment_elapsed", 0.0))
        self.cpu_seconds = float(progress.get("cpu_seconds", 0.0))
        self.segment_cpu = float(progress.get("segment_cpu", 0.0))
        self.history = list(progress.get("history", []))
        if progress.get("best_psnr") is not None:
            self.best = (float(progress["best_psnr"]), int(progress["best_iteration"]))
        rng = state["rng"]
        if len(rng) == self.dist.world_size:
            restore_rng(rng[self.dist.rank])
        else:
            self.log(f"warning: the run had {len(rng)} processes, now {self.dist.world_size}: random streams "
                     "(drop-path) restart; the data order is unaffected")
        data = state["data"]
        if data["files_digest"] != self.digest:
            self.log("warning: the training images changed since the checkpoint; the data order differs from "
                     "an uninterrupted run from here on")
        self.log(f"resumed {path} at iteration {self.iteration:,}"
                 + (f" (changed: {', '.join(changed)})" if changed else ""))

    # ---- messages ---------------------------------------------------------------------------------

    def log(self, message: str) -> None:
        if not self.dist.is_main:
            return
        if self._bar is not None:
            self._bar.write(message, file=sys.stderr)
        else:
            self._log_fn(message)

    # ---- one step ---------------------------------------------------------------------------------

    def _autocast(self) -> contextlib.AbstractContextManager:
        precision = self.config.train.precision
        if precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)

    def _apply(self, loss: Tensor, optimizer: torch.optim.Optimizer, scaler: Any, params: Iterator[Tensor]) -> None:
        """Backward, optional clipping, optimiser step (through the GradScaler for fp16)."""
        optimizer.zero_grad(set_to_none=True)
        clip = self.config.train.grad_clip
        if scaler is None:
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(list(params), clip)
            optimizer.step()
            return
        scaler.scale(loss).backward()
        if clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(list(params), clip)
        scaler.step(optimizer)
        scaler.update()

    def step(self, lq: Tensor, hr: Tensor) -> dict[str, float]:
        """One optimisation step on a (local) batch; returns the losses as floats."""
        lr = self.config.learning_rate(self.iteration, segment_start=self.segment_start)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        lq = lq.to(self.device, non_blocking=True)
        hr = hr.to(self.device, non_blocking=True)
        if self.gan:
            stats = self._gan_step(lq, hr)
        else:
            with self._autocast():
                out = self.net(lq)
            loss = self.pixel_loss(out, hr)
            self._apply(loss, self.optimizer, self.scaler, self.model.parameters())
            stats = {"loss": loss.item()}
        self._update_ema()
        self.iteration += 1
        return stats

    def _gan_step(self, lq: Tensor, hr: Tensor) -> dict[str, float]:
        tr = self.config.train
        base = self.config.learning_rate(self.iteration, tr.d_lr, self.segment_start)
        for group in self.optimizer_d.param_groups:
            group["lr"] = base
        self.disc.requires_grad_(False)
        with self._autocast():
            out = self.net(lq)
            fake_logits = self.disc(out)  # the bare module: no gradient sync for a frozen discriminator
            l_pix = tr.pixel_weight * self.pixel_loss(out, hr)
            l_per = (tr.perceptual_weight * self.perceptual(out, hr) if self.perceptual is not None
                     else out.new_zeros(()))
            l_gan = tr.gan_weight * generator_adversarial_loss(fake_logits, tr.gan_loss)
        loss = l_pix + l_per.float() + l_gan
        self._apply(loss, self.optimizer, self.scaler, self.model.parameters())

        self.disc.requires_grad_(True)
        with self._autocast():
            logits = self.disc_net(torch.cat([hr, out.detach()]))
        real_logits, fake_logits = logits.chunk(2)
        l_d = discriminator_loss(real_logits, fake_logits, tr.gan_loss)
        self._apply(l_d, self.optimizer_d, self.scaler_d, self.disc.parameters())
        return {"loss": loss.item(), "loss_pixel": l_pix.item(), "loss_perceptual": float(l_per.item()),
                "loss_gan": l_gan.item(), "loss_d": l_d.item()}

    @torch.no_grad()
    def _update_ema(self) -> None:
        weight = 1.0 - ema_decay(self.config, self.iteration)
        torch._foreach_lerp_(list(self.ema.parameters()), list(self.model.parameters()), weight)

    # ---- validation -------------------------------------------------------------------------------

    @torch.no_grad()
    def _score(self, outputs: Callable[[ValImage], np.ndarray]) -> dict[str, float]:
        """Mean PSNR / SSIM (luma for SR, border = scale) and L1 (0-1 scale) of 8-bit outputs."""
        border = self.behaviour.metric_border(self.config.task.scale)
        y = self.behaviour.y_metrics
        scores = []
        for image in self.val_set:
            out, gt = outputs(image), image.gt
            crop = (slice(border, gt.shape[0] - border or None), slice(border, gt.shape[1] - border or None))
            l1 = float(np.abs(out[crop].astype(np.float64) - gt[crop]).mean() / 255.0)
            scores.append((psnr(out, gt, border=border, y_channel=y), ssim(out, gt, border=border, y_channel=y), l1))
        psnrs, ssims, l1s = zip(*scores, strict=True)
        return {"psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims)), "l1": float(np.mean(l1s))}

    def _ema_output(self, image: ValImage) -> np.ndarray:
        out = self.ema(image.lq[None].to(self.device)).float().clamp_(0, 1)[0].cpu().numpy().transpose(1, 2, 0)
        return quantize(out[..., 0] if image.gt.ndim == 2 else out)

    def validate(self) -> dict[str, float]:
        """Scores of the EMA weights on the validation set (fp32; rank 0 only; empty without a val set)."""
        if not self.val_set:
            return {}
        return self._score(self._ema_output)

    def _baseline_scores(self) -> dict[str, float]:
        if not self.val_set:
            return {}
        scale = self.config.task.scale
        scores = self._score(lambda image: self.behaviour.baseline(image.input_array(), scale))
        name = "bicubic" if self.behaviour.is_sr else "degraded input"
        self.log(f"validation baseline ({name}): PSNR {scores['psnr']:.3f} dB, SSIM {scores['ssim']:.4f}, "
                 f"L1 {scores['l1']:.5f}")
        return scores

    # ---- checkpoints and exports ------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint content (see :mod:`.state`); collective in a distributed run (gathers RNG states)."""
        rng = capture_rng()
        if self.dist.active:
            gathered: list[Any] = [None] * self.dist.world_size
            dist.all_gather_object(gathered, rng)
            rng_states = gathered
        else:
            rng_states = [rng]

        def cpu(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
            return {k: v.detach().cpu().clone() for k, v in state.items()}

        state: dict[str, Any] = {
            "format": CHECKPOINT_FORMAT,
            "iteration": self.iteration,
            "config": self.config.to_dict(),
            "params": cpu(self.model.state_dict()),
            "params_ema": cpu(self.ema.state_dict()),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": rng_states,
            "data": {"seed": self.config.train.seed, "next_iteration": self.iteration,
                     "global_batch": self.config.data.batch_size, "images": len(self.dataset),
                     "files_digest": self.digest},
            "progress": {"elapsed": self._elapsed(), "world_size": self.dist.world_size,
                         "best_psnr": self.best[0] if self.best else None,
                         "best_iteration": self.best[1] if self.best else None,
                         "last_psnr": self.last_val.get("psnr"), "segment_start": self.segment_start,
                         "segment_elapsed": self.segment_elapsed, "cpu_seconds": self._cpu(),
                         "segment_cpu": self.segment_cpu, "history": self.history},
            "versions": {"swinir": __version__, "torch": str(torch.__version__)},
        }
        if self.gan:
            state["discriminator"] = cpu(self.disc.state_dict())
            state["optimizer_d"] = self.optimizer_d.state_dict()
            state["scaler_d"] = self.scaler_d.state_dict() if self.scaler_d is not None else None
        return state

    def save(self) -> Path | None:
        """Write a checkpoint (rank 0); every rank must call it (RNG states are gathered)."""
        self._check_ranks_agree()
        state = self.state_dict()
        if not self.dist.is_main:
            return None
        path = save_checkpoint(self.run_dir, state, self.config.checkpoint.keep)
        self.log(f"checkpoint {path}")
        self._plot()
        return path

    def _check_ranks_agree(self) -> None:
        """DDP keeps replicas identical; a checksum per rank catches a broken setup before it is saved."""
        if not self.dist.active:
            return
        checksum = torch.stack([p.detach().double().sum() for p in self.model.parameters()]).sum().reshape(1)
        checksum = checksum.to(self.device)
        gathered = [torch.zeros_like(checksum) for _ in range(self.dist.world_size)]
        dist.all_gather(gathered, checksum)
        if any(not torch.equal(g, gathered[0]) for g in gathered):
            raise RuntimeError(f"distributed ranks hold different weights: {[g.item() for g in gathered]}")

    def _export(self, name: str, extra: Mapping[str, Any]) -> None:
        meta = training_metadata(self.config, self.iteration, extra, hours=self._elapsed() / 3600,
                                 cpu_hours=self._cpu() / 3600, history=self.lineage())
        save_safetensors(self.run_dir / name, self.ema, self.config.model, meta)

    def lineage(self) -> list[dict[str, Any]]:
        """Every training segment of the current weights, this run's (up to now) last."""
        return [*self.history, segment_record(self.config, self.segment_start, self.iteration,
                                              (self._elapsed() - self.segment_elapsed) / 3600,
                                              (self._cpu() - self.segment_cpu) / 3600)]

    def _elapsed(self) -> float:
        return self.elapsed + (time.monotonic() - self._run_started if self._run_started is not None else 0.0)

    def _cpu(self) -> float:
        """CPU seconds of this process (all threads) trained so far, earlier segments and runs included."""
        started = self._run_cpu_started
        return self.cpu_seconds + (time.process_time() - started if started is not None else 0.0)

    def _plot(self) -> None:
        if self.csv is not None and self.config.log.plot:
            plot_progress(self.run_dir / "progress.png", self.csv.rows, baseline_psnr=self.baseline.get("psnr"),
                          title=f"{self.run_dir.name}: {self.config.task.name} x{self.config.task.scale}")

    # ---- the loop ---------------------------------------------------------------------------------

    def _agree(self, stop: bool, save_due: bool) -> tuple[bool, bool]:
        if not self.dist.active:
            return stop, save_due
        flags = torch.tensor([float(stop), float(save_due)], device=self.device)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        return bool(flags[0]), bool(flags[1])

    def _record(self, values: dict[str, float | None]) -> None:
        if self.csv is None:
            return
        values = {"iteration": self.iteration, "seconds": round(self._elapsed(), 1), **values}
        self.csv.append(values)
        if self.events is not None:
            for key, value in values.items():
                if value is not None and key not in ("iteration", "seconds"):
                    tag = key.replace("val_", "val/") if key.startswith("val_") else f"train/{key}"
                    self.events.scalar(tag, value, self.iteration)

    def _validate_and_record(self, train_values: dict[str, float | None]) -> None:
        scores = self.validate() if self.dist.is_main else {}
        if scores:
            self.last_val = scores
            improved = self.best is None or scores["psnr"] > self.best[0]
            if improved:
                self.best = (scores["psnr"], self.iteration)
                if self.config.checkpoint.export_best:
                    self._export(BEST_WEIGHTS, {"val_psnr": round(scores["psnr"], 4),
                                                "val_ssim": round(scores["ssim"], 5)})
            self.log(f"validation @ {self.iteration:,}: PSNR {scores['psnr']:.3f} dB, SSIM {scores['ssim']:.4f}, "
                     f"L1 {scores['l1']:.5f}" + (" (best)" if improved else f" (best {self.best[0]:.3f})"))
        self._record({**train_values, **{f"val_{k}": v for k, v in scores.items()}})
        self._plot()
        if self.dist.active:
            dist.barrier()

    def run(self) -> int:
        """Train to ``train.iterations`` (or until a stop signal); returns the exit code (module docstring)."""
        cfg = self.config
        total = cfg.train.iterations
        if self.iteration >= total:
            self.log(f"the run is complete ({self.iteration:,} of {total:,} iterations); raise train.iterations "
                     "(--set train.iterations=N) to continue")
            return EXIT_FINISHED
        if self.dist.is_main and self.events is not None and self.baseline and self.iteration == 0:
            for key, value in self.baseline.items():
                self.events.scalar(f"val/baseline_{key}", value, 0)
        self.log(f"training {cfg.task.name} x{cfg.task.scale} on {self.device} ({cfg.train.precision}, "
                 f"{self.dist.world_size} process{'es' if self.dist.active else ''}): {len(self.dataset)} images, "
                 f"batch {cfg.data.batch_size}, patch {cfg.data.patch_size}, "
                 f"iterations {self.iteration:,} -> {total:,}")
        loader = make_loader(self.dataset, self.iteration, total, rank=self.dist.rank,
                             world_size=self.dist.world_size, num_workers=cfg.data.num_workers,
                             pin_memory=self.device.type == "cuda")
        self._run_started = time.monotonic()
        self._run_cpu_started = time.process_time()
        last_save = time.monotonic()
        window: dict[str, list[float]] = {}
        window_start, window_iter = time.monotonic(), self.iteration
        code = EXIT_FINISHED
        self.model.train()
        with _StopSignals(self.log) as signals, self._progress(total) as bar:
            for lq, hr in loader:
                stats = self.step(lq, hr)
                for key, value in stats.items():
                    window.setdefault(key, []).append(value)
                if bar is not None:
                    bar.update(1)
                it = self.iteration
                every_minutes = cfg.checkpoint.every_minutes
                time_due = every_minutes is not None and time.monotonic() - last_save >= every_minutes * 60
                stop, time_due = self._agree(signals.received is not None, time_due)
                train_values: dict[str, float | None] = {}
                if it % cfg.log.every == 0 or stop or it == total:
                    train_values = {k: float(np.mean(v)) for k, v in window.items()}
                    train_values["lr"] = cfg.learning_rate(it - 1, segment_start=self.segment_start)
                    rate = (time.monotonic() - window_start) / max(1, it - window_iter)
                    self._progress_line(bar, it, total, train_values, rate)
                    window, window_start, window_iter = {}, time.monotonic(), it
                if it % cfg.val.every == 0 or it == total:
                    self._validate_and_record(train_values)
                elif train_values:
                    self._record(train_values)
                if stop or time_due or it == total or (cfg.checkpoint.every and it % cfg.checkpoint.every == 0):
                    self.save()
                    last_save = time.monotonic()
                if stop:  # a rank that did not get the signal itself stops as SIGTERM
                    code = EXIT_CODES.get(signals.received, EXIT_CODES[signal.SIGTERM])
                    break
        del loader
        if code == EXIT_FINISHED and self.dist.is_main:
            self._export("last.safetensors", {"val_psnr": round(self.last_val["psnr"], 4)} if self.last_val else {})
            best = f"; best validation PSNR {self.best[0]:.3f} dB at {self.best[1]:,}" if self.best else ""
            self.log(f"finished {self.iteration:,} iterations in {self._elapsed() / 3600:.2f} h{best}")
        elif code != EXIT_FINISHED:
            self.log(f"stopped at iteration {self.iteration:,}; continue with --resume {self.run_dir}")
        if self.events is not None:
            self.events.close()
        return code

    def close(self) -> None:
        """Leave the process group if this trainer joined it (after the last collective call)."""
        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self._owns_group = False

    @contextlib.contextmanager
    def _progress(self, total: int) -> Iterator[Any]:
        """A tqdm bar on an interactive terminal (rank 0, log.progress); None otherwise (plain lines)."""
        if not (self.dist.is_main and self.config.log.progress and sys.stderr.isatty()):
            yield None
            return
        from tqdm import tqdm

        with tqdm(total=total, initial=self.iteration, unit="it", dynamic_ncols=True, smoothing=0.05) as bar:
            self._bar = bar
            try:
                yield bar
            finally:
                self._bar = None

    def _progress_line(self, bar: Any, it: int, total: int, values: Mapping[str, float | None], rate: float) -> None:
        if bar is not None:
            bar.set_postfix(loss=f"{values.get('loss', math.nan):.4g}", lr=f"{values['lr']:.2e}", refresh=False)
            return
        eta_h = (total - it) * rate / 3600
        losses = " ".join(f"{k} {v:.4g}" for k, v in values.items() if k.startswith("loss") and v is not None)
        self.log(f"iter {it:,}/{total:,} {losses} lr {values['lr']:.2e} {rate:.2f} s/it ETA {eta_h:.1f} h")


def train(config: RunConfig | None, run_dir: str | os.PathLike, *, device: str = "cpu", resume: bool = False,
          overrides: Sequence[str] = ()) -> int:
    """Train (or resume) a run; returns the exit code (0 finished, 130/143 stopped by SIGINT/SIGTERM)."""
    trainer = Trainer(config, run_dir, device=device, resume=resume, overrides=overrides)
    try:
        return trainer.run()
    finally:
        trainer.close()
