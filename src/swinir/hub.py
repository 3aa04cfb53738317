"""The authors' models on this machine: download, verify, convert to safetensors, cache; and names that resolve.

``swinir pull NAME`` and ``--model NAME`` come here. A model is fetched from its URL
(:meth:`swinir.authors.AuthorsModel.url`: the release, or ``$SWINIR_MODEL_BASE_URL``), verified, loaded strictly
into its preset (every key and shape: the file is the authors' architecture or it is refused), and written once
as safetensors with its config, the source file's name, URL and SHA-256 in the metadata. Nothing else is kept
unless asked (``keep_original``). Cache layout under :func:`home` (``$SWINIR_HOME``, else the user cache folder
that ``platformdirs`` names)::

    models/<release stem>.safetensors   verified, converted (the official stem keeps the level: ..._noise25)
    models/<release file>.pth           only with --keep-original
    downloads/<release file>.part       bytes received so far, kept only when the user interrupts (resumed)
    recorded_sha256.json                SHA-256 of the first download of files with no public record

Verification: the size and SHA-256 of the public record where one exists; elsewhere the SHA-256 recorded at the
first download, checked on every later download; always the architecture check. Any failure leaves nothing
partial behind (the next run starts cleanly) and ends as one line naming the problem and the fix.

The fetching is `pooch <https://www.fatiando.org/pooch>`_'s: its temporary file beside the target, its hash
check before the file is moved into place, its retries. Its own HTTP downloader restarts from byte 0 after a cut
and does not read ``file://``, so :class:`ResumingDownloader` (on ``requests``, which honours the proxy
variables) takes its place: it resumes a ``.part`` file with an HTTP ``Range`` request (guarded by ``If-Range``)
and checks the size the server announces before it streams.

Nothing here downloads unless a caller asks for a model (``pull``, ``--model``, ``load(..., download=True)``).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from .authors import (
    BASE_URL_ENV,
    AuthorsModel,
    close_names,
    estimated_size,
    find_model,
    get_model,
    recommended,
)
from .checkpoints import check_state_dict, read_checkpoint, save_safetensors
from .checkpoints import load as load_checkpoint
from .errors import SwinIRError, WeightsMismatch
from .fileio import write_bytes_atomic
from .tasks import Family, family_label

HOME_ENV = "SWINIR_HOME"
OFFLINE_ENV = "SWINIR_OFFLINE"
RECORD_FILE = "recorded_sha256.json"
RETRIES = 3  # further tries after a cut connection or a server error (each resumes where the last stopped)
TIMEOUT = (15, 60)  # seconds to connect, and between two reads
CHUNK = 1 << 20


# --------------------------------------------------------------------------------------------------
# Where things are
# --------------------------------------------------------------------------------------------------


def home() -> Path:
    """The cache folder: ``$SWINIR_HOME``, else the user cache folder of ``swinir`` (``~/.cache/swinir`` on Linux)."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("swinir", appauthor=False))


def cached_path(model: AuthorsModel) -> Path:
    """Where the verified, converted model lives (whether it is there or not)."""
    return home() / "models" / f"{model.stem}.safetensors"


def original_path(model: AuthorsModel) -> Path:
    """Where ``--keep-original`` keeps the release's ``.pth``."""
    return home() / "models" / model.file


def is_downloaded(model: AuthorsModel) -> bool:
    return cached_path(model).is_file()


def offline_mode(flag: bool | None = None) -> bool:
    """Whether downloads are off: ``--offline``, or ``$SWINIR_OFFLINE`` set to 1/true/yes."""
    return bool(flag) or os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def size_text(model: AuthorsModel) -> str:
    """``67.3 MB``, or ``about 123 MB`` for a file with no public record (estimated from its architecture)."""
    if model.size is not None:
        return f"{model.size / 1e6:.1f} MB"
    return f"about {estimated_size(model) / 1e6:.0f} MB"


def not_downloaded(model: AuthorsModel, *, offline: bool = False) -> str:
    """The line that says what to pull, and how big it is."""
    why = f" and downloads are off here (--offline, ${OFFLINE_ENV}, or a torchrun process)" if offline else ""
    return (f"{model.name} is not downloaded{why}: run `swinir pull {model.name}` ({size_text(model)}) where there "
            f"is a network connection, or set {HOME_ENV} to a cache that holds it")


