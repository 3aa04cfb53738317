"""Evaluation as the SwinIR paper measures it: degraded inputs, metrics, tables (``swinir eval``).

The steps follow the reference test script (``shared/PROTOCOL.md``) so that numbers are comparable with
published ones:

- **SR** (``classical_sr``, ``lightweight_sr``): the LR file ``{lr_dir}/{name}x{scale}{ext}`` when an LR
  folder is given, else MATLAB bicubic of the modcropped HR; every image is read as 3-channel RGB (a
  gray file is replicated, as OpenCV's ``IMREAD_COLOR`` in the reference); ground truth cropped top-left
  to ``LR * scale``; border = scale; Y-channel PSNR/SSIM (the tables) plus RGB ones.
- **real_sr**: LR images only (from ``--lr``), no ground truth and no metrics; outputs can be saved.
- **Denoising**: ground truth as float32 in [0, 1], noise with seed 0 drawn anew for every image
  (:func:`~swinir.degradations.add_gaussian_noise`), neither clipped nor quantised; border 0.
- **JPEG** (``gray_car``, ``color_car``): OpenCV JPEG at the given quality; gray JPEG turns a 3-channel
  file into its rounded Y first; border 0; PSNR, SSIM and PSNR-B.

The package, one concern per module, each importing only those before it:

- :mod:`.protocol`: :class:`EvalSettings` (the task's facts from :data:`swinir.tasks.TASKS`), the samples
  and their degradation;
- :mod:`.scoring`: a method's output quantised to 8 bits as the reference does, then scored;
- :mod:`.methods`: what is evaluated (a :data:`Method`): the baselines, a checkpoint, the bundled models;
- :mod:`.report`: results, tables, JSON/CSV and side-by-side pictures;
- :mod:`.runner`: a method over datasets (:func:`evaluate`);
- :mod:`.command`: the ``swinir eval`` options and command.

Folder listing, the reference-faithful reader and the LR file lookup live in :mod:`swinir.datasets`, shared
with training.
"""

from ..taskops import NOISE_SEED
from .command import add_eval_arguments, dataset_pairs, run_eval_command, settings_from_args, weights_method_from_args
from .methods import (
    BASELINES,
    Method,
    baseline_method,
    bicubic_method,
    bundled_weights_for,
    has_bundled_model,
    identity_method,
    model_method,
)
from .protocol import EvalSettings, GrayLuma, Sample, degrade, load_sample, sample_files
from .report import (
    COMPARE_CROP,
    COMPARE_GAP,
    COMPARE_LABEL_HEIGHT,
    COMPARE_ZOOM,
    DatasetResult,
    ImageResult,
    choose_crop,
    comparison_panel,
    format_table,
    results_to_csv,
    results_to_json,
    save_comparison,
    write_png,
)
from .runner import evaluate, evaluate_dataset
from .scoring import output_to_uint8, score

__all__ = [
    "BASELINES", "COMPARE_CROP", "COMPARE_GAP", "COMPARE_LABEL_HEIGHT", "COMPARE_ZOOM", "NOISE_SEED", "DatasetResult",
    "EvalSettings", "GrayLuma", "ImageResult", "Method", "Sample", "add_eval_arguments", "baseline_method",
    "bicubic_method", "bundled_weights_for", "choose_crop", "comparison_panel", "dataset_pairs", "degrade",
    "evaluate", "evaluate_dataset", "format_table", "has_bundled_model", "identity_method", "load_sample",
    "model_method", "output_to_uint8", "results_to_csv", "results_to_json", "run_eval_command", "sample_files",
    "save_comparison", "score", "settings_from_args", "weights_method_from_args", "write_png",
]
