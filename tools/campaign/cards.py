"""Card rendering: the model cards (``docs/bundled_models.md``, with each model's campaign curve as PNG) and
the README's table of the bundled models, both from the manifest alone (nothing is measured here)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from swinir.bundled import BundledModel
from swinir.fileio import write_bytes_atomic
from swinir.tasks import BASELINE_LABELS
from swinir.training import plot_curves

from .bundles import Bundle, Row, Workspace
from .crops import CROP_QUALITY, CROP_SIZE, crops_image, real_jpeg_crops
from .measuring import fmt_metrics
from .store import read_entries

README_START, README_END = "<!-- bundled-models:start -->", "<!-- bundled-models:end -->"

CARDS_INTRO = (
    "# Bundled models", "",
    "Trained on this project's CPU machines with `swinir train` (recipes in `src/swinir/training/recipes`),",
    "continued session after session by `scripts/campaign.py`, which ships a candidate only when it",
    "measures better than the shipped file with the evaluation protocol of `swinir eval`. SR rows: PSNR /",
    "SSIM on Y, border = scale; denoising: PSNR / SSIM on RGB (noise seed 0); JPEG: PSNR / SSIM / PSNR-B",
    "on RGB. The paper's numbers (SwinIR-S for SR, SwinIR-M trained per level for the others, on",
    "DIV2K-scale data for hundreds of thousands of iterations) are for reference only.", "",
)


def curve_image(bundle: Bundle) -> str:
    """The campaign curve's path, relative to the model cards' folder."""
    return f"images/campaign_{bundle.name}.png"


def campaign_curves(entry: BundledModel, bundle: Bundle) -> dict[str, list[tuple[float, float]]]:
    """Per target row, (iterations, dB above its target) of every measured candidate, in order of iterations:
    one scale for all rows, so that the dashed line at 0 is every row's target."""
    ledger = sorted(entry.ledger, key=lambda r: r["iterations"])
    return {f"{r.label} (target {r.target:g})": [(float(m["iterations"]), m["values"][r.label] - r.target)
                                               for m in ledger if r.label in m["values"]]
            for r in bundle.target_rows if r.target is not None}


def write_docs(ws: Workspace) -> None:
    """Regenerate the model cards (with each model's campaign curve as PNG) and the README's table."""
    entries = read_entries(ws)
    if ws.report is not None:
        for b in ws.bundles:
            entry = entries.get(b.name)
            if entry is not None and entry.ledger:
                plot_curves(ws.report.parent / curve_image(b), campaign_curves(entry, b),
                            x_label="iterations (every candidate the campaign measured)",
                            y_label="PSNR - target (dB)", title=f"{b.name}: campaign", reference=0.0,
                            reference_label="target")
            real_jpeg_crops(b, ws)
        write_bytes_atomic(ws.report, card_text(entries, ws).encode())
    if ws.readme is not None and ws.readme.is_file():
        text = ws.readme.read_text()
        if README_START in text and README_END in text:
            head, rest = text.split(README_START, 1)
            _, tail = rest.split(README_END, 1)
            write_bytes_atomic(ws.readme, (head + README_START + "\n" + readme_table(entries, ws) + README_END
                                           + tail).encode())


def readme_table(entries: Mapping[str, BundledModel], ws: Workspace) -> str:
    """The README's table: one line per model, its first two measured rows (else its target rows)."""
    lines = ["| model | task | size | iterations | measured | baseline | target | paper |",
             "|---|---|---:|---:|---|---|---|---|"]
    for b in ws.bundles:
        e = entries.get(b.name)
        if e is None:
            continue
        size = ws.shipped(b).stat().st_size / 1e6 if ws.shipped(b).is_file() else 0
        q = e.quality
        shown = [r for r in b.rows if r.label in q][:2] or list(b.target_rows)
        measured = ", ".join(f"{r.label} {q[r.label]['model'][r.keys[0]]:.2f}" for r in shown if r.label in q)
        base = ", ".join(f"{q[r.label][b.baseline][r.keys[0]]:.2f}" for r in shown if r.label in q)
        measured = measured or "not measured yet"
        target = ", ".join("-" if r.target is None else f"{r.target:g}" for r in shown)  # one per row shown
        paper = ", ".join(r.paper.split(" ")[0] for r in shown)
        lines.append(f"| `{b.name}` | {b.label} | {size:.1f} MB | {e.training['iterations']:,} | {measured} | "
                     f"{BASELINE_LABELS[b.baseline]} {base} | {target} | {paper} |")
    return "\n".join(lines) + "\n"


