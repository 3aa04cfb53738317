"""Watching a run: the console, a CSV log, TensorBoard event files and a PNG plot, all written by rank 0 only.

* the console (:class:`Console`): messages and progress, through a tqdm bar on a terminal, else plain lines.

* ``log.csv``: one row per log interval and per validation (iteration, loss, lr, val_psnr, val_ssim,
  val_l1, seconds; plus the training stage's columns, e.g. the GAN stage's loss terms). On resume, rows after
  the resumed checkpoint are dropped so the log matches the run.
* ``events.out.tfevents.*``: TensorBoard scalars, written by :class:`EventWriter`, a minimal writer of the
  TFRecord/``Event`` protobuf format (no tensorboard or protobuf dependency; ``tensorboard --logdir RUN``
  reads it).
* ``progress.png``: training loss and validation PSNR over iterations, drawn with Pillow (no matplotlib).
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from ..fileio import write_bytes_atomic

BASE_COLUMNS = ("iteration", "loss", "lr", "val_psnr", "val_ssim", "val_l1", "seconds")
"""The columns of every run's ``log.csv``; a training stage adds its own after them (:mod:`.stages`)."""


# --------------------------------------------------------------------------------------------------
# Console
# --------------------------------------------------------------------------------------------------


class Console:
    """A run's messages, shown by rank 0 only: through the tqdm bar while one is shown (the bar stays whole),
    else through ``write`` (a line on stderr by default); and the periodic progress of training."""

    def __init__(self, is_main: bool, write: Callable[[str], None] | None = None) -> None:
        self.is_main = is_main
        self._write = write or (lambda message: print(message, file=sys.stderr, flush=True))
        self._bar: Any = None

    def __call__(self, message: str) -> None:
        if not self.is_main:
            return
        if self._bar is not None:
            self._bar.write(message, file=sys.stderr)
        else:
            self._write(message)

    @contextlib.contextmanager
    def progress_bar(self, total: int, initial: int, enabled: bool) -> Iterator[None]:
        """A tqdm bar while the loop runs, on an interactive terminal with ``enabled`` (``log.progress``); plain
        lines otherwise."""
        if not (self.is_main and enabled and sys.stderr.isatty()):
            yield
            return
        from tqdm import tqdm

        with tqdm(total=total, initial=initial, unit="it", dynamic_ncols=True, smoothing=0.05) as bar:
            self._bar = bar
            try:
                yield
            finally:
                self._bar = None

    def advance(self) -> None:
        """One iteration done (moves the bar, if any)."""
        if self._bar is not None:
            self._bar.update(1)

    def progress(self, it: int, total: int, values: Mapping[str, float | None], rate: float) -> None:
        """The losses and learning rate of a log row: the bar's postfix, or a plain line with the ETA."""
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{values.get('loss', math.nan):.4g}", lr=f"{values['lr']:.2e}", refresh=False)
            return
        eta_h = (total - it) * rate / 3600
        losses = " ".join(f"{k} {v:.4g}" for k, v in values.items() if k.startswith("loss") and v is not None)
        self(f"iter {it:,}/{total:,} {losses} lr {values['lr']:.2e} {rate:.2f} s/it ETA {eta_h:.1f} h")


# --------------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------------


class CsvLog:
    """Append-only CSV with a fixed header; ``rows`` keeps what was written (numbers or None)."""

    def __init__(self, path: Path, columns: Sequence[str], *, keep_until: int | None = None) -> None:
        """Open ``path``; with ``keep_until`` (a resume) earlier rows up to that iteration are kept."""
        self.path, self.columns = path, tuple(columns)
        self.rows: list[dict[str, float | None]] = []
        if keep_until is not None and path.is_file():
            with path.open(newline="") as f:
                for row in csv.DictReader(f):
                    values = {c: _number(row.get(c)) for c in self.columns}
                    if values["iteration"] is not None and values["iteration"] <= keep_until:
                        self.rows.append(values)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow(_cell(row[c]) for c in self.columns)
        write_bytes_atomic(path, buffer.getvalue().encode())

    def append(self, values: Mapping[str, float | None]) -> None:
        row = {c: values.get(c) for c in self.columns}
        self.rows.append(row)
        with self.path.open("a", newline="") as f:
            csv.writer(f, lineterminator="\n").writerow(_cell(row[c]) for c in self.columns)


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def _cell(value: float | None) -> str:
    if value is None:
        return ""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


