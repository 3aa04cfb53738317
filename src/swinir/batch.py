"""Restoring a list of image and video files, one after the other: the work of ``swinir restore``.

The command (:mod:`swinir.cli`) parses flags and, under torchrun, hands each process its share of the list
(:mod:`swinir.sharding`); this module turns inputs into jobs (source, output), runs them with progress bars,
and reports what happened. Decisions:

* A bad file fails only itself: its one-line error is printed, the next file is restored, and the report
  names it, so the exit code can say 1 at the end.
* Existing outputs are kept unless ``overwrite``: rerunning an interrupted command continues where it stopped,
  because every output is written atomically (complete or absent, never half-written).
* Images get ``--format``; videos keep their container (``clip.mkv`` gives ``clip.mkv``) unless
  ``--video-format`` says otherwise. A single input may name its output file instead of a folder.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .errors import SwinIRError
from .pipeline import RestoreOptions, restore_image
from .video import VIDEO_SUFFIXES, EncodeOptions, check_encode_options, restore_video

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm",
                            ".pnm"})
MEDIA_SUFFIXES = IMAGE_SUFFIXES | VIDEO_SUFFIXES
_LISTED_FAILURES = 10  # failed files named in the summary; the rest are counted


@dataclass(frozen=True)
class Job:
    """One input file and the output it becomes."""

    src: Path
    dst: Path

    @property
    def is_video(self) -> bool:
        return self.src.suffix.lower() in VIDEO_SUFFIXES


@dataclass
class Report:
    """What a run did: files given, skipped (output already there), failed (their paths), videos among them."""

    total: int = 0
    skipped: int = 0
    videos: int = 0
    failed: list[str] = field(default_factory=list)

    @classmethod
    def merged(cls, reports: Sequence[Report]) -> Report:
        """One report of several processes' reports (failures in list order of the processes)."""
        return cls(sum(r.total for r in reports), sum(r.skipped for r in reports), sum(r.videos for r in reports),
                   [name for r in reports for name in r.failed])

    def summary(self, output: Path, processes: int = 1) -> str:
        """One line: ``restored 3 of 4 images into out/; 1 failed: bad.png``."""
        noun = "images" if self.videos == 0 else "videos" if self.videos == self.total else "files"
        line = f"restored {self.total - len(self.failed)} of {self.total} {noun} into {output}"
        if processes > 1:
            line += f" with {processes} processes"
        if self.skipped:
            line += f" ({self.skipped} already there, kept)"
        if self.failed:
            named = ", ".join(self.failed[:_LISTED_FAILURES])
            more = len(self.failed) - _LISTED_FAILURES
            line += f"; {len(self.failed)} failed: {named}" + (f" and {more} more (see above)" if more > 0 else "")
        return line


def collect_inputs(inputs: Sequence[Path]) -> list[Path]:
    """Files named directly, plus the image and video files directly inside named folders (sorted by name).

    The order depends only on the arguments and the folders' contents, so every process of a sharded run
    builds the same list.
    """
    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES)
            if not found:
                raise SwinIRError(f"{item}: the folder holds no images or videos "
                                  f"({', '.join(sorted(MEDIA_SUFFIXES))})")
            files += found
        elif item.exists():
            files.append(item)
        else:
            raise SwinIRError(f"{item}: no such file or folder")
    return files


def output_path(src: Path, output: Path, single: bool, fmt: str, video_format: str | None = None) -> Path:
    """``output`` itself for a single input when it names a file of the input's kind; else a file in the
    ``output`` folder: ``<stem>.<fmt>`` for an image, ``<stem>.<video_format or the input's suffix>`` for a
    video."""
    video = src.suffix.lower() in VIDEO_SUFFIXES
    suffix = output.suffix.lower()
    if single and suffix in MEDIA_SUFFIXES:
        if video != (suffix in VIDEO_SUFFIXES):
            kind, other = ("a video", "an image") if video else ("an image", "a video")
            wanted = VIDEO_SUFFIXES if video else IMAGE_SUFFIXES
            raise SwinIRError(f"{src} is {kind}, but -o {output} names {other} file; give a folder or a file "
                              f"ending in {', '.join(sorted(wanted))}")
        return output
    if video:
        return output / (src.stem + ("." + video_format.lstrip(".") if video_format else src.suffix))
    return output / f"{src.stem}.{fmt.lstrip('.')}"


