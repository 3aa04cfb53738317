"""The local web app and HTTP API: ``swinir serve``.

One FastAPI application, built by :func:`create_app` from a :class:`Settings` record (no module-level
state: every piece lives in ``app.state``), serves

* ``POST /v1/restore``: an image in (multipart field ``image``), the restored PNG out, synchronously;
* ``POST /v1/jobs``, ``GET /v1/jobs/{id}``, ``GET /v1/jobs/{id}/result``: the same work as a job whose tile
  progress can be polled (what the web page uses);
* ``GET /v1/models``, ``GET /healthz``, FastAPI's ``/openapi.json`` (no ``/docs``: Swagger UI loads from a CDN);
* the page at ``/`` (plain HTML/JS/CSS from ``swinir/static``).

How the parts fit:

* :class:`ModelRegistry` knows every servable model (``--weights`` files, then the bundled ones) from its
  header alone, and loads each network once, lazily, under a per-model lock; all requests share it.
* :class:`WorkQueue` admits at most ``workers + queue`` jobs at a time (a non-blocking semaphore); a request
  beyond that is refused at once with 503 and a ``Retry-After`` estimate rather than piling up. Admitted jobs
  run in a thread pool of ``workers`` threads: torch releases the GIL, so the event loop keeps answering
  (``/healthz``, progress polls) while a restoration runs.
* :func:`process` is the whole restoration of one upload: decode (in memory), match channels, restore, put
  gray/alpha back, encode PNG. It is exactly the CLI's pipeline, so the API adds nothing to the pixels.

Errors are JSON ``{"detail": "one line"}``: 413 for an upload over the size limit, 422 for anything wrong
with the request or the image (including too many pixels), 503 when the queue is full, 500 for bugs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import math
import re
import secrets
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .bundled import TASK_ALIASES, bundled_models
from .checkpoints import CONFIG_KEY, METADATA_PREFIX, load, read_checkpoint, resolve_config
from .errors import SwinIRError
from .images import decode_image, encode_png
from .pipeline import RestoreOptions as PipelineOptions
from .pipeline import restore_image
from .presets import ModelConfig

log = logging.getLogger("swinir.service")

MB = 1 << 20
FORM_OVERHEAD = 64 * 1024  # room for the multipart boundaries and the small form fields beside the file
DEFAULT_MAX_UPLOAD_MB = 50
DEFAULT_MAX_PIXELS = 4_000_000  # input pixels; SwinIR-M x4 on a CPU takes minutes per megapixel
TASKS = ("sr", "denoise", "jpeg")
# Every task name a request or ``--weights NAME=FILE`` may use -> the task it means. The bundled short names
# plus the paper's names (classical_sr, lightweight_sr, real_sr, gray_dn, color_dn, gray_car, color_car).
TASK_NAMES: dict[str, str] = {
    **TASK_ALIASES,
    "lightweight_sr": "sr", "real_sr": "sr", "gray_dn": "denoise", "gray_car": "jpeg",
}
TASK_LABELS = {"sr": "super-resolution", "denoise": "denoising", "jpeg": "JPEG artifact reduction"}
LOOPBACK_NAMES = {"localhost", "ip6-localhost", "ip6-loopback"}


# --------------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WeightsSpec:
    """One ``--weights [NAME=]FILE``: the file, and the name requests use (default: the file's stem)."""

    path: Path
    name: str | None = None

    @classmethod
    def parse(cls, text: str) -> WeightsSpec:
        name, sep, path = text.partition("=")
        if not sep:
            return cls(Path(text))
        if not name or not path:
            raise SwinIRError(f"--weights {text!r}: use FILE or NAME=FILE")
        return cls(Path(path), name)


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


# --------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------


def task_of(config: ModelConfig, metadata: dict[str, str], name: str | None = None) -> str:
    """sr, denoise or jpeg: a task-like name wins, then ``swinir.task`` metadata, then the architecture.

    Upscaling models are SR. Same-size ones are told apart the way the published ones differ: the JPEG
    (CAR) models use 7x7 windows on a 0..255 input range, the denoisers 8x8 windows on 0..1.
    """
    for hint in (name, metadata.get(f"{METADATA_PREFIX}task")):
        if hint and hint.lower() in TASK_NAMES:
            return TASK_NAMES[hint.lower()]
    if config.upscale > 1:
        return "sr"
    return "jpeg" if config.window_size == 7 or config.img_range > 1 else "denoise"


def read_description(path: Path) -> tuple[ModelConfig, dict[str, str]]:
    """A weights file's config and ``swinir.*`` metadata, from the safetensors header when it has both.

    Other files (reference ``.pth``) are read whole once to infer the architecture; the tensors are dropped
    and the network is built later, on first use.
    """
    if path.suffix == ".safetensors" and path.is_file():
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = {k: v for k, v in (f.metadata() or {}).items() if k.startswith(METADATA_PREFIX)}
        except Exception as err:
            raise SwinIRError(f"{path}: not a readable safetensors file ({err})") from err
        if CONFIG_KEY in meta:
            return resolve_config({}, meta, None), meta
    state, meta = read_checkpoint(path)
    return resolve_config(state, meta, None), meta


class ModelEntry:
    """One servable model: what the API lists about it, and its network, loaded once on first use."""

    def __init__(self, *, name: str, task: str, scale: int, channels: int, path: Path, description: str,
                 source: str, quality: dict[str, Any] | None = None, device: str = "cpu") -> None:
        self.name, self.task, self.scale, self.channels = name, task, scale, channels
        self.path, self.description, self.source, self.quality = path, description, source, quality or {}
        self.device = device
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def model(self) -> Any:
        """The network, loaded at the first call (by one thread; concurrent callers wait for it)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    started = time.perf_counter()
                    self._model = load(self.path, device=self.device)
                    log.info("loaded model %s from %s in %.1f s", self.name, self.path, time.perf_counter() - started)
        return self._model

    def label(self) -> str:
        return f"{self.name} ({self.task} x{self.scale})" if self.task == "sr" else f"{self.name} ({self.task})"


class ModelRegistry:
    """The servable models by name, in priority order: ``--weights`` files first, then the bundled ones."""

    def __init__(self, entries: list[ModelEntry]) -> None:
        self.entries: dict[str, ModelEntry] = {}
        for entry in entries:
            if entry.name in self.entries:
                raise SwinIRError(f"two models are named {entry.name!r}; name them apart with --weights NAME=FILE")
            self.entries[entry.name] = entry

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelRegistry:
        """Describe every model now (a bad file fails the start, not a request); load none yet."""
        entries = []
        for spec in settings.weights:
            config, meta = read_description(spec.path)
            task = task_of(config, meta, spec.name)
            what = meta.get(f"{METADATA_PREFIX}description") or (
                f"{TASK_LABELS[task]} x{config.upscale}" if task == "sr" else TASK_LABELS[task]
            ) + f", {config.in_chans}-channel, embed {config.embed_dim}, from {spec.path.name}"
            entries.append(ModelEntry(name=spec.name or spec.path.stem, task=task, scale=config.upscale,
                                      channels=config.in_chans, path=spec.path, description=what, source="file",
                                      device=settings.device))
        if settings.include_bundled:
            for bundled in bundled_models():
                config, _ = read_description(bundled.path)
                entries.append(ModelEntry(name=bundled.name, task=bundled.task, scale=bundled.scale,
                                          channels=config.in_chans, path=bundled.path,
                                          description=bundled.description, source="bundled",
                                          quality=bundled.quality, device=settings.device))
        return cls(entries)

    def __len__(self) -> int:
        return len(self.entries)

    def available(self) -> str:
        return ", ".join(e.label() for e in self.entries.values()) or "none"

    def resolve(self, task: str | None, scale: int | None) -> ModelEntry:
        """The model a request names: a model name, or a task name (and scale) meaning the first such model.

        Without a task the first model (with that scale, if given) serves. Raises SwinIRError (-> 422)
        listing what is available.
        """
        if not self.entries:
            raise SwinIRError("no models are available; start the server with --weights FILE")
        if task and task in self.entries:
            entry = self.entries[task]
            if scale not in (None, entry.scale):
                raise SwinIRError(f"model {entry.label()} does not do x{scale}; available: {self.available()}")
            return entry
        kind = None
        if task:
            kind = TASK_NAMES.get(task.lower())
            if kind is None:
                raise SwinIRError(
                    f"unknown task {task!r}: give a model name or a task ({', '.join(TASKS)}); "
                    f"available: {self.available()}"
                )
        for entry in self.entries.values():
            if kind in (None, entry.task) and scale in (None, entry.scale):
                return entry
        wanted = f"{kind or 'any task'}" + (f" x{scale}" if scale else "")
        raise SwinIRError(f"no model for {wanted}; available: {self.available()}")


# --------------------------------------------------------------------------------------------------
# Jobs and the work queue
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreOptions:
    """The per-request knobs, validated by the form (ranges) and the engine (tile vs window)."""

    tile: int | None = None
    precision: Literal["fp32", "bf16"] = "fp32"
    sigma: float | None = None  # informational: each SwinIR denoiser is trained for one level (or blind)
    quality: int | None = None  # informational, as sigma, for the JPEG models


@dataclass
class Result:
    png: bytes
    width: int
    height: int
    seconds: float
    notices: list[str]


@dataclass
class Job:
    """One restoration. The worker thread writes its progress fields; the event loop only reads them."""

    entry: ModelEntry
    data: bytes
    filename: str
    options: RestoreOptions
    settings: Settings
    id: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    state: Literal["queued", "running", "done", "failed"] = "queued"
    done: int = 0
    total: int = 0
    created: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    result: Result | None = None
    error: tuple[int, str] | None = None  # (HTTP status, one-line detail)

    def advance(self, steps: int) -> None:
        self.done += steps

    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.created


def process(job: Job) -> None:
    """Run one job to the end (in a worker thread): never raises; the outcome lands in the job."""
    job.state, job.started = "running", time.monotonic()
    try:
        job.result = restore_upload(job)
        job.state = "done"
    except SwinIRError as err:
        job.error, job.state = (422, str(err)), "failed"
    except Exception as err:  # a bug: keep the traceback in the log, give the user one line
        log.exception("job %s failed", job.id)
        job.error, job.state = (500, f"internal error ({type(err).__name__}: {err}); see the server log"), "failed"
    finally:
        job.data = b""  # the upload is not needed any more
        job.finished = time.monotonic()


def restore_upload(job: Job) -> Result:
    """Decode, restore, re-encode one upload, in memory; the CLI's pipeline, pixel for pixel."""
    started = time.perf_counter()
    limit = job.settings.max_pixels
    image = decode_image(job.data, name=job.filename, max_pixels=limit)
    height, width = image.size
    if height * width > limit:  # decode_image refuses these from the header; the service's limit must not rely on it
        raise SwinIRError(f"{job.filename}: the image is {width}x{height} = {width * height:,} pixels, "
                          f"more than the limit of {limit:,}; downscale or crop it")
    model = job.entry.model()

    def progress(done: int, total: int) -> None:
        job.total, job.done = total, done

    options = PipelineOptions(tile=job.options.tile, precision=job.options.precision,
                              max_memory=job.settings.max_memory)
    restored = restore_image(model, image, options, progress=progress)
    out, alpha, notices = restored.pixels, restored.alpha, restored.notices
    png = encode_png(np.ascontiguousarray(out), alpha=alpha)
    seconds = time.perf_counter() - started
    log.info("job %s: %s %dx%d -> %dx%d in %.2f s", job.id, job.entry.name, width, height,
             out.shape[1], out.shape[0], seconds)
    return Result(png, out.shape[1], out.shape[0], seconds, notices)


class WorkQueue:
    """At most ``workers`` jobs running and ``queue`` more waiting; anything beyond is refused, not queued.

    The semaphore is taken without blocking when a request arrives and given back when its future is done,
    whether it ran, failed or was cancelled before starting, so a slot is never lost.
    """

    def __init__(self, workers: int, queue: int) -> None:
        self.workers, self.capacity = workers, workers + queue
        self._slots = threading.BoundedSemaphore(self.capacity)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="swinir-worker")
        self._lock = threading.Lock()
        self._admitted = 0
        self._mean_seconds = 1.0  # running mean of job durations, for Retry-After (a guess until jobs finish)

    @property
    def admitted(self) -> int:
        return self._admitted

    def submit(self, job: Job) -> Future[None] | None:
        """Start ``job`` (or queue it for a worker); None when the queue is full."""
        if not self._slots.acquire(blocking=False):
            return None
        with self._lock:
            self._admitted += 1
        future = self._executor.submit(process, job)
        future.add_done_callback(lambda _: self._release(job))
        return future

    def _release(self, job: Job) -> None:
        with self._lock:
            self._admitted -= 1
            if job.started is not None and job.finished is not None:
                self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * (job.finished - job.started)
        self._slots.release()

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the queue drained at the mean job duration, 1..600."""
        estimate = self._mean_seconds * max(1, self._admitted - self.workers + 1) / self.workers
        return max(1, min(600, math.ceil(estimate)))

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class JobStore:
    """Jobs by id for the polling API. Finished jobs are dropped ``ttl`` seconds after they finish, and the
    oldest finished ones beyond ``keep`` are dropped at once, so memory stays bounded. Event-loop only."""

    def __init__(self, ttl: float, keep: int) -> None:
        self.ttl, self.keep = ttl, keep
        self._jobs: OrderedDict[str, Job] = OrderedDict()

    def add(self, job: Job) -> None:
        self._purge()
        self._jobs[job.id] = job

    def get(self, job_id: str) -> Job:
        self._purge()
        job = self._jobs.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id!r}: it never existed or its result expired "
                                     f"({self.ttl:.0f} s after finishing)")
        return job

    def ahead_of(self, job: Job) -> int:
        """Queued jobs submitted before ``job`` (jobs of the synchronous endpoint are not counted)."""
        return sum(1 for j in self._jobs.values() if j.state == "queued" and j.created < job.created)

    def _purge(self) -> None:
        now = time.monotonic()
        finished = [j for j in self._jobs.values() if j.finished is not None]
        for index, job in enumerate(finished):
            if now - job.finished > self.ttl or index < len(finished) - self.keep:
                del self._jobs[job.id]


# --------------------------------------------------------------------------------------------------
# Upload size limit
# --------------------------------------------------------------------------------------------------


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413: at once from Content-Length, else while reading.

    Starlette spools uploads over 1 MB to an anonymous temporary file (deleted when closed); this bound keeps
    both memory and that file small, whatever the client claims.
    """

    def __init__(self, app: ASGIApp, limit: int, message: str) -> None:
        self.app, self.limit, self.message = app, limit, message

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            response = JSONResponse({"detail": self.message}, status_code=413, headers={"Connection": "close"})
            await response(scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413, self.message)  # FastAPI re-raises it from body parsing -> 413 JSON
            return message

        await self.app(scope, limited_receive, send)


