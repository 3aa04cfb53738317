"""The state of a training run and its checkpoint format, in one place.

:class:`TrainingState` holds everything a checkpoint holds (model, EMA, optimiser, scaler, the data position,
:class:`Progress`, and the training stage's own parts); :meth:`TrainingState.to_dict` writes a checkpoint and
:meth:`TrainingState.load_dict` reads one back into a freshly built state. A checkpoint is one ``torch.save``
dict of tensors and plain values only, so it loads with ``torch.load(weights_only=True)``:

============================  ============================================================================
``format``                    :data:`CHECKPOINT_FORMAT` (1)
``iteration``                 completed steps
``config``                    the run config as plain data (:meth:`RunConfig.to_dict`)
``params``, ``params_ema``    the model and its EMA (the reference checkpoints' names; ``swinir.load``
                              reads ``params_ema``)
``optimizer``, ``scaler``     Adam's state dict; the fp16 GradScaler's, or None
``rng``                       one entry per rank: python, numpy, torch (and CUDA) generator states
                              (:func:`capture_rng`)
``data``                      ``seed``, ``next_iteration``, ``global_batch``, ``images``, ``files_digest``:
                              the data order is a pure function of these (see :mod:`.data`)
``progress``                  ``elapsed`` and ``cpu_seconds`` (the whole lineage's wall-clock and CPU
                              seconds), ``world_size``, ``best_psnr``/``best_iteration``, ``last_psnr``,
                              ``segment_start`` with ``segment_elapsed``/``segment_cpu`` (where the
                              optimiser's segment began), ``history`` (the segments before it,
                              ``train.continue_from``), ``device`` (where the segment trains)
``versions``                  ``swinir``, ``torch``
(the stage's keys)            whatever the run's training stage adds (:class:`StageState`; :mod:`.stages`):
                              nothing for the PSNR stage; ``discriminator``, ``optimizer_d``, ``scaler_d`` for
                              the GAN stage (:mod:`.gan`)
============================  ============================================================================

Checkpoints are ``RUN/checkpoints/iter_XXXXXXXX.pt``, written atomically (temp file, fsync, rename:
:func:`swinir.fileio.atomic_path`), so a crash or a kill mid-save leaves the previous ones intact. Also here:
which config changes a resumed run accepts (:func:`check_resumable`), and the export of a run's EMA weights.
"""

from __future__ import annotations

import copy
import hashlib
import random
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from .. import __version__
from ..checkpoints import check_state_dict, read_checkpoint, save_safetensors
from ..errors import SwinIRError
from ..fileio import atomic_path
from .config import RunConfig, apply_overrides, parse_config
from .lineage import Lineage, continued_lineage, segment_record, training_metadata

CHECKPOINT_FORMAT = 1
CHECKPOINT_DIR = "checkpoints"
BEST_WEIGHTS = "best.safetensors"
LAST_WEIGHTS = "last.safetensors"
_NAME = re.compile(r"iter_(\d+)\.pt")
_TEMPORARY = re.compile(r"\.iter_\d+\.pt\.[0-9a-f]+\.tmp")


# --------------------------------------------------------------------------------------------------
# Progress and the state
# --------------------------------------------------------------------------------------------------


