"""``swinir serve``: its flags, the settings they make, and the run (uvicorn, loopback unless told otherwise).

The server has no authentication and no TLS, so it listens on 127.0.0.1 by default and prints a loud warning
for any address that other machines can reach.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys

from ..errors import SwinIRError
from ..hub import add_model_options, add_offline_option, model_file
from .app import create_app
from .registry import ModelRegistry
from .settings import DEFAULT_MAX_PIXELS, DEFAULT_MAX_UPLOAD_MB, MB, Settings, WeightsSpec

LOOPBACK_NAMES = {"localhost", "ip6-localhost", "ip6-loopback"}
log = logging.getLogger("swinir.service")  # the service's modules log here; this command shows it


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``swinir serve``."""
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; there is no authentication)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--weights", "-w", action="append", default=[], metavar="[NAME=]FILE",
                   help="serve this checkpoint (repeatable). NAME is what requests pass as `task` (default: the "
                        "file's stem); a task name such as denoise or color_car also sets the model's task")
    add_model_options(p, repeatable=True)
    add_offline_option(p)
    p.add_argument("--no-bundled", action="store_true", help="serve only the --weights and --model models")
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
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"),
                   help="how much the server and uvicorn log (default info: start-up lines and each request)")


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The parsed flags as :class:`Settings` (sizes in bytes)."""
    return Settings(
        weights=(*(WeightsSpec.parse(w) for w in args.weights),
                 *(WeightsSpec(model_file(name, offline=getattr(args, "offline", False)), name)
                   for name in getattr(args, "model", None) or ())),
        include_bundled=not args.no_bundled,
        device=args.device,
        max_upload_bytes=int(args.max_upload_mb * MB),
        max_pixels=args.max_pixels,
        workers=args.workers,
        queue=args.queue,
        max_memory=int(args.max_memory * 1e9) if args.max_memory else None,
    )


def run_serve_command(args: argparse.Namespace) -> int:
    """Describe the models, warn about a non-loopback address, and serve until interrupted."""
    import uvicorn

    from ..engine import set_threads

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