def plan_jobs(inputs: Sequence[Path], output: Path, fmt: str = "png", video_format: str | None = None,
              encode: EncodeOptions | None = None) -> list[Job]:
    """The jobs for ``inputs`` (see :func:`collect_inputs` and :func:`output_path`); with videos among them,
    the encoding options are checked here, once, rather than failing every video alike."""
    if video_format is not None and f".{video_format.lstrip('.').lower()}" not in VIDEO_SUFFIXES:
        raise SwinIRError(f"--video-format {video_format}: use one of "
                          f"{', '.join(sorted(s.lstrip('.') for s in VIDEO_SUFFIXES))}")
    files = collect_inputs(inputs)
    jobs = [Job(src, output_path(src, output, len(files) == 1, fmt, video_format)) for src in files]
    videos = [job for job in jobs if job.is_video]
    if videos:
        check_encode_options(encode or EncodeOptions(), videos[0].dst.suffix)
    return jobs


def restore_files(model: Any, jobs: Sequence[Job], options: RestoreOptions | None = None,
                  encode: EncodeOptions | None = None, *, overwrite: bool = False, quiet: bool = False,
                  prefix: str = "", position: int = 0) -> Report:
    """Restore ``jobs`` in order, each output written atomically; a failing file is reported and skipped.

    ``prefix`` starts every printed line (a process's rank under torchrun) and ``position`` places the
    progress bars, so that several processes sharing a terminal do not draw over each other.
    """
    options, encode = options or RestoreOptions(), encode or EncodeOptions()
    report = Report(total=len(jobs), videos=sum(job.is_video for job in jobs))
    for job in tqdm(jobs, unit="file", disable=quiet, desc=f"{prefix}restore", position=position):
        if job.dst.exists() and not overwrite:
            tqdm.write(f"{prefix}skip {job.src}: {job.dst} exists (use --overwrite)")
            report.skipped += 1
            continue
        try:
            restore = _restore_video_file if job.is_video else _restore_image_file
            restore(model, job, options, encode, quiet=quiet, prefix=prefix, position=position + 1)
        except SwinIRError as err:
            report.failed.append(str(job.src))
            tqdm.write(f"{prefix}error: {err}", file=sys.stderr)
    return report


def _restore_image_file(model: Any, job: Job, options: RestoreOptions, encode: EncodeOptions, *, quiet: bool,
                        prefix: str, position: int) -> None:
    from .images import read_image, write_image

    image = read_image(job.src)
    with tqdm(unit="tile", leave=False, disable=quiet, desc=f"{prefix}{job.src.name}", position=position) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)
            if total == 1:
                bar.disable = True

        result = restore_image(model, image, options, progress=progress)
    for notice in result.notices:
        tqdm.write(f"{prefix}{job.src}: {notice}")
    write_image(job.dst, result.pixels, alpha=result.alpha)


def _restore_video_file(model: Any, job: Job, options: RestoreOptions, encode: EncodeOptions, *, quiet: bool,
                        prefix: str, position: int) -> None:
    with tqdm(unit="frame", leave=False, disable=quiet, desc=f"{prefix}{job.src.name}", position=position) as bar:

        def progress(done: int, total: int | None) -> None:
            if bar.total != total:
                bar.total = total
                bar.refresh()
            bar.update(done - bar.n)

        restore_video(model, job.src, job.dst, options, encode, progress=progress,
                      notify=lambda message: tqdm.write(f"{prefix}{job.src}: {message}"))


@contextlib.contextmanager
def stop_on_terminate() -> Iterator[None]:
    """Turn SIGTERM (what torchrun and service managers send to stop a process) into KeyboardInterrupt, so
    that a stopped run removes its unfinished temporary file like Ctrl-C does. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
