"""What the API speaks: the restore form (shared by ``/v1/restore`` and ``/v1/jobs``) and the JSON bodies.

These declarations are also the OpenAPI schema at ``/openapi.json``, so every field carries a description.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import File, Form, UploadFile
from pydantic import BaseModel, Field

from ..engine import MIN_TILE
from ..tasks import LEVEL_RANGES
from .jobs import RequestOptions

_SIGMA, _QUALITY = LEVEL_RANGES["sigma"], LEVEL_RANGES["quality"]


class ServedModel(BaseModel):
    name: str = Field(description="what to pass as the `task` form field to choose this model")
    task: Literal["photo", "sr", "denoise", "jpeg"] = Field(
        description="photo super-resolution (JPEGs as people have them), bicubic super-resolution, denoising or JPEG "
                    "de-artifacting")
    task_label: str = Field(description="the task in words, e.g. 'super-resolution'")
    scale: int = Field(description="output size / input size (1 for denoise and jpeg)")
    channels: int = Field(description="1 (gray) or 3 (RGB) channels the network takes; others are converted")
    level: tuple[float, float] | None = Field(
        description="the noise sigma (denoise) or JPEG quality (jpeg) range it was trained for, where known")
    blind: bool = Field(description="trained for a range of levels: it takes no sigma/quality field")
    description: str
    source: Literal["bundled", "file"] = Field(description="shipped with the package, or given with --weights")
    quality: dict[str, Any] = Field(
        description="measured quality where known: {row label: {'model': {metric: value}, baseline: {metric: "
                    "value}}}, e.g. {'Set5 x2': {'model': {'psnr_y': 34.87}, 'bicubic': {'psnr_y': 33.67}}}")
    loaded: bool = Field(description="whether the network is in memory yet (it loads on first use)")


class ModelList(BaseModel):
    models: list[ServedModel] = Field(description="in priority order: the first one matching a task serves it")
    task_names: dict[str, str] = Field(description="task names a request may use -> the task they mean")


class Health(BaseModel):
    status: Literal["ok"]
    models: int = Field(description="number of servable models")
    busy: int = Field(description="jobs admitted (running or waiting)")
    capacity: int = Field(description="workers + queue: admitted jobs beyond this are refused with 503")


class JobInfo(BaseModel):
    id: str
    state: Literal["queued", "running", "done", "failed"]
    model: str
    task: str
    scale: int
    done: int = Field(description="model calls finished (tiles)")
    total: int = Field(description="model calls planned (0 until the image is decoded)")
    ahead: int = Field(description="queued jobs ahead of this one")
    elapsed: float = Field(description="seconds since the job was submitted")
    detail: str | None = Field(description="why it failed (state 'failed')")
    width: int | None = Field(description="width of the result (state 'done')")
    height: int | None = Field(description="height of the result (state 'done')")
    result_url: str


class ErrorBody(BaseModel):
    detail: str = Field(description="one line: what is wrong and what to do")


ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorBody, "description": "the upload is larger than --max-upload-mb"},
    422: {"model": ErrorBody, "description": "bad form field, unknown task, unreadable image, too many pixels"},
    503: {"model": ErrorBody, "description": "the work queue is full; retry after `Retry-After` seconds"},
}
PNG_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
          "description": "the restored image (PNG; gray, alpha and 16 bits kept). Headers: X-SwinIR-Model, "
                         "X-SwinIR-Task, X-SwinIR-Scale, X-SwinIR-Precision, X-SwinIR-Seconds, Server-Timing."},
}


@dataclass(frozen=True)
class RestoreRequest:
    """The multipart form of ``/v1/restore`` and ``/v1/jobs``, parsed."""

    image: UploadFile
    task: str | None
    scale: int | None
    options: RequestOptions


def restore_form(
    image: Annotated[UploadFile, File(description="the image: PNG, JPEG, WebP, BMP, TIFF; 8 or 16 bit; "
                                                  "gray, RGB or with alpha")],
    task: Annotated[str | None, Form(description="a model name from /v1/models, or a task: sr (classical_sr, "
                                                 "lightweight_sr, real_sr), denoise (color_dn, gray_dn), "
                                                 "jpeg (color_car, gray_car); default: the first model")] = None,
    scale: Annotated[int | None, Form(ge=1, le=8, description="choose the SR model with this scale")] = None,
    sigma: Annotated[float | None, Form(ge=_SIGMA[0], le=_SIGMA[1], description="denoise only: the input's "
                                        "noise level (0..255); refused for blind models, which estimate it "
                                        "themselves, and for models trained for another level")] = None,
    quality: Annotated[int | None, Form(ge=_QUALITY[0], le=_QUALITY[1], description="jpeg only: the input's JPEG "
                                        "quality (1..100); refused for blind models and for models trained for "
                                        "another quality")] = None,
    tile: Annotated[int | None, Form(ge=MIN_TILE, le=4096, description=f"tile side in input pixels (at least "
                                     f"{MIN_TILE}, rounded down to a multiple of the window); default: chosen "
                                     "from the memory budget")] = None,
    precision: Annotated[Literal["auto", "fp32", "bf16"], Form(
        description="auto: bf16 where the CPU computes it natively (AVX512-BF16 or AMX) or the GPU supports "
                    "it, else fp32")] = "auto",
) -> RestoreRequest:
    """FastAPI dependency: the form fields, range-checked, as one record."""
    return RestoreRequest(image, task, scale, RequestOptions(tile, precision, sigma, quality))
