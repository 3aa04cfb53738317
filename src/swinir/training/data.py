"""Training and validation data.

Reproducibility rule: every training sample is a pure function of ``(seed, iteration, slot)``, where
``slot`` is the sample's position in the *global* batch. Which image it crops comes from a per-epoch
permutation seeded by ``(seed, epoch)``; its crop, flips, rotation and degradation come from a generator
seeded by ``(seed, iteration, slot)``. Nothing depends on worker processes, their number, the rank that
draws the sample, or on state carried from earlier iterations. Hence:

* a run resumed at iteration k draws exactly the batches an uninterrupted run draws from k on;
* any ``num_workers`` gives the same batches;
* N distributed ranks together draw the same global batch a single process draws (rank r takes the
  slots ``[r * B/N, (r+1) * B/N)``).

Images that cannot be decoded or are smaller than a patch are skipped (counted and reported once); a
folder without images is an error at once. 8-bit files are decoded as the reference decodes them; 16-bit and
float32 TIFFs (microscopy, medical, remote sensing) come on the [0, 1] scale that ``swinir restore`` maps them
to (:func:`swinir.datasets.read_training_image`), so patches are uint8 or float32 until :func:`as_unit`.
"""

from __future__ import annotations

import signal
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..datasets import find_lr_partner, list_images
from ..degradations import modcrop
from ..errors import SwinIRError
from ..metrics import quantize
from .config import RunConfig
from .tasks import TaskBehaviour, as_unit, task_behaviour

ORDER_STREAM, SAMPLE_STREAM, VALIDATION_STREAM = 0, 1, 2  # keep the seeded generators independent
Log = Callable[[str], None]
SampleKey = tuple[int, int]  # (iteration, slot in the global batch)
ROOT_HINT = "relative folders are resolved against data.root"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """HxW or HxWxC float -> (C, H, W) float32, contiguous."""
    img = img[..., None] if img.ndim == 2 else img
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32))


def dihedral(img: np.ndarray, rotations: int, flip: bool) -> np.ndarray:
    """One of the 8 flips/90-degree rotations (the same call on LR and HR keeps them aligned)."""
    out = np.rot90(img, rotations, axes=(0, 1))
    return np.ascontiguousarray(out[:, ::-1] if flip else out)