def paper_quality_hint(family: Family, scale: int) -> str:
    """After a restore with a bundled model: the authors' model(s) that give the paper's quality for the task."""
    models = recommended(family, scale)
    if not models:
        return ""
    each = " each" if len(models) > 1 else ""
    names = ", ".join(m.name for m in models[:-1]) + (" or " if len(models) > 1 else "") + models[-1].name
    where = "downloaded" if all(is_downloaded(m) for m in models) else f"{size_text(models[0])}{each} to download"
    per = {"denoise": "; one per noise sigma", "jpeg": "; one per JPEG quality"}.get(family, "")
    return f"the paper's quality for {family_label(family, scale)}: --model {names} (the authors' SwinIR, {where}{per})"


# --------------------------------------------------------------------------------------------------
# Hashes recorded at the first download
# --------------------------------------------------------------------------------------------------


def recorded_hashes() -> dict[str, dict[str, Any]]:
    """``{release file: {"sha256", "size", "url", "recorded"}}`` for the files with no public record."""
    path = home() / RECORD_FILE
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError) as err:
        raise SwinIRError(f"{path}: unreadable ({err}); fix or delete it (its hashes are recorded anew)") from err


def expected_sha256(model: AuthorsModel) -> tuple[str | None, str]:
    """The SHA-256 a download must have and where it comes from: ``public``, ``recorded`` or ``none yet``."""
    if model.sha256:
        return model.sha256, "public"
    record = recorded_hashes().get(model.file)
    return (record["sha256"], "recorded") if record else (None, "none yet")


def _record(model: AuthorsModel, sha256: str, size: int, url: str) -> None:
    records = recorded_hashes()
    records[model.file] = {"sha256": sha256, "size": size, "url": url, "recorded": time.strftime("%Y-%m-%d")}
    write_bytes_atomic(home() / RECORD_FILE, (json.dumps(records, indent=2, sort_keys=True) + "\n").encode())


# --------------------------------------------------------------------------------------------------
# Pulling
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PullResult:
    """What :func:`pull` did: the cached file, whether it was fetched now, and how it was verified."""

    model: AuthorsModel
    path: Path
    fetched: bool
    check: str  # public | recorded | first (no record: this download's hash recorded) | cached

    def line(self) -> str:
        if not self.fetched:
            return f"{self.model.name}: already downloaded ({self.path})"
        how = {"public": "size and SHA-256 match the public record",
               "recorded": "SHA-256 matches the one recorded at its first download",
               "first": f"no public SHA-256: this download's is recorded in {home() / RECORD_FILE}"}[self.check]
        return f"{self.model.name}: {self.path} ({self.path.stat().st_size / 1e6:.1f} MB; {how}; architecture checked)"


def pull(model: AuthorsModel, *, keep_original: bool = False, quiet: bool = False) -> PullResult:
    """Download, verify and convert ``model`` unless it is cached; the cached safetensors file's path.

    ``keep_original`` also keeps the release's ``.pth`` (downloading it again if only the conversion is cached).
    """
    target = cached_path(model)
    if target.is_file() and (not keep_original or original_path(model).is_file()):
        return PullResult(model, target, False, "cached")
    expected, source = expected_sha256(model)
    url = model.url()
    download = _fetch(model, url, expected, quiet)
    try:
        network = _checked_network(model, download, url)
        sha256 = expected or _file_sha256(download)
        if source == "none yet":
            _record(model, sha256, download.stat().st_size, url)
        save_safetensors(target, network, model.config, {
            "model": model.name, "task": model.task, "description": model.description, "source_file": model.file,
            "source_url": url, "source_sha256": sha256})
        if keep_original:
            os.replace(download, original_path(model))
    finally:
        with contextlib.suppress(OSError):
            download.unlink()
    return PullResult(model, target, True, "first" if source == "none yet" else source)


def _file_sha256(path: Path) -> str:
    import pooch

    return pooch.file_hash(str(path), alg="sha256")


