"""Restorations as jobs: what one is, the bounded work queue that runs them, and the store the polling API reads.

* :class:`Job` is one upload on its way through; the worker thread writes its progress, the event loop reads it.
* :func:`process` runs one job to the end in a worker thread: decode (in memory), :func:`restore_image` (the
  CLI's pipeline, so the API adds nothing to the pixels), encode PNG. It never raises: the outcome lands in
  the job as a result or as ``(HTTP status, one-line detail)``.
* :class:`WorkQueue` admits at most ``workers + queue`` jobs (a non-blocking semaphore) and refuses the rest
  at once, so a burst gets 503 with a ``Retry-After`` estimate instead of piling up. torch releases the GIL,
  so the event loop keeps answering while a worker computes.
* :class:`JobStore` keeps jobs by id for ``GET /v1/jobs/{id}``, for a while after they finish.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from fastapi import HTTPException

from ..engine import model_device_dtype
from ..errors import SwinIRError
from ..images import decode_image, encode_png
from ..pipeline import RestoreOptions, restore_image
from ..precision import Precision, resolve_precision
from .registry import ModelEntry, api_words
from .settings import Settings

log = logging.getLogger("swinir.service")


@dataclass(frozen=True)
class RequestOptions:
    """The per-request knobs, validated by the form (ranges), the model (sigma/quality) and the engine (tile)."""

    tile: int | None = None
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    sigma: float | None = None  # accepted only where the model can honour it (see ModelEntry.check_options)
    quality: int | None = None


@dataclass
class Result:
    png: bytes
    width: int
    height: int
    seconds: float
    notices: list[str]
    precision: Precision  # what ``auto`` (or the request) became on this machine


@dataclass
class Job:
    """One restoration. The worker thread writes its progress fields; the event loop only reads them."""

    entry: ModelEntry
    data: bytes
    filename: str
    options: RequestOptions
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

    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.created


def process(job: Job) -> None:
    """Run one job to the end (in a worker thread): never raises; the outcome lands in the job."""
    job.state, job.started = "running", time.monotonic()
    try:
        job.result = restore_upload(job)
        job.state = "done"
    except SwinIRError as err:
        job.error, job.state = (422, api_words(err)), "failed"
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

    options = RestoreOptions(tile=job.options.tile, precision=job.options.precision,
                             max_memory=job.settings.max_memory)
    restored = restore_image(model, image, options, progress=progress)
    out = restored.pixels
    png = encode_png(np.ascontiguousarray(out), alpha=restored.alpha)
    seconds = time.perf_counter() - started
    precision = resolve_precision(job.options.precision, model_device_dtype(model)[0])
    log.info("job %s: %s %dx%d -> %dx%d (%s) in %.2f s", job.id, job.entry.name, width, height,
             out.shape[1], out.shape[0], precision, seconds)
    return Result(png, out.shape[1], out.shape[0], seconds, restored.notices, precision)


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
        """The job, or 404 saying it never existed or expired."""
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
