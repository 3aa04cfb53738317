"""The FastAPI application: :func:`create_app` builds one from a :class:`Settings` (all state in ``app.state``).

It serves

* ``POST /v1/restore``: an image in (multipart field ``image``), the restored PNG out, synchronously;
* ``POST /v1/jobs``, ``GET /v1/jobs/{id}``, ``GET /v1/jobs/{id}/result``: the same work as a job whose tile
  progress can be polled (what the web page uses);
* ``GET /v1/models``, ``GET /healthz``, FastAPI's ``/openapi.json`` (no ``/docs``: Swagger UI loads from a CDN);
* the page at ``/`` (plain HTML/JS/CSS from ``swinir/static``, under a strict Content-Security-Policy).

Errors are JSON ``{"detail": "one line"}``: 413 for an upload over the size limit (:class:`BodyLimit`), 422
for anything wrong with the request or the image (including too many pixels, or a sigma/quality the model
cannot honour), 503 when the queue is full, 500 for bugs.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import SwinIRError
from ..fileio import stem_keeping_suffix
from ..tasks import FAMILY_LABELS, family_label
from .jobs import Job, JobStore, WorkQueue
from .registry import ModelEntry, ModelRegistry, api_words, task_names
from .schema import (
    ERRORS,
    PNG_RESPONSE,
    ErrorBody,
    Health,
    JobInfo,
    ModelList,
    RestoreRequest,
    ServedModel,
    restore_form,
)
from .settings import MB, Settings

FORM_OVERHEAD = 64 * 1024  # room for the multipart boundaries and the small form fields beside the file

# Only this server's own files: no CDN, no inline script; blob: for the images made in the page.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; script-src 'self'; "
                               "style-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
FAVICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" '
           'fill="#2f6fdf"/><path d="M4 12V4h4v4h4v4z" fill="#fff"/></svg>')


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
# The application
# --------------------------------------------------------------------------------------------------


def static_dir() -> Path:
    """The page's files inside the installed package."""
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
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes + FORM_OVERHEAD,  # type: ignore[arg-type]
                       message=f"the upload is larger than the limit of {settings.max_upload_bytes / MB:g} MB "
                               "(--max-upload-mb)")
    _add_error_handlers(app)
    _add_restore_routes(app, _admission(settings, registry, work))
    _add_status_routes(app, registry, work)
    _add_page_routes(app, settings.static_dir or static_dir())
    return app


Admit = Callable[[RestoreRequest, bytes], tuple[Job, "Future[None]"]]


def _admission(settings: Settings, registry: ModelRegistry, work: WorkQueue) -> Admit:
    """The check every restore request passes: its size, its model and options, a queue slot."""
    limit_mb = settings.max_upload_bytes / MB

    def admit(form: RestoreRequest, data: bytes) -> tuple[Job, Future[None]]:
        """Check the request against its model and take a queue slot, or raise the HTTP error."""
        if len(data) > settings.max_upload_bytes:
            raise HTTPException(413, f"the image is {len(data) / MB:.1f} MB, more than the limit of "
                                     f"{limit_mb:g} MB (--max-upload-mb)")
        try:
            entry = registry.resolve(form.task, form.scale)
            entry.check_options(sigma=form.options.sigma, quality=form.options.quality)
        except SwinIRError as err:
            raise HTTPException(422, api_words(err)) from err
        job = Job(entry, data, form.image.filename or "upload", form.options, settings)
        future = work.submit(job)
        if future is None:
            raise HTTPException(503, f"busy: {work.capacity} jobs are running or waiting; retry shortly",
                                headers={"Retry-After": str(work.retry_after())})
        return job, future

    return admit


def _add_restore_routes(app: FastAPI, admit: Admit) -> None:
    """``POST /v1/restore`` (waits, answers the PNG) and the jobs API (submit, poll, fetch the result)."""

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


def _add_status_routes(app: FastAPI, registry: ModelRegistry, work: WorkQueue) -> None:
    """``GET /v1/models`` and ``GET /healthz``."""

    @app.get("/v1/models", tags=["models"], response_model=ModelList, summary="The models this server runs",
             operation_id="list_models")
    async def models() -> ModelList:
        return ModelList(models=[_served_model(e) for e in registry.entries.values()], task_names=task_names())

    @app.get("/healthz", tags=["health"], response_model=Health, summary="Liveness and load", operation_id="healthz")
    async def healthz() -> Health:
        return Health(status="ok", models=len(registry), busy=work.admitted, capacity=work.capacity)


def _add_page_routes(app: FastAPI, page: Path) -> None:
    """The web page at ``/``, its files under ``/static``, the icon."""

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(page / "index.html", headers=PAGE_HEADERS)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})

    app.mount("/static", StaticFiles(directory=page), name="static")


# --------------------------------------------------------------------------------------------------
# Answers
# --------------------------------------------------------------------------------------------------


def _served_model(entry: ModelEntry) -> ServedModel:
    return ServedModel(
        name=entry.name, task=entry.task, task_label=FAMILY_LABELS[entry.info.family], scale=entry.scale,
        channels=entry.channels, level=entry.info.level, blind=entry.info.blind, description=entry.description,
        source=entry.source, quality=entry.quality, loaded=entry.loaded,  # type: ignore[arg-type]
    )


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
        "X-SwinIR-Precision": result.precision,
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
    """``photo_swinir_x4.png`` for ``photo.png``; a source of another type keeps it (``photo_jpg_swinir_x4.png``),
    so that the downloads of ``photo.jpg`` and ``photo.png`` do not share a name (as ``swinir restore`` names
    such outputs, :func:`swinir.fileio.stem_keeping_suffix`)."""
    source = Path(job.filename)
    plain = source.suffix.lower() in ("", ".png")
    stem = _header_safe(source.stem if plain else stem_keeping_suffix(source.name), keep=r"[^A-Za-z0-9._-]") or "image"
    suffix = family_label(job.entry.info.family, job.entry.scale).replace("sr ", "").replace(" ", "_")  # x4, photo_x4
    return f"{stem}_swinir_{suffix}.png"


def _header_safe(text: str, keep: str = r"[^\x20-\x7e]") -> str:
    """ASCII that fits an HTTP header value: other characters become '_' (quotes too, for filenames)."""
    return re.sub(keep, "_", text).replace('"', "_")[:200]


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


def _add_error_handlers(app: FastAPI) -> None:
    """Every error as ``{"detail": "one line"}``, validation errors included."""

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_line(exc.errors())}, status_code=422)

    @app.exception_handler(SwinIRError)
    async def swinir_error(_: Request, exc: SwinIRError) -> JSONResponse:
        return JSONResponse({"detail": api_words(exc)}, status_code=422)


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
    from .. import __version__

    return __version__