# --------------------------------------------------------------------------------------------------
# API schema
# --------------------------------------------------------------------------------------------------


class ModelInfo(BaseModel):
    name: str = Field(description="what to pass as the `task` form field to choose this model")
    task: Literal["sr", "denoise", "jpeg"] = Field(description="super-resolution, denoising or JPEG de-artifacting")
    scale: int = Field(description="output size / input size (1 for denoise and jpeg)")
    channels: int = Field(description="1 (gray) or 3 (RGB) channels the network takes; others are converted")
    description: str
    source: Literal["bundled", "file"] = Field(description="shipped with the package, or given with --weights")
    quality: dict[str, Any] = Field(description="measured quality (e.g. PSNR per test set) where known")
    loaded: bool = Field(description="whether the network is in memory yet (it loads on first use)")


class ModelList(BaseModel):
    models: list[ModelInfo] = Field(description="in priority order: the first one matching a task serves it")
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
                         "X-SwinIR-Task, X-SwinIR-Scale, X-SwinIR-Seconds, Server-Timing."},
}


@dataclass(frozen=True)
class RestoreRequest:
    """The multipart form of ``/v1/restore`` and ``/v1/jobs`` (a dependency shared by both)."""

    image: UploadFile
    task: str | None
    scale: int | None
    options: RestoreOptions