@dataclass
class Progress:
    """How far the weights have come, and the clock of this process.

    The counters carry on across resumes (the checkpoint's ``progress``) and across continued runs (exported
    weights' lineage); ``elapsed``/``cpu_seconds`` are the seconds before :meth:`start_clock`, and
    :meth:`seconds`/:meth:`cpu` add this process's since then.
    """

    iteration: int = 0
    elapsed: float = 0.0  # wall-clock seconds of the whole lineage before the clock started
    cpu_seconds: float = 0.0  # CPU seconds of the training processes (all threads), likewise
    segment_start: int = 0  # the iteration where the current optimiser state began (warm-up, history)
    segment_elapsed: float = 0.0  # elapsed seconds at that point
    segment_cpu: float = 0.0  # CPU seconds at that point
    device: str = "cpu"  # where the current segment trains (hardware.device_summary), for its history record
    history: list[dict[str, Any]] = field(default_factory=list)  # the lineage's earlier segments
    best: tuple[float, int] | None = None  # (validation PSNR, iteration)
    last_val: dict[str, float] = field(default_factory=dict)  # the latest validation scores (psnr is saved)
    _clock: tuple[float, float] | None = field(default=None, repr=False)

    def start_clock(self) -> None:
        self._clock = (time.monotonic(), time.process_time())

    def seconds(self) -> float:
        """Wall-clock seconds trained so far, earlier runs and segments included."""
        return self.elapsed + (time.monotonic() - self._clock[0] if self._clock else 0.0)

    def cpu(self) -> float:
        """CPU seconds of the training processes (all threads) so far, earlier runs and segments included."""
        return self.cpu_seconds + (time.process_time() - self._clock[1] if self._clock else 0.0)

    def lineage(self, config: RunConfig) -> list[dict[str, Any]]:
        """Every training segment of the current weights, this run's (up to now) last."""
        return [*self.history, segment_record(config, self.segment_start, self.iteration,
                                              (self.seconds() - self.segment_elapsed) / 3600,
                                              (self.cpu() - self.segment_cpu) / 3600, self.device)]

    def record_validation(self, scores: Mapping[str, float]) -> bool:
        """Keep the latest scores; returns whether their PSNR is the best so far (then it becomes the best)."""
        self.last_val = dict(scores)
        improved = self.best is None or scores["psnr"] > self.best[0]
        if improved:
            self.best = (scores["psnr"], self.iteration)
        return improved

    def to_dict(self, world_size: int) -> dict[str, Any]:
        """The checkpoint's ``progress`` mapping (the module docstring's keys)."""
        return {"elapsed": self.seconds(), "world_size": world_size,
                "best_psnr": self.best[0] if self.best else None,
                "best_iteration": self.best[1] if self.best else None,
                "last_psnr": self.last_val.get("psnr"), "segment_start": self.segment_start,
                "segment_elapsed": self.segment_elapsed, "cpu_seconds": self.cpu(),
                "segment_cpu": self.segment_cpu, "history": self.history, "device": self.device}

    @classmethod
    def from_dict(cls, progress: Mapping[str, Any], iteration: int) -> Progress:
        """A checkpoint's ``progress`` (keys missing in early checkpoints take their fresh-run values)."""
        best = progress.get("best_psnr")
        last = progress.get("last_psnr")
        return cls(iteration=iteration, elapsed=float(progress.get("elapsed", 0.0)),
                   cpu_seconds=float(progress.get("cpu_seconds", 0.0)),
                   segment_start=int(progress.get("segment_start", 0)),
                   segment_elapsed=float(progress.get("segment_elapsed", 0.0)),
                   segment_cpu=float(progress.get("segment_cpu", 0.0)),
                   history=list(progress.get("history", [])), device=str(progress.get("device", "cpu")),
                   best=(float(best), int(progress["best_iteration"])) if best is not None else None,
                   last_val={"psnr": float(last)} if last is not None else {})

    @classmethod
    def continuing(cls, lineage: Lineage) -> Progress:
        """The progress of a new run that continues exported weights: their counters, a new segment from here."""
        seconds, cpu = lineage.hours * 3600, lineage.cpu_hours * 3600
        return cls(iteration=lineage.iterations, elapsed=seconds, cpu_seconds=cpu, segment_start=lineage.iterations,
                   segment_elapsed=seconds, segment_cpu=cpu, history=list(lineage.history))


def cpu_state_dict(module: nn.Module) -> dict[str, Tensor]:
    """A module's state dict copied to the CPU, as a checkpoint stores it."""
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


