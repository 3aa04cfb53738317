"""Shared test fixtures: where ../shared lives, and a skip with a clear reason when it does not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SWINIR_SHARED", ROOT.parent / "shared")).resolve()


def shared_path(*parts: str) -> Path:
    """Path inside ../shared (or $SWINIR_SHARED); skips the calling test when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not found at {path} (set SWINIR_SHARED to the folder holding oracle/ and datasets/)")
    return path


@pytest.fixture
def shared() -> Path:
    return shared_path()
