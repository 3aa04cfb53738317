"""Running a method over datasets: read each sample, restore it, quantise and score the output, save pictures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..datasets import dataset_name
from .methods import Method
from .protocol import EvalSettings, load_sample, sample_files
from .report import DatasetResult, ImageResult, save_comparison, write_png
from .scoring import output_to_uint8, score


def evaluate_dataset(method: Method, settings: EvalSettings, *, hr_dir: Path | None = None, lr_dir: Path | None = None,
                     name: str | None = None, method_name: str = "method", save_dir: Path | None = None,
                     progress: bool = True) -> DatasetResult:
    """Run ``method`` over one dataset and score it.

    ``hr_dir`` holds the ground truths (not used by ``real_sr``, whose inputs are the files in ``lr_dir``).
    With ``save_dir``, every output is written to ``save_dir/<dataset>/<name>.png`` and a side-by-side crop
    to ``save_dir/<dataset>/compare/<name>.png``.
    """
    from tqdm import tqdm

    files, folder = sample_files(settings, hr_dir, lr_dir)
    partners = lr_dir if settings.spec.has_ground_truth else None  # real_sr: the files are the LR inputs
    result = DatasetResult(name or dataset_name(folder), settings, method_name)
    for path in tqdm(files, desc=result.dataset, unit="img", disable=not progress, leave=False):
        sample = load_sample(path, settings, partners)
        h, w = sample.lq.shape[:2]
        expected = (h * settings.scale, w * settings.scale, *sample.lq.shape[2:])
        output = output_to_uint8(method(sample.lq), expected)
        result.images.append(ImageResult(sample.name, score(output, sample, settings)))
        if save_dir is not None:
            folder_out = save_dir / result.dataset
            write_png(folder_out / f"{sample.name}.png", output)
            save_comparison(folder_out / "compare" / f"{sample.name}.png", sample, output, settings, method_name)
    return result


def evaluate(method: Method, settings: EvalSettings, datasets: Sequence[tuple[Path | None, Path | None]], *,
             method_name: str = "method", save_dir: Path | None = None, progress: bool = True) -> list[DatasetResult]:
    """:func:`evaluate_dataset` over several ``(hr_dir, lr_dir)`` pairs; duplicate names get a ``-2`` suffix."""
    results: list[DatasetResult] = []
    seen: set[str] = set()
    for hr_dir, lr_dir in datasets:
        folder = hr_dir if settings.spec.has_ground_truth else lr_dir
        base = dataset_name(folder) if folder is not None else "dataset"
        name, n = base, 1
        while name in seen:
            n += 1
            name = f"{base}-{n}"
        seen.add(name)
        results.append(evaluate_dataset(method, settings, hr_dir=hr_dir, lr_dir=lr_dir, name=name,
                                        method_name=method_name, save_dir=save_dir, progress=progress))
    return results