class StageState(Protocol):
    """What a training stage adds to a checkpoint (:mod:`.stages`): its own keys, written and read back."""

    def state_dict(self) -> dict[str, Any]:
        """The stage's checkpoint keys (tensors and plain values only)."""
        ...

    def load_state_dict(self, saved: Mapping[str, Any]) -> None:
        """Continue from a checkpoint's keys."""
        ...


@dataclass
class TrainingState:
    """What a checkpoint holds, live: built by :meth:`fresh`, then loaded from a checkpoint or weights, if any.

    ``stage`` is the training stage's own part (None: the state alone, as for the PSNR stage); it writes and
    reads its checkpoint keys itself. ``images`` and ``files_digest`` describe the training image list (set
    once the dataset is read); a resumed run with another digest is warned that its data order differs from
    here on.
    """

    config: RunConfig
    model: nn.Module
    ema: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None = None
    stage: StageState | None = None
    progress: Progress = field(default_factory=Progress)
    images: int = 0
    files_digest: str = ""

    @classmethod
    def fresh(cls, config: RunConfig, device: torch.device, rank: int = 0) -> TrainingState:
        """Initial weights from ``train.seed`` (the same on every rank), then this rank's own random streams
        (drop-path), the optimiser and the fp16 scaler. A stage built right after draws its own networks'
        initial weights from this rank's streams (:func:`.stages.build_stage`)."""
        tr = config.train
        torch.manual_seed(tr.seed)
        model = config.model.build(drop_path_rate=tr.drop_path_rate).to(device)
        model.set_grad_checkpointing(tr.grad_checkpointing)
        ema = copy.deepcopy(model).eval().requires_grad_(False)
        seed_rank_streams(tr.seed, rank)
        optimizer = torch.optim.Adam(model.parameters(), lr=tr.lr, betas=tr.betas, weight_decay=tr.weight_decay)
        scaler = torch.amp.GradScaler("cuda") if tr.precision == "fp16" else None
        return cls(config, model, ema, optimizer, scaler)

    @property
    def iteration(self) -> int:
        return self.progress.iteration

    def to_dict(self, rng: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The checkpoint (module docstring); ``rng`` holds every rank's :func:`capture_rng`, in rank order."""
        p, tr = self.progress, self.config.train
        state: dict[str, Any] = {
            "format": CHECKPOINT_FORMAT,
            "iteration": p.iteration,
            "config": self.config.to_dict(),
            "params": cpu_state_dict(self.model),
            "params_ema": cpu_state_dict(self.ema),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": list(rng),
            "data": {"seed": tr.seed, "next_iteration": p.iteration, "global_batch": self.config.data.batch_size,
                     "images": self.images, "files_digest": self.files_digest},
            "progress": p.to_dict(world_size=len(rng)),
            "versions": {"swinir": __version__, "torch": str(torch.__version__)},
        }
        if self.stage is not None:
            state.update(self.stage.state_dict())
        return state

    def load_dict(self, state: Mapping[str, Any], *, rank: int = 0, world_size: int = 1) -> list[str]:
        """Continue exactly from a checkpoint; returns warnings (another process count, changed images)."""
        self.model.load_state_dict(state["params"])
        self.ema.load_state_dict(state["params_ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.stage is not None:
            self.stage.load_state_dict(state)
        self.progress = Progress.from_dict(state.get("progress", {}), int(state["iteration"]))
        warnings = []
        rng = state["rng"]
        if len(rng) == world_size:
            restore_rng(rng[rank])
        else:
            warnings.append(f"the run had {len(rng)} processes, now {world_size}: random streams (drop-path) "
                            "restart; the data order is unaffected")
        if state["data"]["files_digest"] != self.files_digest:
            warnings.append("the training images changed since the checkpoint; the data order differs from an "
                            "uninterrupted run from here on")
        return warnings

    def load_weights(self, path: Path) -> None:
        """Start model and EMA from ``path`` (``train.init_weights``): a new lineage at iteration 0."""
        self._set_weights(path)

    def continue_from(self, path: Path) -> Lineage:
        """Start from exported weights and carry on their counters (``train.continue_from``); fresh optimiser."""
        lineage = continued_lineage(self._set_weights(path))
        self.progress = Progress.continuing(lineage)
        return lineage

    def _set_weights(self, path: Path) -> dict[str, str]:
        weights, meta = read_checkpoint(path)
        check_state_dict(self.model, weights)
        self.model.load_state_dict(weights, strict=True)
        self.ema.load_state_dict(weights, strict=True)
        return meta

    def export(self, path: Path, extra: Mapping[str, Any] | None = None) -> None:
        """Write the EMA weights as safetensors with the model config and the lineage's training metadata."""
        p = self.progress
        meta = training_metadata(self.config, p.iteration, extra, hours=p.seconds() / 3600, cpu_hours=p.cpu() / 3600,
                                 history=p.lineage(self.config))
        save_safetensors(path, self.ema, self.config.model, meta)


# --------------------------------------------------------------------------------------------------
# Random generator states as tensors and plain values
# --------------------------------------------------------------------------------------------------


def seed_rank_streams(seed: int, rank: int) -> None:
    """Seed python, numpy and torch's global generators with a stream of their own for this rank."""
    stream = int(np.random.SeedSequence([seed, rank, 7]).generate_state(1)[0])
    torch.manual_seed(stream)
    np.random.seed(stream)
    random.seed(stream)


def capture_rng() -> dict[str, Any]:
    """This process's python, numpy, torch (and CUDA) generator states, ``weights_only``-loadable."""
    version, py_state, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "state": torch.tensor(py_state, dtype=torch.int64), "gauss": gauss},
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    """Set this process's generators to a :func:`capture_rng` state."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(("MT19937", npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def files_digest(paths: Sequence[Path]) -> str:
    """A short digest of the training image list (names and sizes): detects changed data on resume."""
    h = hashlib.sha256()
    for path in paths:
        h.update(f"{path}\0{path.stat().st_size}\n".encode())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------------------------------
# Checkpoint files
# --------------------------------------------------------------------------------------------------


def checkpoint_path(run_dir: Path, iteration: int) -> Path:
    return run_dir / CHECKPOINT_DIR / f"iter_{iteration:08d}.pt"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """``(iteration, path)`` of every checkpoint of a run, oldest first."""
    folder = run_dir / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.fullmatch(p.name))]
    return sorted(found)


def remove_temporaries(run_dir: Path) -> int:
    """Delete half-written checkpoint files left by a killed save; returns how many."""
    folder = run_dir / CHECKPOINT_DIR
    stale = [p for p in folder.iterdir() if _TEMPORARY.fullmatch(p.name)] if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def save_checkpoint(run_dir: Path, state: Mapping[str, Any], keep: int) -> Path:
    """Write ``state`` atomically as the checkpoint of ``state['iteration']``; keep only the newest ``keep``."""
    path = checkpoint_path(run_dir, int(state["iteration"]))
    with atomic_path(path) as tmp:
        torch.save(dict(state), tmp)
    for _, old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint written by :func:`save_checkpoint` (``weights_only=True``: tensors and plain data only)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise SwinIRError(f"{path}: not a readable training checkpoint ({type(err).__name__}: {reason})") from err
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise SwinIRError(f"{path}: not a swinir training checkpoint (format {CHECKPOINT_FORMAT})")
    return state


def latest_checkpoint(run_dir: Path, *, log: Callable[[str], None] | None = None) -> tuple[Path, dict[str, Any]]:
    """The newest checkpoint of a run that loads (an unreadable newest one is reported and skipped)."""
    found = list_checkpoints(run_dir)
    if not found:
        raise SwinIRError(f"{run_dir}: no training checkpoints in {run_dir / CHECKPOINT_DIR}; nothing to resume")
    for _, path in reversed(found):
        try:
            return path, load_checkpoint(path)
        except SwinIRError as err:
            (log or (lambda m: print(m, file=sys.stderr)))(f"warning: {err}; trying the previous checkpoint")
    raise SwinIRError(f"{run_dir}: none of the {len(found)} checkpoints is readable")


def run_config(state: Mapping[str, Any]) -> RunConfig:
    """The run config a checkpoint was written with."""
    return parse_config(state["config"])


def run_progress(run_dir: str | Path) -> tuple[RunConfig, Progress] | None:
    """Where a run stands, for tools that decide whether to resume it (the bundled models' campaign): the config
    and :class:`Progress` (iteration, lineage history, segment start) of its newest readable checkpoint; None
    when it has no checkpoint yet."""
    if not list_checkpoints(Path(run_dir)):
        return None
    _, state = latest_checkpoint(Path(run_dir))
    return run_config(state), Progress.from_dict(state.get("progress", {}), int(state["iteration"]))


# --------------------------------------------------------------------------------------------------
# Resume: which config changes a checkpoint accepts
# --------------------------------------------------------------------------------------------------

# Keys that may differ when a run is resumed: they change neither the weights nor the data order
# (train.iterations re-spreads fractional milestones over the new budget; see docs/training.md). The starting
# weights (init_weights, continue_from) are read only when a run starts; a resumed run takes its checkpoint's.
SAFE_ON_RESUME = ("train.iterations", "train.threads", "data.num_workers", "data.cache_images", "data.root",
                  "train.init_weights", "train.continue_from", "val.every", "log.", "checkpoint.")


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


def resumed_config(state: Mapping[str, Any], config: RunConfig | None,
                   overrides: Sequence[str] = ()) -> tuple[RunConfig, list[str]]:
    """The config to resume a checkpoint with (``config``, or the run's own plus ``overrides``) and the safe
    keys that changed; raises when an unsafe one did (:func:`check_resumable`)."""
    if config is None:
        config = parse_config(apply_overrides(state["config"], overrides))
    return config, check_resumable(run_config(state), config)


# --------------------------------------------------------------------------------------------------
# Exported weights
# --------------------------------------------------------------------------------------------------


def has_best_weights(run_dir: str | Path) -> bool:
    """Whether the run has validated and kept its best weights (``RUN/best.safetensors``); before its first
    validation there is no best, and an export of ``best`` takes the newest checkpoint's."""
    return (Path(run_dir) / BEST_WEIGHTS).is_file()


def export_weights(run_dir: str | Path, out: str | Path, which: Literal["best", "last"] = "best") -> Path:
    """Write a run's EMA weights as safetensors (config + training metadata inside; loads with ``swinir.load``).

    ``best``: the weights of the best validation so far (``RUN/best.safetensors``, falling back to the last
    checkpoint when the run has not validated yet); ``last``: the EMA weights of the newest checkpoint.
    """
    run_dir, out = Path(run_dir), Path(out)
    best = run_dir / BEST_WEIGHTS
    if which == "best" and has_best_weights(run_dir):
        weights, meta = read_checkpoint(best)
        config = parse_config(meta.training_config)
        save_safetensors(out, weights, config.model, meta.without_config())
        return out
    if which not in ("best", "last"):
        raise SwinIRError(f"export: which must be best or last, got {which!r}")
    _, state = latest_checkpoint(run_dir)
    config = run_config(state)
    progress = Progress.from_dict(state.get("progress", {}), int(state["iteration"]))
    extra = {"val_psnr": progress.last_val["psnr"]} if progress.last_val else {}
    meta = training_metadata(config, progress.iteration, extra, hours=progress.seconds() / 3600,
                             cpu_hours=progress.cpu() / 3600, history=progress.lineage(config))
    save_safetensors(out, state["params_ema"], config.model, meta)
    return out