def restore_form(
    image: Annotated[UploadFile, File(description="the image: PNG, JPEG, WebP, BMP, TIFF; 8 or 16 bit; "
                                                  "gray, RGB or with alpha")],
    task: Annotated[str | None, Form(description="a model name from /v1/models, or a task: sr (classical_sr, "
                                                 "lightweight_sr, real_sr), denoise (color_dn, gray_dn), "
                                                 "jpeg (color_car, gray_car); default: the first model")] = None,
    scale: Annotated[int | None, Form(ge=1, le=8, description="choose the SR model with this scale")] = None,
    sigma: Annotated[float | None, Form(ge=0, le=255, description="denoise only: the noise level (0..255) "
                                        "of the input; informational, the model decides")] = None,
    quality: Annotated[int | None, Form(ge=1, le=100, description="jpeg only: the JPEG quality (1..100) of "
                                        "the input; informational, the model decides")] = None,
    tile: Annotated[int | None, Form(ge=1, le=4096, description="tile side in input pixels (a multiple of "
                                     "the window); default: chosen from the memory budget")] = None,
    precision: Annotated[Literal["fp32", "bf16"], Form(description="bf16 is faster on CPUs with AMX")] = "fp32",
) -> RestoreRequest:
    return RestoreRequest(image, task, scale, RestoreOptions(tile, precision, sigma, quality))


