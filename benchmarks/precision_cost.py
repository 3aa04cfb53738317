"""What bf16 inference costs each bundled model, in dB against fp32, on whole benchmark sets (issue 27).

``--precision auto`` promises at most 0.02 dB. Each bundled model is evaluated with ``swinir eval``'s protocol
(``swinir.evaluation``) on its headline set, in fp32 and in bf16, in one process; the table gives both and
the difference. Slow (whole sets, twice): for the record, not for CI (tests/test_bundled.py checks crops).

    python benchmarks/precision_cost.py            # writes benchmarks/results/precision_cost.md
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from _common import machine_line, markdown_table
from swinir.bundled import bundled_models
from swinir.evaluation import EvalSettings, evaluate_dataset, model_method

RESULTS = Path(__file__).resolve().parent / "results" / "precision_cost.md"
ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SWINIR_SHARED", ROOT.parent / "shared"))

# model -> (settings, HR folder, LR folder or None, the metric compared)
ROWS: dict[str, tuple[EvalSettings, str, str | None, str]] = {
    "swinir-s-photo-x4": (EvalSettings("photo_sr", 4, quality=75), "Set5/HR", None, "psnr_y"),
    "swinir-s-sr-x2": (EvalSettings("classical_sr", 2), "Set5/HR", "Set5/LR_bicubic/X2", "psnr_y"),
    "swinir-s-sr-x4": (EvalSettings("classical_sr", 4), "Set5/HR", "Set5/LR_bicubic/X4", "psnr_y"),
    "swinir-c-denoise": (EvalSettings("color_dn", sigma=25), "McMaster", None, "psnr"),
    "swinir-c-jpeg": (EvalSettings("color_car", quality=10), "LIVE1", None, "psnr"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    files = {m.name: m.path for m in bundled_models()}
    rows = []
    for name, (settings, hr, lr, key) in ROWS.items():
        values = {}
        for precision in ("fp32", "bf16"):
            method = model_method(files[name], settings, precision=precision)
            result = evaluate_dataset(method, settings, hr_dir=SHARED / "datasets" / hr,
                                      lr_dir=SHARED / "datasets" / lr if lr else None, progress=False)
            values[precision] = result.mean[key]
        rows.append([f"`{name}`", hr.split("/")[0], key, f"{values['fp32']:.3f}", f"{values['bf16']:.3f}",
                     f"{values['bf16'] - values['fp32']:+.3f}"])
        print(rows[-1], flush=True)
    table = markdown_table(["model", "set", "metric", "fp32 dB", "bf16 dB", "bf16 - fp32"], rows)
    text = "\n".join(["# bf16 against fp32 on the bundled models (`benchmarks/precision_cost.py`)", "",
                      f"- machine: {machine_line()}", "- whole sets, `swinir eval`'s protocol, one process", "",
                      table, ""])
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
