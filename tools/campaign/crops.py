"""Crops of real JPEGs for a model card: what a model with rivals does to photos as people have them.

Held-out LIVE1 pictures saved as JPEG quality 75 (OpenCV, as a phone or a website would), then a textured
96x96 piece of the JPEG (on its 8x8 block grid) upscaled through bicubic, the rivals and the shipped model.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

import swinir
from swinir.degradations import imresize, jpeg_compress
from swinir.evaluation import comparison_panel, write_png

from .bundles import Bundle, Workspace, bundle_named

CROP_PHOTOS = ("LIVE1/bikes.bmp", "LIVE1/parrots.bmp", "LIVE1/buildings.bmp")
CROP_SIZE, CROP_QUALITY = 96, 75


def crops_image(bundle: Bundle) -> str:
    """The crops' path, relative to the model cards' folder."""
    return f"images/crops_{bundle.name}.png"


def textured_corner(img: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left (on the 8x8 JPEG grid) of the ``size`` square with the most detail (Laplacian energy)."""
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float64)
    energy = cv2.integral(np.abs(cv2.Laplacian(gray, cv2.CV_64F)))
    best, corner = -1.0, (0, 0)
    for y in range(0, img.shape[0] - size + 1, 8):
        for x in range(0, img.shape[1] - size + 1, 8):
            e = energy[y + size, x + size] - energy[y, x + size] - energy[y + size, x] + energy[y, x]
            if e > best:
                best, corner = e, (y, x)
    return corner


def real_jpeg_crops(bundle: Bundle, ws: Workspace) -> str | None:
    """Write (when the shipped file is newer) side-by-side crops of real JPEGs through bicubic, the rivals and
    the shipped model, one row per photo; returns the image's path relative to the cards, or None."""
    rel = crops_image(bundle)
    shipped = ws.shipped(bundle)
    if ws.report is None or not bundle.rivals or not shipped.is_file():
        return None
    out = ws.report.parent / rel
    if out.is_file() and out.stat().st_mtime >= shipped.stat().st_mtime:
        return rel
    models = [(name, swinir.load(ws.shipped(bundle_named(name, ws.bundles)))) for name in bundle.rivals]
    models.append((bundle.name, swinir.load(shipped)))
    rows = []
    for photo in CROP_PHOTOS:
        img = cv2.imread(str(ws.datasets / photo), cv2.IMREAD_COLOR)[..., ::-1]
        y, x = textured_corner(img, CROP_SIZE)
        piece = jpeg_compress(np.ascontiguousarray(img), CROP_QUALITY)[y : y + CROP_SIZE, x : x + CROP_SIZE]
        s = bundle.scale
        panels = [(f"{Path(photo).name} JPEG q{CROP_QUALITY}", np.repeat(np.repeat(piece, s, 0), s, 1)),
                  ("bicubic", np.clip(np.round(imresize(piece.astype(np.float64), float(s))), 0, 255).astype(np.uint8))]
        panels += [(name, swinir.restore(model, piece, precision="fp32")) for name, model in models]
        rows.append(comparison_panel(panels, (0, 0), CROP_SIZE * s, zoom=1))
    gap = np.full((8, rows[0].shape[1], 3), 255, np.uint8)
    write_png(out, np.concatenate([r for row in rows for r in (row, gap)][:-1], axis=0))
    return rel
