"""Atomic file writing: a file either keeps its old content or holds the complete new one, never a part.

Everything the package writes (images, weights, evaluation tables, training checkpoints) goes through
:func:`atomic_path`: the content is written to a hidden temporary file in the target's folder, flushed and
fsynced, then renamed over the target (``os.replace`` is atomic on POSIX and Windows), and the folder is
fsynced so that the rename survives a crash. On any error the temporary file is removed.

It also holds the one rule for naming an output after a source whose plain name would be taken
(:func:`stem_keeping_suffix`), which ``swinir restore`` and the web API's downloads share.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from .errors import SwinIRError


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; when the block succeeds it becomes ``target``.

    OS errors (no space, no permission) become a one-line :class:`SwinIRError` naming the target.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SwinIRError(f"{target}: cannot create the folder {target.parent} ({_reason(err)})") from err
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_umask())  # as any new file, whatever mode the writer created it with
        descriptor = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, target)
    except OSError as err:
        _remove_quietly(temporary)
        raise SwinIRError(
            f"{target}: cannot write the file ({_reason(err)}); check that the folder is writable and has space"
        ) from err
    except BaseException:
        _remove_quietly(temporary)
        raise
    _fsync_folder(target.parent)


@contextlib.contextmanager
def atomic_folder(target: str | os.PathLike[str]) -> Iterator[Path]:
    """:func:`atomic_path` for outputs that are folders (a Zarr store): a hidden temporary folder beside
    ``target`` becomes ``target`` when the block succeeds (an existing ``target`` is replaced only then); on
    any error it is removed. OS errors become a one-line :class:`SwinIRError` naming the target."""
    import shutil

    target = Path(target)
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    old = target.with_name(f".{target.name}.{secrets.token_hex(8)}.old")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        yield temporary
        if target.exists():
            os.replace(target, old)  # a folder cannot be renamed over a full one: move it aside first
        os.replace(temporary, target)
    except OSError as err:
        shutil.rmtree(temporary, ignore_errors=True)
        if old.exists() and not target.exists():
            os.replace(old, target)  # the previous output stays as it was
        raise SwinIRError(
            f"{target}: cannot write the folder ({_reason(err)}); check that the folder is writable and has space"
        ) from err
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    _fsync_folder(target.parent)


def write_bytes_atomic(target: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``target`` atomically (see :func:`atomic_path`)."""
    with atomic_path(target) as tmp, open(tmp, "wb") as file:
        file.write(data)


def stem_keeping_suffix(name: str | os.PathLike[str]) -> str:
    """``a.jpg`` -> ``a_jpg``: a source's stem with its file type kept, for outputs whose plain stem would be
    shared by two sources (``a.jpg`` and ``a.png`` both restored to PNG). The type is lower-cased; a name
    without one stays as it is."""
    path = Path(name)
    suffix = path.suffix.lstrip(".").lower()
    return f"{path.stem}_{suffix}" if suffix else path.name


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); best effort, the data is already on disk."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _umask() -> int:
    """The process umask, read without changing it (Linux); 0o022 where it cannot be read."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


def _reason(err: OSError) -> str:
    return err.strerror or type(err).__name__