class TrainDataset(Dataset):
    """Folder images, cropped, augmented and degraded on the fly per :data:`SampleKey`.

    HR-only folders are degraded by the task's degradation (an HR patch of ``patch * scale`` is cropped
    and augmented first, then degraded, so the input is a true bicubic / noisy / JPEG version of exactly
    that patch). With ``data.train_lr`` the LR files are used instead and crops are aligned across scale.
    """

    def __init__(self, config: RunConfig, *, log: Log = _stderr) -> None:
        self.task = config.task
        self.behaviour: TaskBehaviour = task_behaviour(config.task.name)
        self.scale = config.task.scale
        self.patch = config.data.patch_size
        self.global_batch = config.data.batch_size
        self.seed = config.train.seed
        self.augment = config.data.augment
        lr_folders = config.data.train_lr
        if not config.data.train:
            raise SwinIRError("data.train: give at least one folder of training images")
        pairs: list[tuple[Path, Path | None]] = []
        self.skipped: Counter[str] = Counter()
        for i, folder in enumerate(config.data.train):
            hr_folder = config.resolve_path(folder)
            lr_folder = config.resolve_path(lr_folders[i]) if lr_folders else None
            for hr_path in list_images(hr_folder, label="data.train", hint=ROOT_HINT):
                lr_path = find_lr_partner(lr_folder, hr_path, self.scale, plain_stem=True) if lr_folder else None
                if lr_folder is not None and lr_path is None:
                    self.skipped["without an LR partner"] += 1
                    continue
                pairs.append((hr_path, lr_path))
        self.entries: list[tuple[Path, Path | None]] = []
        self.cache: list[tuple[np.ndarray, np.ndarray | None]] | None = [] if config.data.cache_images else None
        for hr_path, lr_path in pairs:
            images = self._check(hr_path, lr_path)
            if images is None:
                continue
            self.entries.append((hr_path, lr_path))
            if self.cache is not None:
                self.cache.append(images)
        total = len(pairs) + self.skipped["without an LR partner"]
        reasons = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items()) if n)
        if reasons:
            log(f"warning: skipped {sum(self.skipped.values())} of {total} training images ({reasons})")
        if not self.entries:
            raise SwinIRError(f"data.train: none of the {total} images is usable ({reasons}); "
                              f"images must be readable and at least {self.hr_patch}x{self.hr_patch} pixels")
        self._orders: dict[int, np.ndarray] = {}

    @property
    def hr_patch(self) -> int:
        return self.patch * self.scale

    def __len__(self) -> int:
        return len(self.entries)

    def _check(self, hr_path: Path, lr_path: Path | None) -> tuple[np.ndarray, np.ndarray | None] | None:
        """Decode one image (pair) and check its size; None (and a counted reason) when it is unusable."""
        try:
            hr = self.behaviour.read(hr_path)
            lr = self.behaviour.read_lr(lr_path) if lr_path else None
        except SwinIRError:
            self.skipped["unreadable"] += 1
            return None
        if lr is None and min(hr.shape[:2]) < self.hr_patch:
            self.skipped[f"smaller than {self.hr_patch}x{self.hr_patch}"] += 1
            return None
        if lr is not None:
            if min(lr.shape[:2]) < self.patch:
                self.skipped[f"LR smaller than {self.patch}x{self.patch}"] += 1
                return None
            if hr.shape[0] < lr.shape[0] * self.scale or hr.shape[1] < lr.shape[1] * self.scale:
                self.skipped[f"HR smaller than LR x{self.scale}"] += 1
                return None
        return hr, lr

    def _images(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        if self.cache is not None:
            return self.cache[index]
        hr_path, lr_path = self.entries[index]
        hr = self.behaviour.read(hr_path)
        lr = self.behaviour.read_lr(lr_path) if lr_path else None
        return hr, lr

    def order(self, epoch: int) -> np.ndarray:
        """The image permutation of one epoch (a pass over the images), seeded by ``(seed, epoch)``."""
        if epoch not in self._orders:
            if len(self._orders) > 4:
                self._orders.clear()
            rng = np.random.default_rng([self.seed, ORDER_STREAM, epoch])
            self._orders[epoch] = rng.permutation(len(self.entries))
        return self._orders[epoch]

    def image_index(self, iteration: int, slot: int) -> int:
        epoch, position = divmod(iteration * self.global_batch + slot, len(self.entries))
        return int(self.order(epoch)[position])

    def __getitem__(self, key: SampleKey) -> tuple[torch.Tensor, torch.Tensor]:
        """``(lq, hr)`` as (C, h, w) and (C, h*scale, w*scale) float32 tensors on the [0, 1] scale."""
        iteration, slot = key
        hr, lr = self._images(self.image_index(iteration, slot))
        rng = np.random.default_rng([self.seed, SAMPLE_STREAM, iteration, slot])
        p, s = self.patch, self.scale
        rotations, flip = (int(rng.integers(4)), bool(rng.integers(2))) if self.augment else (0, False)
        if lr is None:
            top = int(rng.integers(hr.shape[0] - p * s + 1))
            left = int(rng.integers(hr.shape[1] - p * s + 1))
            hr_patch = dihedral(hr[top : top + p * s, left : left + p * s], rotations, flip)
            lq = self.behaviour.degrade(hr_patch, rng, self.task, None)
        else:
            top = int(rng.integers(lr.shape[0] - p + 1))
            left = int(rng.integers(lr.shape[1] - p + 1))
            lq = as_unit(dihedral(lr[top : top + p, left : left + p], rotations, flip))
            hr_patch = dihedral(hr[top * s : (top + p) * s, left * s : (left + p) * s], rotations, flip)
        return to_tensor(lq), to_tensor(as_unit(hr_patch))


class BatchKeys(Sampler[list[SampleKey]]):
    """The keys of one rank's share of every global batch from ``start`` to ``stop`` (iterations)."""

    def __init__(self, start: int, stop: int, global_batch: int, rank: int = 0, world_size: int = 1) -> None:
        if global_batch % world_size:
            raise SwinIRError(f"data.batch_size {global_batch} must be divisible by the {world_size} processes")
        self.start, self.stop = start, stop
        per_rank = global_batch // world_size
        self.slots = range(rank * per_rank, (rank + 1) * per_rank)

    def __iter__(self) -> Iterator[list[SampleKey]]:
        for iteration in range(self.start, self.stop):
            yield [(iteration, slot) for slot in self.slots]

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


def _worker_init(_worker_id: int) -> None:
    """Worker setup. Their randomness never depends on worker state (see the module docstring), so only:
    ignore stop signals. Ctrl-C reaches the whole process group, and schedulers,
    ``kill -TERM -PGID`` or ``pkill -f`` send SIGTERM to every process of the job. The workers live on while
    the main process finishes its step and writes the checkpoint; it ends them itself (and they exit when it
    dies)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def make_loader(dataset: TrainDataset, start: int, stop: int, *, rank: int = 0, world_size: int = 1,
                num_workers: int = 0, pin_memory: bool = False) -> DataLoader:
    """Batches for iterations ``[start, stop)`` of this rank, in order, prefetched by ``num_workers``.

    With workers, OpenCV is limited to one thread *here, before they fork*: the workers are the
    parallelism, and OpenCV's pool must not be resized inside a forked child (it waits to join pool
    threads that the child does not have, and hangs).
    """
    if num_workers:
        cv2.setNumThreads(1)
    return DataLoader(
        dataset, batch_sampler=BatchKeys(start, stop, dataset.global_batch, rank, world_size),
        num_workers=num_workers, pin_memory=pin_memory, worker_init_fn=_worker_init if num_workers else None,
        prefetch_factor=2 if num_workers else None,
        # its own generator: creating the iterator draws a worker base seed, which must not consume (and so
        # shift) the global torch stream that drop-path uses; samples never use that seed anyway
        generator=torch.Generator().manual_seed(dataset.seed),
    )


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


@dataclass
class ValImage:
    """One fixed validation pair: the network input (C, h, w) and the 8-bit ground truth (HxW[x3]; that of a
    16-bit or float TIFF quantised to 8 bits, which the scores compare)."""

    name: str
    lq: torch.Tensor
    gt: np.ndarray

    def input_array(self) -> np.ndarray:
        """The network input as HxW (gray) or HxWx3 float, like ``gt``'s layout."""
        array = self.lq.numpy().transpose(1, 2, 0)
        return array[..., 0] if self.gt.ndim == 2 else array