# --------------------------------------------------------------------------------------------------
# The application
# --------------------------------------------------------------------------------------------------


def static_dir() -> Path:
    return Path(str(resources.files("swinir") / "static"))


def create_app(settings: Settings, registry: ModelRegistry | None = None) -> FastAPI:
    """The application for ``settings``; ``registry`` defaults to the models the settings name."""
    registry = registry if registry is not None else ModelRegistry.from_settings(settings)
    work = WorkQueue(settings.workers, settings.queue)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        work.shutdown()

    app = FastAPI(
        title="SwinIR",
        version=_version(),
        summary="Image restoration with SwinIR: super-resolution, denoising, JPEG artifact reduction.",
        description="Upload an image, get the restored PNG. `POST /v1/restore` answers with the image; "
                    "`POST /v1/jobs` returns a job to poll for tile progress. Errors are "
                    '`{"detail": "one line"}`. A full queue answers 503 with `Retry-After`.',
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc load their code from a CDN; the schema itself stays
        redoc_url=None,
    )
    app.state.settings, app.state.registry, app.state.work = settings, registry, work
    app.state.jobs = JobStore(settings.result_ttl, keep=max(16, 2 * work.capacity))
    limit_mb = settings.max_upload_bytes / MB
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes + FORM_OVERHEAD,  # type: ignore[arg-type]
                       message=f"the upload is larger than the limit of {limit_mb:g} MB (--max-upload-mb)")
    _add_error_handlers(app)

    def admit(form: RestoreRequest, data: bytes) -> tuple[Job, Future[None]]:
        if len(data) > settings.max_upload_bytes:
            raise HTTPException(413, f"the image is {len(data) / MB:.1f} MB, more than the limit of "
                                     f"{limit_mb:g} MB (--max-upload-mb)")
        try:
            entry = registry.resolve(form.task, form.scale)
        except SwinIRError as err:
            raise HTTPException(422, str(err)) from err
        for given, value, kind in (("sigma", form.options.sigma, "denoise"), ("quality", form.options.quality, "jpeg")):
            if value is not None and entry.task != kind:
                raise HTTPException(422, f"{given} applies to {kind} models, but {entry.label()} does {entry.task}")
        job = Job(entry, data, form.image.filename or "upload", form.options, settings)
        future = work.submit(job)
        if future is None:
            raise HTTPException(503, f"busy: {work.capacity} jobs are running or waiting; retry shortly",
                                headers={"Retry-After": str(work.retry_after())})
        return job, future

    @app.post("/v1/restore", tags=["restore"], response_class=Response, responses={**PNG_RESPONSE, **ERRORS},
              summary="Restore an image and return the PNG", operation_id="restore")
    async def restore_endpoint(form: Annotated[RestoreRequest, Depends(restore_form)]) -> Response:
        """Waits for the restoration and answers with the PNG. Same pixels as `swinir restore`."""
        job, future = admit(form, await form.image.read())
        try:
            await asyncio.wrap_future(future)
        except asyncio.CancelledError:  # the client went away: drop the job if it has not started
            future.cancel()
            raise
        return _result_response(job)

    @app.post("/v1/jobs", tags=["jobs"], status_code=202, response_model=JobInfo, responses=ERRORS,
              summary="Start a restoration and return a job to poll", operation_id="submit_job")
    async def submit_job(form: Annotated[RestoreRequest, Depends(restore_form)]) -> JobInfo:
        """Same form as `/v1/restore`. Poll `GET /v1/jobs/{id}` for progress, then fetch its `result_url`.
        Problems with the image itself show up as state `failed` with a `detail`."""
        job, _ = admit(form, await form.image.read())
        app.state.jobs.add(job)
        return _job_info(job, app.state.jobs)

    @app.get("/v1/jobs/{job_id}", tags=["jobs"], response_model=JobInfo, responses={404: {"model": ErrorBody}},
             summary="A job's state and tile progress", operation_id="job_status")
    async def job_status(job_id: str) -> JobInfo:
        return _job_info(app.state.jobs.get(job_id), app.state.jobs)

    @app.get("/v1/jobs/{job_id}/result", tags=["jobs"], response_class=Response,
             responses={**PNG_RESPONSE, 404: {"model": ErrorBody}, 409: {"model": ErrorBody},
                        422: {"model": ErrorBody}}, summary="A finished job's PNG", operation_id="job_result")
    async def job_result(job_id: str) -> Response:
        """The PNG of a `done` job; 409 while it runs; a failed job answers with its error."""
        job = app.state.jobs.get(job_id)
        if job.state in ("queued", "running"):
            raise HTTPException(409, f"job {job_id} is {job.state}; poll /v1/jobs/{job_id} until it is done")
        return _result_response(job)

    @app.get("/v1/models", tags=["models"], response_model=ModelList, summary="The models this server runs",
             operation_id="list_models")
    async def models() -> ModelList:
        return ModelList(
            models=[ModelInfo(name=e.name, task=e.task, scale=e.scale, channels=e.channels,  # type: ignore[arg-type]
                              description=e.description, source=e.source, quality=e.quality,  # type: ignore[arg-type]
                              loaded=e.loaded) for e in registry.entries.values()],
            task_names=TASK_NAMES,
        )

    @app.get("/healthz", tags=["health"], response_model=Health, summary="Liveness and load", operation_id="healthz")
    async def healthz() -> Health:
        return Health(status="ok", models=len(registry), busy=work.admitted, capacity=work.capacity)

    page = settings.static_dir or static_dir()

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(page / "index.html", headers=PAGE_HEADERS)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})

    app.mount("/static", StaticFiles(directory=page), name="static")
    return app