def _checked_network(model: AuthorsModel, path: Path, url: str) -> Any:
    """The file loaded strictly into the model's preset (read with ``weights_only``), or a one-line refusal."""
    try:
        state, _ = read_checkpoint(path)
        network = model.config.build()
        check_state_dict(network, state)
        network.load_state_dict(state, strict=True)
    except (SwinIRError, RuntimeError) as err:
        detail = (err.detail if isinstance(err, WeightsMismatch) else str(err)).strip().splitlines()[-1]
        raise SwinIRError(f"{model.name}: {url} is not the {model.preset.name} network ({detail}); nothing "
                          f"was kept: check {BASE_URL_ENV}, or report a re-released file") from None
    return network


def _fetch(model: AuthorsModel, url: str, sha256: str | None, quiet: bool) -> Path:
    """The release file in ``downloads/``, its size and SHA-256 verified by pooch where known; on failure nothing
    is left (but the bytes received when the user interrupts, which the next pull resumes)."""
    import pooch
    import requests

    folder = home() / "downloads"
    with contextlib.suppress(OSError):
        (folder / model.file).unlink()  # a complete file left by a crash is fetched again: verified, not trusted
    downloader = ResumingDownloader(model, folder / f"{model.file}.part", quiet=quiet)
    fetcher = pooch.create(path=folder, base_url="", registry={model.file: f"sha256:{sha256}" if sha256 else None},
                           urls={model.file: url}, retry_if_failed=RETRIES)
    try:
        with _pooch_quiet():
            return Path(fetcher.fetch(model.file, downloader=downloader))
    except KeyboardInterrupt:
        if downloader.part.is_file():
            print(f"swinir: {downloader.part.stat().st_size / 1e6:.1f} MB of {model.file} kept in {folder}; "
                  f"`swinir pull {model.name}` resumes", file=sys.stderr)
        raise
    except BaseException as err:
        downloader.discard()
        if isinstance(err, ValueError):  # pooch: the hash does not match
            what = "the public record" if model.sha256 else "the one recorded at its first download"
            fix = (f"check {BASE_URL_ENV}" if model.sha256 else
                   f"if the authors re-released it, delete its entry in {home() / RECORD_FILE}")
            raise SwinIRError(f"{model.name}: the SHA-256 of {url} does not match {what} ({sha256}): the server sent "
                              f"another file; nothing was kept ({fix})") from None
        if isinstance(err, requests.RequestException):
            raise SwinIRError(_network_failure(model, url, err, downloader.received)) from None
        raise


def _network_failure(model: AuthorsModel, url: str, err: Exception, received: int) -> str:
    """One line for a download that failed on the network after every retry."""
    import requests

    host = urlparse(url).netloc or url
    tries = f"{RETRIES + 1} tries"
    mirror = f"or fetch from a mirror with {BASE_URL_ENV}"
    if isinstance(err, requests.HTTPError) and err.response is not None:
        r = err.response
        return (f"{model.name}: {host} answered {r.status_code} {r.reason} for {url} ({tries}); try again later, "
                f"{mirror}")
    if received:
        return (f"{model.name}: the connection to {host} broke off ({received / 1e6:.1f} MB received, {tries}); "
                f"run the same command again, {mirror}")
    return (f"{model.name}: cannot reach {host} ({_short_reason(err)}, {tries}): check the network connection and "
            f"the proxy settings (HTTPS_PROXY), {mirror}")


def _short_reason(err: Exception) -> str:
    text = str(err)
    for pattern in (r"Failed to resolve '[^']+'", r"\[Errno -?\d+\] [^'\")\]]+", r"[Rr]ead timed out",
                    r"Connection refused", r"Connection reset"):
        match = re.search(pattern, text)
        if match:
            return match.group(0).strip()
    return type(err).__name__


@contextlib.contextmanager
def _pooch_quiet() -> Iterator[None]:
    """pooch logs every download at INFO on its own handler; the progress bar says it already."""
    import pooch

    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


# --------------------------------------------------------------------------------------------------
# The downloader
# --------------------------------------------------------------------------------------------------


def _write(file: Any, chunk: bytes) -> None:
    """One chunk to disk (its own function: the tests make the disk full here)."""
    file.write(chunk)