def centre_box(h: int, w: int, size: int | None, multiple: int) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a centre crop of side ``size`` (whole image if None), all multiples."""
    ch = min(h, size or h) // multiple * multiple
    cw = min(w, size or w) // multiple * multiple
    top = (h - ch) // 2 // multiple * multiple
    left = (w - cw) // 2 // multiple * multiple
    return top, left, ch, cw


def load_validation(config: RunConfig, *, log: Log = _stderr) -> list[ValImage]:
    """The validation set, degraded once with fixed seeds (``val.seed``) and the task's fixed level."""
    val = config.val
    if val.folder is None:
        return []
    behaviour = task_behaviour(config.task.name)
    scale = config.task.scale
    files = list_images(config.resolve_path(val.folder), label="val.folder", hint=ROOT_HINT)
    if val.images:
        wanted = set(val.images)
        files = [f for f in files if f.stem in wanted]
        missing = wanted - {f.stem for f in files}
        if missing:
            raise SwinIRError(f"val.images: {sorted(missing)} not found in {val.folder}")
    files = files[: val.max_images] if val.max_images else files
    level = behaviour.validation_level(config.task, val.sigma, val.quality)
    lr_folder = config.resolve_path(val.lr_folder) if val.lr_folder else None
    images = []
    for i, path in enumerate(files):
        gt = modcrop(behaviour.read(path), scale)
        top, left, h, w = centre_box(gt.shape[0], gt.shape[1], val.crop, scale)
        gt = np.ascontiguousarray(gt[top : top + h, left : left + w])
        if lr_folder is not None:
            lr_path = find_lr_partner(lr_folder, path, scale, plain_stem=True)
            if lr_path is None:
                raise SwinIRError(f"val.lr_folder: no LR file for {path.name} in {lr_folder}")
            lr = behaviour.read_lr(lr_path)
            lq = as_unit(lr[top // scale : (top + h) // scale, left // scale : (left + w) // scale])
        else:
            rng = np.random.default_rng([val.seed, VALIDATION_STREAM, i])
            lq = behaviour.degrade(gt, rng, config.task, level)
        images.append(ValImage(path.stem, to_tensor(lq), gt if gt.dtype == np.uint8 else quantize(gt)))
    log(f"validation: {len(images)} images from {val.folder}"
        + (f" (centre {val.crop}px crops)" if val.crop else "") + (f", level {level}" if level is not None else ""))
    return images