# Only this server's own files: no CDN, no inline script; blob: for the images made in the page.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; script-src 'self'; "
                               "style-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


FAVICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" '
           'fill="#2f6fdf"/><path d="M4 12V4h4v4h4v4z" fill="#fff"/></svg>')


def _result_response(job: Job) -> Response:
    """The PNG with headers saying what ran and how long it took; a failed job raises its error."""
    if job.error is not None or job.result is None:
        status, detail = job.error or (500, "the job ended without a result")
        raise HTTPException(status, detail)
    result = job.result
    queued = (job.started or job.created) - job.created
    headers = {
        "X-SwinIR-Model": job.entry.name,
        "X-SwinIR-Task": job.entry.task,
        "X-SwinIR-Scale": str(job.entry.scale),
        "X-SwinIR-Seconds": f"{result.seconds:.3f}",
        "X-SwinIR-Queue-Seconds": f"{queued:.3f}",
        "Server-Timing": f"queue;dur={queued * 1000:.1f}, restore;dur={result.seconds * 1000:.1f}",
        "Content-Disposition": f'inline; filename="{_result_name(job)}"',
    }
    if job.options.sigma is not None:
        headers["X-SwinIR-Sigma"] = f"{job.options.sigma:g}"
    if job.options.quality is not None:
        headers["X-SwinIR-Quality"] = str(job.options.quality)
    if result.notices:
        headers["X-SwinIR-Notice"] = _header_safe("; ".join(result.notices))
    return Response(result.png, media_type="image/png", headers=headers)


