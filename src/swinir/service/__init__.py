"""The local web app and HTTP API: ``swinir serve``.

One FastAPI application per :class:`Settings`, with no module-level state. The parts, in the order a
request meets them:

* :mod:`.settings`: :class:`Settings` and :class:`WeightsSpec`, what the operator decided;
* :mod:`.registry`: :class:`ModelRegistry`, the servable models (``--weights`` files, then the bundled ones),
  described from their headers at start-up and loaded lazily, once each;
* :mod:`.schema`: the restore form and the JSON bodies (also the OpenAPI schema);
* :mod:`.jobs`: :class:`Job`, the bounded :class:`WorkQueue`, the :class:`JobStore`, and :func:`process`,
  which runs one upload through :func:`swinir.pipeline.restore_image`;
* :mod:`.app`: :func:`create_app`: the endpoints, the upload size limit, the error handlers;
* :mod:`.command`: the ``swinir serve`` flags and the uvicorn run.
"""

from __future__ import annotations

from .app import create_app
from .command import add_serve_arguments, is_loopback, run_serve_command, settings_from_args
from .jobs import Job, JobStore, WorkQueue, process
from .registry import ModelEntry, ModelRegistry, task_names
from .settings import Settings, WeightsSpec

__all__ = [
    "Job", "JobStore", "ModelEntry", "ModelRegistry", "Settings", "WeightsSpec", "WorkQueue", "add_serve_arguments",
    "create_app", "is_loopback", "process", "run_serve_command", "settings_from_args", "task_names",
]
