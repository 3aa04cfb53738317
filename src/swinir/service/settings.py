"""What an operator decides about one server: the ``swinir serve`` flags as a frozen record.

Every other part of the service (the registry, the work queue, the endpoints) is built from a
:class:`Settings`; nothing is kept at module level, so tests can run several servers side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import SwinIRError

MB = 1 << 20
DEFAULT_MAX_UPLOAD_MB = 50
DEFAULT_MAX_PIXELS = 4_000_000  # input pixels; SwinIR-M x4 on a CPU takes minutes per megapixel


@dataclass(frozen=True)
class WeightsSpec:
    """One ``--weights [NAME=]FILE``: the file, and the name requests use (default: the file's stem)."""

    path: Path
    name: str | None = None

    @classmethod
    def parse(cls, text: str) -> WeightsSpec:
        """``FILE`` or ``NAME=FILE`` as typed on the command line."""
        name, sep, path = text.partition("=")
        if not sep:
            return cls(Path(text))
        if not name or not path:
            raise SwinIRError(f"--weights {text!r}: use FILE or NAME=FILE")
        return cls(Path(path), name)

    @property
    def served_name(self) -> str:
        """What requests choose this model by: the given NAME, else the file's stem."""
        return self.name or self.path.stem


@dataclass(frozen=True)
class Settings:
    """Everything an operator decides about one server (``swinir serve`` flags map one to one)."""

    weights: tuple[WeightsSpec, ...] = ()
    include_bundled: bool = True
    device: str = "cpu"
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * MB
    max_pixels: int = DEFAULT_MAX_PIXELS
    workers: int = 1  # concurrent restorations; on a CPU one at a time with every core is fastest
    queue: int = 8  # admitted jobs waiting for a worker; beyond workers + queue requests get 503
    max_memory: int | None = None  # activation budget in bytes for automatic tiling (default: half the free RAM)
    result_ttl: float = 300.0  # seconds a finished job's result stays fetchable
    static_dir: Path | None = None  # the page's files; default: the package's static/ folder

    def __post_init__(self) -> None:
        for label, value in (("workers", self.workers), ("max_pixels", self.max_pixels),
                             ("max_upload_bytes", self.max_upload_bytes)):
            if value < 1:
                raise SwinIRError(f"{label} must be at least 1, got {value}")
        if self.queue < 0:
            raise SwinIRError(f"queue must be 0 or more, got {self.queue}")