# --------------------------------------------------------------------------------------------------
# TensorBoard event files
# --------------------------------------------------------------------------------------------------


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


class EventWriter:
    """Scalars as TensorBoard event records: ``length, crc(length), Event protobuf, crc(Event)``.

    The protobuf messages are encoded by hand (``Event{wall_time=1, step=2, file_version=3, summary=5}``,
    ``Summary{value=1}``, ``Summary.Value{tag=1, simple_value=2}``); CRCs are masked CRC-32C as TFRecord
    requires. One file per process start, as TensorBoard expects.
    """

    def __init__(self, folder: Path) -> None:
        self._table = _crc32c_table()
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}"
        self.path = folder / name
        folder.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("ab")
        self._write(_field_double(1, time.time()) + _field_bytes(3, b"brain.Event:2"))

    def scalar(self, tag: str, value: float, step: int) -> None:
        summary_value = _field_bytes(1, tag.encode()) + _field_key(2, 5) + struct.pack("<f", float(value))
        summary = _field_bytes(1, summary_value)
        self._write(_field_double(1, time.time()) + _field_key(2, 0) + _varint(step) + _field_bytes(5, summary))

    def close(self) -> None:
        self._file.close()

    def _write(self, event: bytes) -> None:
        header = struct.pack("<Q", len(event))
        crcs = struct.pack("<I", self._masked_crc(header)), struct.pack("<I", self._masked_crc(event))
        record = header + crcs[0] + event + crcs[1]
        self._file.write(record)
        self._file.flush()

    def _masked_crc(self, data: bytes) -> int:
        crc = 0xFFFFFFFF
        for byte in data:
            crc = self._table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
        crc ^= 0xFFFFFFFF
        return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_key(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _field_key(number, 2) + _varint(len(payload)) + payload


def _field_double(number: int, value: float) -> bytes:
    return _field_key(number, 1) + struct.pack("<d", value)


# --------------------------------------------------------------------------------------------------
# PNG plot
# --------------------------------------------------------------------------------------------------

PLOT_SIZE = (960, 640)
MARGIN = (70, 30, 20, 40)  # left, top, right, bottom of each panel


def plot_progress(path: Path, rows: Sequence[Mapping[str, float | None]], *,
                  baseline_psnr: float | None = None, title: str = "") -> None:
    """Two panels: training loss (log scale) and validation PSNR (with the baseline dashed) per iteration."""
    width, height = PLOT_SIZE
    image = Image.new("RGB", PLOT_SIZE, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    loss = [(r["iteration"], r["loss"]) for r in rows if r.get("loss") is not None and r["loss"] > 0]
    psnr = [(r["iteration"], r["val_psnr"]) for r in rows if r.get("val_psnr") is not None]
    x_max = max([p[0] for p in loss + psnr] + [1])
    if title:
        draw.text((width - MARGIN[2] - draw.textlength(title, font=font), 6), title, fill="black", font=font)
    half = height // 2
    _panel(draw, font, (0, 0, width, half), [(loss, SERIES_COLORS[0], "")], x_max, "training loss", log_y=True)
    _panel(draw, font, (0, half, width, height), [(psnr, SERIES_COLORS[1], "")], x_max,
           "validation PSNR (dB, EMA weights)", log_y=False, reference=baseline_psnr)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    write_bytes_atomic(path, buffer.getvalue())


SERIES_COLORS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75),
                 (227, 119, 194), (127, 127, 127))