def _job_info(job: Job, jobs: JobStore) -> JobInfo:
    result = job.result
    return JobInfo(
        id=job.id, state=job.state, model=job.entry.name, task=job.entry.task, scale=job.entry.scale,
        done=job.done, total=job.total, ahead=jobs.ahead_of(job) if job.state == "queued" else 0,
        elapsed=round(job.elapsed(), 3), detail=job.error[1] if job.error else None,
        width=result.width if result else None, height=result.height if result else None,
        result_url=f"/v1/jobs/{job.id}/result",
    )


def _result_name(job: Job) -> str:
    stem = _header_safe(Path(job.filename).stem, keep=r"[^A-Za-z0-9._-]") or "image"
    suffix = f"x{job.entry.scale}" if job.entry.task == "sr" else job.entry.task
    return f"{stem}_swinir_{suffix}.png"


def _header_safe(text: str, keep: str = r"[^\x20-\x7e]") -> str:
    """ASCII that fits an HTTP header value: other characters become '_' (quotes too, for filenames)."""
    return re.sub(keep, "_", text).replace('"', "_")[:200]


def _add_error_handlers(app: FastAPI) -> None:
    """Every error as ``{"detail": "one line"}``, validation errors included."""

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_line(exc.errors())}, status_code=422)

    @app.exception_handler(SwinIRError)
    async def swinir_error(_: Request, exc: SwinIRError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)