class ResumingDownloader:
    """A pooch downloader (``downloader(url, output_file, pooch)``) that resumes.

    The bytes go to ``part`` (kept between pooch's retries, with the URL and the server's validator beside it in
    ``part.json``); a retry asks for the rest with ``Range`` and ``If-Range``, so a server that changed the file
    sends it whole. A complete ``part`` becomes ``output_file`` (pooch's temporary file, hash-checked next).
    Problems a retry cannot fix (404, a wrong size, a full disk) raise :class:`SwinIRError`, which pooch does
    not retry; cut connections and server errors raise ``requests`` errors, which it does.
    """

    def __init__(self, model: AuthorsModel, part: Path, *, quiet: bool = False) -> None:
        self.model, self.part, self.quiet = model, part, quiet
        self.received = 0  # bytes received by the last try (for the failure's message)

    @property
    def sidecar(self) -> Path:
        return self.part.with_name(self.part.name + ".json")

    def discard(self) -> None:
        for path in (self.part, self.sidecar):
            with contextlib.suppress(OSError):
                path.unlink()

    def __call__(self, url: str, output_file: str, pooch: Any, check_only: bool = False) -> bool | None:
        if check_only:
            return None
        self.part.parent.mkdir(parents=True, exist_ok=True)
        try:
            if urlparse(url).scheme == "file":
                self._copy_local(url)
            else:
                self._download(url)
        except OSError as err:
            if not _is_network_error(err):
                raise SwinIRError(self._disk_failure(err)) from None
            raise
        os.replace(self.part, output_file)
        self.discard()
        return None

    def _disk_failure(self, err: OSError) -> str:
        folder = self.part.parent
        if err.errno == errno.ENOSPC:
            return (f"{self.model.name}: no space left on the disk holding {folder} ({size_text(self.model)} "
                    f"needed); nothing was kept: free some space, or set {HOME_ENV} to a folder on a larger disk")
        return (f"{self.model.name}: cannot write in {folder} ({err.strerror or err}); check that it is writable, "
                f"or set {HOME_ENV} to another folder")

    def _check_size(self, url: str, total: int | None) -> None:
        expected = self.model.size
        if expected is not None and total is not None and total != expected:
            raise SwinIRError(f"{self.model.name}: {url} is {total:,} bytes, but the authors' {self.model.file} is "
                              f"{expected:,}: the server holds another file; nothing was kept (check {BASE_URL_ENV})")

    def _copy_local(self, url: str) -> None:
        source = Path(url2pathname(urlparse(url).path))
        if not source.is_file():
            raise SwinIRError(f"{self.model.name}: {source} does not exist ({BASE_URL_ENV}="
                              f"{os.environ.get(BASE_URL_ENV, '')}): put the release's files there, or unset it")
        self._check_size(url, source.stat().st_size)
        with open(source, "rb") as src, open(self.part, "wb") as dst, self._bar(source.stat().st_size, 0) as bar:
            while chunk := src.read(CHUNK):
                _write(dst, chunk)
                bar.update(len(chunk))

    def _resume_from(self, url: str) -> tuple[int, str | None]:
        """Bytes already in ``part`` for this URL and the server's validator for them (0 and None: start over)."""
        try:
            side = json.loads(self.sidecar.read_text())
            if side.get("url") == url and self.part.is_file():
                return self.part.stat().st_size, side.get("validator")
        except (OSError, ValueError):
            pass
        self.discard()
        return 0, None

    def _download(self, url: str) -> None:
        import requests

        have, validator = self._resume_from(url)
        headers = {"Range": f"bytes={have}-"} if have else {}
        if have and validator:
            headers["If-Range"] = validator
        self.received = 0
        with requests.get(url, headers=headers, stream=True, timeout=TIMEOUT) as r:
            if r.status_code in (404, 410):
                raise SwinIRError(f"{self.model.name}: {url} is not there ({r.status_code} {r.reason}); check "
                                  f"{BASE_URL_ENV} (unset it for the authors' release)")
            if r.status_code == 416:  # the part is no prefix of what the server has now
                self.discard()
                raise requests.ConnectionError("the server refused the range; starting over")
            if r.status_code >= 500 or r.status_code == 429:
                r.raise_for_status()
            if r.status_code >= 400:
                raise SwinIRError(f"{self.model.name}: {urlparse(url).netloc} refused {url} ({r.status_code} "
                                  f"{r.reason}); check {BASE_URL_ENV} and the proxy settings")
            start = _range_start(r) if r.status_code == 206 else 0
            if start != have and r.status_code == 206:
                self.discard()
                raise requests.ConnectionError("the server sent another range; starting over")
            length = r.headers.get("Content-Length")
            total = start + int(length) if length is not None else None
            self._check_size(url, total)
            validator = r.headers.get("ETag") or r.headers.get("Last-Modified")
            self.sidecar.write_text(json.dumps({"url": url, "validator": validator}))
            with open(self.part, "ab" if start else "wb") as file, self._bar(total, start) as bar:
                for chunk in r.iter_content(CHUNK):
                    _write(file, chunk)
                    self.received += len(chunk)
                    bar.update(len(chunk))
        got = self.part.stat().st_size
        if total is not None and got < total:
            raise requests.ConnectionError(f"the connection closed after {got:,} of {total:,} bytes")
        self._check_size(url, got)

    def _bar(self, total: int | None, initial: int) -> Any:
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                    desc=self.model.name, disable=self.quiet, file=sys.stderr, dynamic_ncols=True)