def plot_curves(path: Path, curves: Mapping[str, Sequence[tuple[float, float]]], *, x_label: str, y_label: str,
                title: str = "", reference: float | None = None, reference_label: str = "baseline") -> None:
    """Several labelled curves on one panel (e.g. validation PSNR of recipe variants), written as PNG; ``reference``
    is drawn as a dashed horizontal line named ``reference_label``."""
    width, height = PLOT_SIZE
    image = Image.new("RGB", PLOT_SIZE, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    series = [(list(points), SERIES_COLORS[i % len(SERIES_COLORS)], label)
              for i, (label, points) in enumerate(curves.items())]
    x_max = max([p[0] for pts, _, _ in series for p in pts] + [1])
    if title:
        draw.text((MARGIN[0], 6), title, fill="black", font=font)
    _panel(draw, font, (0, 0, width, height - 20), series, x_max, y_label, log_y=False, reference=reference,
           reference_label=reference_label)
    draw.text((width // 2 - draw.textlength(x_label, font=font) // 2, height - 16), x_label, fill="black", font=font)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    write_bytes_atomic(path, buffer.getvalue())


def tick_labels(lo: float, hi: float, count: int, *, log_y: bool = False) -> list[str]:
    """Labels of ``count`` evenly spaced ticks from ``lo`` to ``hi`` (log10 units when ``log_y``), with enough
    decimals that neighbours differ: a comparison whose curves span 0.03 dB needs three, not the usual two."""
    values = [lo + (hi - lo) * i / (count - 1) for i in range(count)]
    if log_y:
        return [f"{10**v:.3g}" for v in values]
    step = (hi - lo) / (count - 1)
    decimals = max(2, math.ceil(-math.log10(step))) if step > 0 else 2
    return [f"{v:.{decimals}f}" for v in values]


def _panel(draw: ImageDraw.ImageDraw, font: ImageFont.ImageFont, box: tuple[int, int, int, int],
           series: list[tuple[list[tuple[float, float]], tuple[int, int, int], str]], x_max: float, label: str,
           *, log_y: bool, reference: float | None = None, reference_label: str = "baseline") -> None:
    """One framed panel with axes; ``series`` are (points, colour, legend label) drawn as lines."""
    left, top = box[0] + MARGIN[0], box[1] + MARGIN[1]
    right, bottom = box[2] - MARGIN[2], box[3] - MARGIN[3]
    draw.rectangle((left, top, right, bottom), outline="black")
    draw.text((left, top - 14), label, fill="black", font=font)
    points_all = [p for pts, _, _ in series for p in pts]
    if not points_all:
        draw.text((left + 10, top + 10), "no data yet", fill="gray", font=font)
        return
    ys = [p[1] for p in points_all] + ([reference] if reference is not None else [])
    transform = math.log10 if log_y else float
    lo, hi = transform(min(ys)), transform(max(ys))
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    pad = (hi - lo) * 0.05
    lo, hi = lo - pad, hi + pad

    def xy(x: float, y: float) -> tuple[float, float]:
        return (left + (right - left) * x / x_max, bottom - (bottom - top) * (transform(y) - lo) / (hi - lo))

    for i, text in enumerate(tick_labels(lo, hi, 6, log_y=log_y)):
        y = bottom - (bottom - top) * i / 5
        draw.line((left - 4, y, left, y), fill="black")
        draw.text((4, y - 6), text, fill="black", font=font)
        x_value = x_max * i / 5
        x = left + (right - left) * i / 5
        draw.line((x, bottom, x, bottom + 4), fill="black")
        draw.text((x - 12, bottom + 6), f"{x_value:,.0f}", fill="black", font=font)
    if reference is not None:
        _, y = xy(0, reference)
        for x in range(int(left), int(right), 12):
            draw.line((x, y, min(x + 6, right), y), fill="gray")
        draw.text((left + 8, y - 14), f"{reference_label} {reference:.2f}", fill="gray", font=font)
    for n, (points, color, name) in enumerate(series):
        coords = [xy(x, y) for x, y in points]
        if len(coords) > 1:
            draw.line(coords, fill=color, width=2)
        for cx, cy in coords[-1:] if len(coords) > 30 else coords:
            draw.ellipse((cx - 2, cy - 2, cx + 2, cy + 2), fill=color)
        if name and len(series) > 1:
            ly = top + 8 + 14 * n
            draw.line((right - 170, ly + 6, right - 150, ly + 6), fill=color, width=3)
            draw.text((right - 145, ly), name, fill="black", font=font)