def _validation_line(errors: Any) -> str:
    """FastAPI's list of validation errors as one line, e.g. "missing form field 'image'"."""
    parts = []
    for error in errors:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path", "form"))
        if error.get("type") == "missing":
            parts.append(f"missing form field '{where}'" + (" (the image file to restore)" if where == "image" else ""))
        else:
            parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def _version() -> str:
    from . import __version__

    return __version__


# --------------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------------


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; there is no authentication)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--weights", "-w", action="append", default=[], metavar="[NAME=]FILE",
                   help="serve this checkpoint (repeatable). NAME is what requests pass as `task` (default: the "
                        "file's stem); a task name such as denoise or color_car also sets the model's task")
    p.add_argument("--no-bundled", action="store_true", help="serve only the --weights models")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: all cores)")
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB,
                   help=f"largest upload in MB; larger ones get 413 (default {DEFAULT_MAX_UPLOAD_MB})")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help=f"largest input width x height; larger ones get 422 (default {DEFAULT_MAX_PIXELS:,})")
    p.add_argument("--workers", type=int, default=1,
                   help="restorations running at once (default 1: on a CPU one job uses every core)")
    p.add_argument("--queue", type=int, default=8,
                   help="jobs waiting beyond the running ones; more get 503 with Retry-After (default 8)")
    p.add_argument("--max-memory", type=float, default=None,
                   help="activation budget in GB per restoration for automatic tiling (default: half the free RAM)")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def settings_from_args(args: argparse.Namespace) -> Settings:
    return Settings(
        weights=tuple(WeightsSpec.parse(w) for w in args.weights),
        include_bundled=not args.no_bundled,
        device=args.device,
        max_upload_bytes=int(args.max_upload_mb * MB),
        max_pixels=args.max_pixels,
        workers=args.workers,
        queue=args.queue,
        max_memory=int(args.max_memory * 1e9) if args.max_memory else None,
    )


def run_serve_command(args: argparse.Namespace) -> int:
    import uvicorn

    from .engine import set_threads

    settings = settings_from_args(args)
    app = create_app(settings)
    registry: ModelRegistry = app.state.registry
    if not len(registry):
        raise SwinIRError("no models to serve: this installation has no bundled weights; pass --weights FILE")
    set_threads(args.threads)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)-9s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(args.log_level.upper())
    if not is_loopback(args.host):
        rule = "!" * 100
        print(f"{rule}\nWARNING: listening on {args.host}: anyone who can reach this machine on port {args.port} "
              "can use this server.\nIt has no authentication and no TLS: put it behind a proxy that adds them, "
              f"or keep the default --host 127.0.0.1.\n{rule}", file=sys.stderr)
    print(f"serving {registry.available()}", file=sys.stderr)
    print(f"open http://{_url_host(args.host)}:{args.port}/ (API schema at /openapi.json)", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def _url_host(host: str) -> str:
    """The host part of a URL to open: a wildcard address means this machine's loopback."""
    if host in ("0.0.0.0", "::", "[::]", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


__all__ = ["ModelEntry", "ModelRegistry", "Settings", "WeightsSpec", "create_app", "is_loopback", "process",
           "run_serve_command"]
