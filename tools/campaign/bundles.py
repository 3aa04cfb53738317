"""The bundle table: the shipped models, the rows each is measured on, and where the campaign works.

A :class:`Bundle` names a shipped model, the recipe that trains it and its :class:`Row` list (a task setting
on one dataset, with the target the campaign aims at); :class:`Workspace` says where the weights, their
manifest, the cards and the data are (tests point it at a temporary folder).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from swinir.errors import SwinIRError
from swinir.evaluation import EvalSettings
from swinir.tasks import family_label, get_task

ROOT = Path(__file__).resolve().parents[2]  # the repository
SHARED = Path(os.environ.get("SWINIR_SHARED", ROOT.parent / "shared"))

EVAL_PRECISION = "fp32"
"""The precision of every measurement. fp32, always: what ships is decided on exact values. bf16 moves PSNR by up
to 0.02 dB, enough to ship a model that misses a target in fp32 (the x2 candidate at 6,441 iterations read 37.002
in bf16, 36.98 in fp32)."""


@dataclass(frozen=True)
class Row:
    """One measured row of a model card: a task setting on one dataset, and the target it should reach."""

    label: str
    settings: EvalSettings
    hr: str  # folder under datasets/
    lr: str | None
    keys: tuple[str, ...]  # metrics shown; the first one is compared (see row_keys)
    target: float | None = None  # the campaign's goal for keys[0] (dB); None = reported only
    paper: str = "-"  # the paper's number for the row, for reference
    held_out: bool = False  # images used neither in training, in its validation, nor to choose what ships


def row_keys(settings: EvalSettings) -> tuple[str, ...]:
    """The metrics a row shows: its task's headline PSNR and SSIM (luma for SR, as the paper's tables), and
    PSNR-B after them where the task measures it (JPEG)."""
    task = get_task(settings.task)
    return (*task.headline_metrics, *(k for k in task.metric_keys if k == "psnrb"))


@dataclass(frozen=True)
class Bundle:
    """One shipped model: its name, the recipe that trains it, and its rows."""

    name: str
    recipe: str
    task: str  # photo | sr | denoise | jpeg
    scale: int
    description: str
    rows: tuple[Row, ...]
    start_from: str | None = None  # the bundled model whose weights a first run continues (a fine-tune)
    rivals: tuple[str, ...] = ()  # other bundled models measured on this one's rows (what it must beat)
    limits: str = ("far shorter training than the paper; only bicubic / Gaussian / JPEG degradations seen, so "
                   "real-world photos with other degradations are out of its scope")

    @property
    def baseline(self) -> str:
        """What the model is compared with: its task's baseline (``swinir.tasks``: bicubic or the input)."""
        return get_task(self.rows[0].settings.task).baseline

    @property
    def label(self) -> str:
        """How the model's task is shown: ``sr x2``, ``photo x4``, ``denoise`` (``swinir.tasks.family_label``)."""
        return family_label(self.task, self.scale)  # type: ignore[arg-type]

    @property
    def target_rows(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.target is not None)


def sr_rows(scale: int, targets: dict[str, float], paper: dict[str, str]) -> tuple[Row, ...]:
    """Bicubic SR rows: Set5 and Set14 (with targets and the paper's numbers), Kodak24 held out."""
    settings = EvalSettings(task="classical_sr", scale=scale)
    return (*(Row(f"{ds} x{scale}", settings, f"{ds}/HR", f"{ds}/LR_bicubic/X{scale}", row_keys(settings),
                  targets[ds], paper[ds]) for ds in ("Set5", "Set14")),
            # Kodak24 has no distributed LR files: ``swinir eval`` makes them with MATLAB's bicubic, as for Set5
            Row(f"Kodak24 x{scale}", settings, "Kodak24", None, row_keys(settings), held_out=True))


# The held-out rows: the shared data has no BSD100 / CBSD68 / Urban100 (see datasets/MANIFEST.md), so each model is
# checked on a benchmark set that serves another task here and that it never saw: Kodak24 for SR and JPEG, LIVE1
# for denoising.

def _denoise_rows() -> tuple[Row, ...]:
    targets = {("McMaster", 25): 32.30, ("Kodak24", 25): 32.40}
    paper = {("McMaster", 15): "35.61", ("McMaster", 25): "33.20", ("McMaster", 50): "30.22",
             ("Kodak24", 15): "35.34", ("Kodak24", 25): "32.89", ("Kodak24", 50): "29.79"}
    def settings(sigma: int) -> EvalSettings:
        return EvalSettings(task="color_dn", sigma=sigma)

    rows = [Row(f"{ds} sigma {s}", settings(s), ds, None, row_keys(settings(s)), targets.get((ds, s)), paper[ds, s])
            for s in (25, 15, 50) for ds in ("McMaster", "Kodak24")]
    rows.append(Row("LIVE1 sigma 25", settings(25), "LIVE1", None, row_keys(settings(25)), held_out=True))
    return tuple(rows)