def _range_start(response: Any) -> int:
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else -1


def _is_network_error(err: OSError) -> bool:
    """requests' errors are OSErrors too (IOError): those are pooch's to retry, not a disk problem."""
    import requests

    return isinstance(err, requests.RequestException)


# --------------------------------------------------------------------------------------------------
# Names that resolve
# --------------------------------------------------------------------------------------------------


def model_file(name: str, *, offline: bool | None = None, quiet: bool = False) -> Path:
    """``--model NAME``: the cached file, pulled on first use (with a progress bar) unless offline."""
    model = get_model(name)
    path = cached_path(model)
    if path.is_file():
        return path
    if offline_mode(offline):
        raise SwinIRError(not_downloaded(model, offline=True))
    result = pull(model, quiet=quiet)
    if not quiet:
        print(result.line(), file=sys.stderr)
    return result.path


def model_path(model: str | os.PathLike, *, download: bool = False, quiet: bool = True) -> Path:
    """A weights file by path, bundled name (``swinir models``) or the authors' name (cached; pulled only
    with ``download``; a release file's name, ``001_..._x2.pth``, means that model). An existing file wins."""
    from .bundled import model_file as bundled_file

    path = Path(model)
    if path.exists():
        return path
    authors = find_model(str(model)) if len(path.parts) == 1 else None  # a name, or a release file's name
    if authors is None:
        if path.suffix in (".pth", ".safetensors", ".onnx") or len(path.parts) > 1:
            return path  # a file's name: the loader says in one line that it is missing
        try:
            return bundled_file(model)
        except SwinIRError as err:
            close = close_names(str(model))
            if close:
                raise SwinIRError(f"{err}; or did you mean the authors' {' or '.join(close)}?") from None
            raise
    if is_downloaded(authors):
        return cached_path(authors)
    if download:
        return pull(authors, quiet=quiet).path
    raise SwinIRError(not_downloaded(authors) + "; or pass download=True")


def load(model: str | os.PathLike, preset: Any = None, *, device: Any = "cpu", download: bool = False) -> Any:
    """:func:`swinir.checkpoints.load` of a path, a bundled model's name or an authors' model's name (see
    :func:`model_path`; ``download=True`` pulls an authors' model that is not cached yet): a
    :class:`~swinir.descriptor.ModelDescriptor`, which runs like the network."""
    return load_checkpoint(model_path(model, download=download, quiet=False), preset, device=device)


def add_model_options(parser: argparse.ArgumentParser | Any, *, repeatable: bool = False) -> None:
    """``--model NAME`` and ``--offline``, as restore, eval, serve and export take them."""
    parser.add_argument("--model", action="append" if repeatable else "store", default=[] if repeatable else None,
                        metavar="NAME", help="one of the authors' models by name (swinir models lists them), "
                        "downloaded on first use and cached" + ("; repeatable" if repeatable else ""))


def add_offline_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--offline", action="store_true",
                        help=f"never download (also ${OFFLINE_ENV}=1): a --model that is not cached is an error")