def card_text(entries: Mapping[str, BundledModel], ws: Workspace) -> str:
    """The model cards: an introduction, then one section per model the manifest lists."""
    lines = list(CARDS_INTRO)
    for b in ws.bundles:
        e = entries.get(b.name)
        if e is not None:
            lines += (_card_facts(b, e) + _quality_table(b, e) + _history_table(e.training.get("history", []))
                      + _ledger_table(b, e) + _crops(b, ws) + _comparisons(b, e))
    return "\n".join(lines)


def _card_facts(b: Bundle, e: BundledModel) -> list[str]:
    t = e.training
    return [f"## {b.name}", "", b.description + ".", "",
            f"- task: `{b.task}`" + (f" x{b.scale}" if b.task == "sr" else "")
            + f"; file `src/swinir/weights/{e.file}`; {t['parameters']:,} parameters",
            f"- data: {t['data']} (no DIV2K: none is available here)",
            f"- recipe: `{t['recipe']}` (batch {t['batch']}, LR patch {t['patch']}, {t['precision']})",
            f"- trained: {t['iterations']:,} iterations, {t['wall_hours']} wall-clock hours, "
            f"{t.get('cpu_hours', t['wall_hours'])} CPU hours",
            "- intended use: a working default on any machine; for best quality use the authors' checkpoints",
            f"- limits: {b.limits}",
            f"- measured: {e.quality_measured}", ""]


def _target_cell(row: Row) -> str:
    return "held out" if row.held_out else "-" if row.target is None else f"{row.target:g}"


def _quality_table(b: Bundle, e: BundledModel) -> list[str]:
    """Every measured row: the model, its baseline, the gain, each rival and the gain over it, target, paper."""
    if not e.quality:
        return []
    rivals = "".join(f" {name} | gain over it (dB) |" for name in b.rivals)
    lines = [f"| set | this model | {BASELINE_LABELS[b.baseline]} | gain (dB) |{rivals} target | paper |",
             "|---|---|---|---:|" + "---|---:|" * len(b.rivals) + "---:|---|"]
    for r in b.rows:
        q = e.quality.get(r.label)
        if q is None:
            continue
        mv, bv = q["model"], q[b.baseline]
        against = "".join(f" {fmt_metrics(q[n])} | {mv[r.keys[0]] - q[n][r.keys[0]]:+.2f} |" if n in q
                          else " - | - |" for n in b.rivals)
        lines.append(f"| {r.label} | {fmt_metrics(mv)} | {fmt_metrics(bv)} | "
                     f"{mv[r.keys[0]] - bv[r.keys[0]]:+.2f} |{against} {_target_cell(r)} | {r.paper} |")
    lines.append("")
    held = [r.label for r in b.rows if r.held_out and r.label in e.quality]
    if held:
        lines += [f"Held out: {', '.join(held)} — images this model never saw, in training, in the "
                  "validation during training, or when the campaign chose what to ship.", ""]
    return lines