def _jpeg_rows() -> tuple[Row, ...]:
    paper = {10: "28.06 / .8089 / 27.76", 20: "30.45 / .8741 / 29.97", 30: "31.82 / .9018 / 31.24",
             40: "32.75 / .9174 / 32.12"}
    keys = row_keys(EvalSettings(task="color_car", quality=10))
    rows = [Row(f"LIVE1 q{q}", EvalSettings(task="color_car", quality=q), "LIVE1", None, keys,
                27.35 if q == 10 else None, paper[q]) for q in (10, 20, 30, 40)]
    rows.append(Row("Kodak24 q10", EvalSettings(task="color_car", quality=10), "Kodak24", None, keys, held_out=True))
    return tuple(rows)


# The photo model must beat the bicubic x4 model by 0.5 dB on photos (issue 25). Measured 2026-12-05 in fp32 on
# bicubic x1/4 + JPEG q75: swinir-s-sr-x4 Set5 28.13, Set14 25.97 (held out: Kodak24 26.66, LIVE1 25.49).
PHOTO_TARGETS = {"Set5": 28.65, "Set14": 26.45}


def _photo_rows(targets: dict[str, float]) -> tuple[Row, ...]:
    """Photo SR x4 on a fixed stand-in for a photo off the web: MATLAB bicubic x1/4, then JPEG quality 75."""
    settings = EvalSettings(task="photo_sr", scale=4, quality=75)
    return tuple(Row(f"{ds} photo q75", settings, hr, None, row_keys(settings), targets.get(ds),
                     held_out=ds not in targets)
                 for ds, hr in (("Set5", "Set5/HR"), ("Set14", "Set14/HR"), ("Kodak24", "Kodak24"), ("LIVE1", "LIVE1")))


BUNDLES: tuple[Bundle, ...] = (
    Bundle("swinir-s-photo-x4", "bundled_photo_x4", "photo", 4,
           "x4 super-resolution of photos as people have them (resized, JPEG-compressed, a little noise), "
           "SwinIR-S architecture, fine-tuned on this CPU from swinir-s-sr-x4",
           _photo_rows(PHOTO_TARGETS), start_from="swinir-s-sr-x4", rivals=("swinir-s-sr-x4",),
           limits="far shorter training than the paper; trained for mild blur, resizing, light sensor noise and JPEG "
                  "quality 30-95: heavy noise, strong motion blur or old scans are out of its scope; no GAN, so it "
                  "sharpens what the photo holds rather than inventing texture"),
    Bundle("swinir-s-sr-x2", "bundled_sr_x2", "sr", 2,
           "classical (bicubic) super-resolution x2, SwinIR-S architecture, trained on this CPU",
           sr_rows(2, {"Set5": 37.40, "Set14": 32.90}, {"Set5": "38.14 / .9611 (S)", "Set14": "33.86 / .9206 (S)"})),
    Bundle("swinir-s-sr-x4", "bundled_sr_x4", "sr", 4,
           "classical (bicubic) super-resolution x4, SwinIR-S architecture, trained on this CPU",
           sr_rows(4, {"Set5": 31.40, "Set14": 28.05}, {"Set5": "32.44 / .8976 (S)", "Set14": "28.77 / .7858 (S)"})),
    Bundle("swinir-c-denoise", "bundled_color_dn", "denoise", 1,
           "blind color denoising (Gaussian, sigma 0-50), compact SwinIR, trained on this CPU", _denoise_rows()),
    Bundle("swinir-c-jpeg", "bundled_color_car", "jpeg", 1,
           "blind color JPEG artifact reduction (quality 10-40), compact SwinIR, trained on this CPU", _jpeg_rows()),
)


def bundle_named(name: str, bundles: Sequence[Bundle] = BUNDLES) -> Bundle:
    """The bundle called ``name``; a one-line error naming the others when there is none."""
    for b in bundles:
        if b.name == name:
            return b
    raise SwinIRError(f"unknown bundled model {name!r}; choose one of: {', '.join(b.name for b in bundles)}")


@dataclass(frozen=True)
class Workspace:
    """Where the campaign reads and writes: the shipped weights, their manifest, the cards, the data."""

    weights_dir: Path = ROOT / "src" / "swinir" / "weights"
    report: Path | None = ROOT / "docs" / "bundled_models.md"
    readme: Path | None = ROOT / "README.md"
    datasets: Path = SHARED / "datasets"
    bundles: tuple[Bundle, ...] = BUNDLES

    @property
    def manifest(self) -> Path:
        return self.weights_dir / "models.json"

    def shipped(self, bundle: Bundle) -> Path:
        return self.weights_dir / f"{bundle.name}.safetensors"

    def start_weights(self, bundle: Bundle) -> Path:
        """What training continues: the shipped file, or before one exists, that of ``bundle.start_from``."""
        if self.shipped(bundle).is_file() or bundle.start_from is None:
            return self.shipped(bundle)
        return self.shipped(bundle_named(bundle.start_from, self.bundles))

    def named(self, names: Sequence[str]) -> list[Bundle]:
        """The bundles called ``names``, or every bundle when none is named."""
        return [bundle_named(n, self.bundles) for n in names] or list(self.bundles)
