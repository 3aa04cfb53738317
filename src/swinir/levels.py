"""Sample values to the model's [0, 1] scale and back: how scientific images (uint8, uint16 holding 10 to 16
bits, float32) keep their type and range through a restore.

Models are trained on [0, 1]; a file's numbers mean photons, grey levels or Hounsfield units. A
:class:`Levels` names the two source values that map to 0 and 1, and :func:`from_unit` is the exact inverse of
:func:`to_unit` (computed in float64), so a model that changed nothing gives the input back. Decisions:

* ``full`` (the default) is the type's range: 0..255 for uint8; 0..2**bits-1 for uint16, where ``bits`` is
  what the file declares (BitsPerSample 12) or else the fewest of 10, 12, 14 or 16 bits that hold the data's
  maximum, so 12-bit camera data in a 16-bit container is seen by the model at its real brightness and comes
  back inside 0..4095; 0..1 for float data inside [0, 1], else the data's own minimum..maximum.
* ``percentile`` maps the low and high percentiles (default 0.1 and 99.9, as microscopy tools normalise) to 0
  and 1; values beyond them go to the model unclipped, and come back through the same line.
* Clipping happens only where the output type requires it (an integer outside its range); how many values
  were clipped is returned so that the user is told. Floats are never clipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import SwinIRError

__all__ = ["DEFAULT_PERCENTILES", "Levels", "from_unit", "full_range", "parse_normalize", "percentile_range",
           "to_unit"]

DEFAULT_PERCENTILES = (0.1, 99.9)
SUPPORTED_DTYPES = (np.uint8, np.uint16, np.float32)
_UINT16_BITS = (10, 12, 14, 16)


@dataclass(frozen=True)
class Levels:
    """Source value ``low`` maps to 0 and ``high`` to 1; outputs of an integer type are kept in 0..``ceiling``."""

    low: float
    high: float
    dtype: np.dtype
    ceiling: float | None = None  # the largest value an integer output may hold; None for floats
    label: str = ""

    def __post_init__(self) -> None:
        if not self.high > self.low:
            raise ValueError(f"levels need high > low, got {self.low}..{self.high}")


def parse_normalize(text: str) -> tuple[str, tuple[float, float]]:
    """``full``, ``percentile`` or ``percentile:LOW,HIGH`` -> (mode, (low, high) percentiles)."""
    mode, _, rest = text.partition(":")
    if mode == "full" and not rest:
        return "full", DEFAULT_PERCENTILES
    if mode == "percentile":
        if not rest:
            return "percentile", DEFAULT_PERCENTILES
        try:
            low, high = (float(v) for v in rest.split(","))
        except ValueError:
            low = high = -1.0
        if 0 <= low < high <= 100:
            return "percentile", (low, high)
    raise SwinIRError(f"--normalize {text}: use full, percentile, or percentile:LOW,HIGH with 0 <= LOW < HIGH <= 100 "
                      "(e.g. percentile:0.1,99.9)")


def full_range(dtype: np.dtype, data_min: float, data_max: float, declared_bits: int | None = None) -> Levels:
    """The ``full`` levels of a type (see the module docstring), given the data's extremes."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return Levels(0.0, 255.0, dtype, 255.0, "0..255")
    if dtype == np.uint16:
        bits = declared_bits if declared_bits and declared_bits < 16 else next(
            b for b in _UINT16_BITS if data_max < 2**b)
        top = float(2**bits - 1)
        return Levels(0.0, top, dtype, top, f"{bits}-bit range 0..{int(top)}")
    if dtype == np.float32:
        if data_min >= 0 and data_max <= 1:
            return Levels(0.0, 1.0, dtype, None, "0..1")
        if data_max > data_min:
            return Levels(float(data_min), float(data_max), dtype, None, f"the data's range {data_min:g}..{data_max:g}")
        return Levels(float(data_min), float(data_min) + 1.0, dtype, None, f"a constant image ({data_min:g})")
    raise SwinIRError(f"{dtype} samples cannot be restored; convert the image to uint8, uint16 or float32")


def percentile_range(full: Levels, sample: np.ndarray, percentiles: tuple[float, float]) -> Levels:
    """Levels from the ``percentiles`` of ``sample`` (numpy's linear interpolation); outputs stay inside the
    ``full`` levels' ceiling (the type's, or the data's bits)."""
    finite = sample[np.isfinite(sample)] if sample.dtype.kind == "f" else sample
    if finite.size == 0:
        raise SwinIRError("the image holds no finite values to normalise; use --normalize full")
    low, high = (float(v) for v in np.percentile(finite, percentiles))
    if high <= low:
        raise SwinIRError(f"the {percentiles[0]:g} and {percentiles[1]:g} percentiles are equal ({low:g}): the image "
                          "is (nearly) constant; use --normalize full or wider percentiles")
    return Levels(low, high, full.dtype, full.ceiling,
                  f"percentiles {percentiles[0]:g}..{percentiles[1]:g} = {low:g}..{high:g}")


def to_unit(values: np.ndarray, levels: Levels) -> np.ndarray:
    """Samples -> float32 on the model's scale: ``(values - low) / (high - low)``, nothing clipped."""
    return ((values.astype(np.float64) - levels.low) / (levels.high - levels.low)).astype(np.float32)


def from_unit(unit: np.ndarray, levels: Levels) -> tuple[np.ndarray, int]:
    """The model's output back to the source type: ``unit * (high - low) + low``, rounded for integers and
    clipped to 0..ceiling only there. Returns the samples and how many of them were clipped."""
    values = np.asarray(unit, dtype=np.float64) * (levels.high - levels.low) + levels.low
    if levels.ceiling is None:
        return values.astype(levels.dtype), 0
    values = np.round(values)
    clipped = int(np.count_nonzero((values < 0) | (values > levels.ceiling)))
    return np.clip(values, 0, levels.ceiling).astype(levels.dtype), clipped