def _history_table(history: list[dict[str, Any]]) -> list[str]:
    """One row per training segment (a new segment starts with a fresh optimiser)."""
    if not history:
        return []
    lines = ["Training history (one row per segment; a new segment starts with a fresh optimiser):", "",
             "| iterations | hours | CPU hours | it / CPU hour | date | machine | lr, schedule | "
             "batch x patch | notes |",
             "|---|---:|---:|---:|---|---|---|---|---|"]
    for h in history:
        recipe = f"{h.get('lr', '-')}, {h.get('schedule', '-')}" + (
            f", warm-up {h['warmup']}" if h.get("warmup") else "")
        on_gpu = h.get("device", "cpu") != "cpu"  # then the machine is the GPU's host, the rate "-"
        rate = f"{(h['end'] - h['start']) / h['cpu_hours']:,.0f}" if h.get("cpu_hours") and not on_gpu else "-"
        machine = h.get("machine", "-") + (f"; {h['device']}" if on_gpu else "")
        lines.append(f"| {h['start']:,} -> {h['end']:,} | {h.get('hours', '-')} | {h.get('cpu_hours', '-')} "
                     f"| {rate} | {h.get('date', '-')} | {machine} | {recipe} | "
                     f"{h.get('batch_size', '-')} x {h.get('patch_size', '-')} | {h.get('note', '')} |")
    return [*lines, ""]


def _ledger_table(b: Bundle, e: BundledModel) -> list[str]:
    """Every candidate the campaign measured, and the campaign curve."""
    if not e.ledger:
        return []
    labels = [r.label for r in b.target_rows]
    lines = ["Campaign log (every candidate measured; shipped only when better):", "",
             f"| date | iterations | CPU hours | {' | '.join(labels)} | score | shipped | machine |",
             "|---|---:|---:|" + "---:|" * len(labels) + "---:|---|---|"]
    for row in e.ledger:
        vals = " | ".join(f"{row['values'].get(lab, math.nan):.2f}" for lab in labels)
        lines.append(f"| {row['date']} | {row['iterations']:,} | {row['cpu_hours']} | {vals} | "
                     f"{row['score']:.3f} | {'yes' if row['shipped'] else 'no'} | {row['machine']} |")
    return [*lines, "", f"![{b.name} campaign curve]({curve_image(b)})", ""]


def _crops(b: Bundle, ws: Workspace) -> list[str]:
    """The real-JPEG crops, for a model with rivals whose crops image exists."""
    crops = crops_image(b)
    if not b.rivals or ws.report is None or not (ws.report.parent / crops).is_file():
        return []
    return [f"Real JPEGs (held-out LIVE1 photos saved at JPEG quality {CROP_QUALITY}, a {CROP_SIZE}x"
            f"{CROP_SIZE} piece upscaled x{b.scale}; fp32): the input enlarged, bicubic, "
            + ", ".join(b.rivals) + ", this model.", "", f"![{b.name} on real JPEGs]({crops})", ""]


def _comparisons(b: Bundle, e: BundledModel) -> list[str]:
    """Each recipe comparison: its variants by score, with the validation at a common iteration."""
    lines: list[str] = []
    for c in e.comparisons:
        start = ("from random weights (nothing shipped from it)" if c.get("from_scratch") else
                 f"from iteration {c['start_iterations']:,} of the shipped weights")
        lines += [f"Recipe comparison, {c['date']}: {c['cpu_minutes']} CPU-minutes per variant {start} "
                  f"({c['machine']}); winner `{c['winner']}`.", "",
                  "| variant | changes | iterations | score (dB) | validation at the same iteration (dB) |",
                  "|---|---|---:|---:|---:|"]
        common = c.get("validation_at") or {"iteration": None, "values": {}}
        for v in sorted(c["variants"], key=lambda v: -v["score"]):
            val = common["values"].get(v["label"])
            lines.append(f"| {v['label']} | {'; '.join(v['overrides']) or 'the recipe'} | {v['iterations']:,} | "
                         f"{v['score']:.3f} | {'-' if val is None else f'{val:.3f}'} |")
        lines.append("")
        if common["iteration"] is not None:
            lines += [f"Score: the mean of the target rows after the CPU budget (what decides). Validation: the "
                      f"trainer's EMA weights on its validation crops at iteration {common['iteration']:,}, the "
                      "last one every variant reached (equal work per iteration only where batch and patch are "
                      "equal).", ""]
        if c.get("note"):
            lines += [c["note"], ""]
        lines += [f"![{b.name} recipe comparison]({c['image']})", ""]
    return lines
