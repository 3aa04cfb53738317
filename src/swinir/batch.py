"""Restoring a list of image and video files, one after the other: the work of ``swinir restore``.

The command (:mod:`swinir.cli`) parses flags and, under torchrun, hands each process its share of the list
(:mod:`swinir.sharding`); this module turns inputs into jobs (source, output), runs them with progress bars,
and reports what happened. Decisions:

* A bad file fails only itself: its one-line error is printed, the next file is restored, and the report
  names it, so the exit code can say 1 at the end.
* Existing outputs are kept unless ``overwrite``: rerunning an interrupted command continues where it stopped,
  because every output is written atomically (complete or absent, never half-written).
* Images get ``--format``; videos keep their container (``clip.mkv`` gives ``clip.mkv``) unless
  ``--video-format`` says otherwise. A single input may name its output file instead of a folder; several
  inputs and ``-o name.png`` are refused rather than making a folder called ``name.png``.
* No output is lost to a shared name: sources whose outputs would be one file (``a.jpg`` and ``a.png`` to
  ``a.png``; compared ignoring case, as macOS and Windows do) keep their suffix in the name (``a_jpg.png``,
  ``a_png.png``), decided when the jobs are planned, before any work, and the same in every process of a
  sharded run. Sources that would still share a name (``x/a.png`` and ``y/a.png``) are refused.
* Folders: the files directly inside, or with ``recursive`` those of every sub-folder too, written to the
  same sub-folder of the output; sub-folders left out are named in one notice. The output folder and hidden
  folders are never searched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .errors import SwinIRError
from .fileio import stem_keeping_suffix
from .pipeline import RestoreOptions, restore_image
from .streaming import TiffOptions, restore_tiff
from .video import VIDEO_SUFFIXES, EncodeOptions, check_encode_options, restore_video
from .zarrs import is_zarr

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm",
                            ".pnm", ".zarr", ".dcm", ".dicom"})  # a .zarr is a folder: an input only when named
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
        """One line: ``restored 2 of 4 images into out/; kept 1 existing output (...); 1 failed: bad.png``.

        Only files restored by this run count as restored; an output kept from before is counted apart."""
        noun = "images" if self.videos == 0 else "videos" if self.videos == self.total else "files"
        restored = self.total - self.skipped - len(self.failed)
        line = f"restored {restored} of {self.total} {noun} into {output}"
        if processes > 1:
            line += f" with {processes} processes"
        if self.skipped:
            outputs = "output" if self.skipped == 1 else "outputs"
            line += f"; kept {self.skipped} existing {outputs} (--overwrite replaces them)"
        if self.failed:
            named = ", ".join(self.failed[:_LISTED_FAILURES])
            more = len(self.failed) - _LISTED_FAILURES
            line += f"; {len(self.failed)} failed: {named}" + (f" and {more} more (see above)" if more > 0 else "")
        return line


@dataclass(frozen=True)
class Plan:
    """The jobs of a run and the notices about how they were found and named (printed once, by rank 0)."""

    jobs: list[Job]
    notices: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Source:
    """An input file and the sub-folder of the output it goes to (``Path()``: the output folder itself)."""

    path: Path
    place: Path = Path()


def collect_inputs(inputs: Sequence[Path], *, recursive: bool = False, exclude: Path | None = None
                   ) -> tuple[list[_Source], list[Path]]:
    """Files named directly, plus the image and video files inside named folders: directly inside, or with
    ``recursive`` in every sub-folder too (keeping their place under the folder). Also returns, without
    ``recursive``, the sub-folders that hold such files and were therefore left out.

    The order depends only on the arguments and the folders' contents (sorted by path), so every process of a
    sharded run builds the same list. ``exclude`` (the output folder) is never searched, so a rerun does not
    restore its own outputs; hidden folders are not searched either. A file named twice is taken once.
    """
    sources: list[_Source] = []
    skipped: list[Path] = []
    for item in inputs:
        if item.is_dir() and not is_zarr(item):
            found, below = _folder_media(item, recursive, exclude)
            if not found:
                hint = f"; its sub-folders do ({', '.join(map(str, below[:3]))}): add --recursive" if below else ""
                where = " and its sub-folders" if recursive else ""
                raise SwinIRError(f"{item}: the folder{where} holds no images or videos "
                                  f"({', '.join(sorted(MEDIA_SUFFIXES))}){hint}")
            sources += [_Source(path, path.parent.relative_to(item)) for path in found]
            skipped += below
        elif item.exists():
            sources.append(_Source(item))
        else:
            raise SwinIRError(f"{item}: no such file or folder")
    unique: dict[Path, _Source] = {}
    for source in sources:
        unique.setdefault(source.path.resolve(), source)  # the first mention of a file wins
    return list(unique.values()), skipped


def _folder_media(folder: Path, recursive: bool, exclude: Path | None) -> tuple[list[Path], list[Path]]:
    """The media files in ``folder`` (with ``recursive``, in its sub-folders too), and the sub-folders left
    out that hold some (none with ``recursive``)."""
    excluded = exclude.resolve() if exclude is not None else None
    files: list[Path] = []
    left_out: list[Path] = []
    for top, dirs, names in os.walk(folder):
        here = Path(top)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (here / d).resolve() != excluded)
        files += [here / n for n in names if Path(n).suffix.lower() in MEDIA_SUFFIXES and (here / n).is_file()]
        if not recursive:
            left_out = [here / d for d in dirs if _holds_media(here / d)]
            break
    return sorted(files, key=lambda p: p.relative_to(folder).parts), left_out


def _holds_media(folder: Path) -> bool:
    return any(p.suffix.lower() in MEDIA_SUFFIXES and p.is_file() for p in folder.rglob("*"))


def output_path(src: Path, output: Path, single: bool, fmt: str, video_format: str | None = None,
                place: Path = Path(), keep_suffix: bool = False) -> Path:
    """``output`` itself for a single input when it names a file of the input's kind; else a file in the
    ``output`` folder (in its sub-folder ``place``): ``<stem>.<fmt>`` for an image, ``<stem>.<video_format or
    the input's suffix>`` for a video. ``keep_suffix`` names it ``<stem>_<input suffix>.<...>`` instead
    (``a_jpg.png``), for sources whose plain names collide."""
    video = src.suffix.lower() in VIDEO_SUFFIXES
    suffix = output.suffix.lower()
    if single and suffix in MEDIA_SUFFIXES:
        if video != (suffix in VIDEO_SUFFIXES):
            kind, other = ("a video", "an image") if video else ("an image", "a video")
            wanted = VIDEO_SUFFIXES if video else IMAGE_SUFFIXES
            raise SwinIRError(f"{src} is {kind}, but -o {output} names {other} file; give a folder or a file "
                              f"ending in {', '.join(sorted(wanted))}")
        return output
    stem = stem_keeping_suffix(src.name) if keep_suffix else src.stem
    if video:
        return output / place / (stem + ("." + video_format.lstrip(".") if video_format else src.suffix))
    return output / place / f"{stem}.{fmt.lstrip('.')}"


def plan_jobs(inputs: Sequence[Path], output: Path, fmt: str = "png", video_format: str | None = None,
              encode: EncodeOptions | None = None, *, recursive: bool = False) -> Plan:
    """The jobs for ``inputs`` (see :func:`collect_inputs` and :func:`output_path`), checked before any work:
    ``-o`` naming a file for several inputs is refused; sources whose outputs would share a name (``a.jpg``
    and ``a.png``) keep their suffix in it (``a_jpg.png``, ``a_png.png``), with a notice, and two that would
    still share one are refused. With videos among them, the encoding options are checked here, once, rather
    than failing every video alike."""
    if video_format is not None and f".{video_format.lstrip('.').lower()}" not in VIDEO_SUFFIXES:
        raise SwinIRError(f"--video-format {video_format}: use one of "
                          f"{', '.join(sorted(s.lstrip('.') for s in VIDEO_SUFFIXES))}")
    sources, skipped = collect_inputs(inputs, recursive=recursive, exclude=output)
    single = len(sources) == 1
    if not single and output.suffix.lower() in MEDIA_SUFFIXES and not output.is_dir():
        raise SwinIRError(f"-o {output} names a file, but there are {len(sources)} inputs; give a folder for the "
                          f"outputs (e.g. -o {output.with_suffix('')})")
    jobs, notices = _name_outputs(sources, output, single, fmt, video_format)
    if skipped:
        named = ", ".join(map(str, skipped[:_LISTED_FAILURES]))
        more = f" and {len(skipped) - _LISTED_FAILURES} more" if len(skipped) > _LISTED_FAILURES else ""
        notices.insert(0, f"sub-folders not searched (add --recursive to restore them too): {named}{more}")
    videos = [job for job in jobs if job.is_video]
    if videos:
        check_encode_options(encode or EncodeOptions(), videos[0].dst.suffix)
    return Plan(jobs, notices)


def _name_outputs(sources: Sequence[_Source], output: Path, single: bool, fmt: str,
                  video_format: str | None) -> tuple[list[Job], list[str]]:
    """One job per source, every output name distinct (compared ignoring case, as macOS and Windows do)."""
    plain = [output_path(s.path, output, single, fmt, video_format, s.place) for s in sources]
    groups: dict[str, list[int]] = {}
    for i, dst in enumerate(plain):
        groups.setdefault(_name_key(dst), []).append(i)
    jobs = [Job(s.path, dst) for s, dst in zip(sources, plain, strict=True)]
    notices = []
    for members in (m for m in groups.values() if len(m) > 1):
        for i in members:
            jobs[i] = Job(sources[i].path, output_path(sources[i].path, output, single, fmt, video_format,
                                                       sources[i].place, keep_suffix=True))
        both = "both" if len(members) == 2 else "all"
        notices.append(f"{' and '.join(str(sources[i].path) for i in members)} would {both} be written to "
                       f"{plain[members[0]]}: named {', '.join(jobs[i].dst.name for i in members)} instead")
    taken: dict[str, Job] = {}
    for job in jobs:
        other = taken.setdefault(_name_key(job.dst), job)
        if other is not job:
            raise SwinIRError(f"{other.src} and {job.src} would both be written to {job.dst}; restore them into "
                              "separate -o folders, or rename one")
    return jobs, notices


def _name_key(path: Path) -> str:
    return str(path).casefold()


def restore_files(model: Any, jobs: Sequence[Job], options: RestoreOptions | None = None,
                  encode: EncodeOptions | None = None, *, overwrite: bool = False, quiet: bool = False,
                  prefix: str = "", position: int = 0, tiff: TiffOptions | None = None) -> Report:
    """Restore ``jobs`` in order, each output written atomically; a failing file is reported and skipped.

    ``prefix`` starts every printed line (a process's rank under torchrun) and ``position`` places the
    progress bars, so that several processes sharing a terminal do not draw over each other. TIFF (or Zarr)
    inputs with TIFF (or Zarr) outputs go through :mod:`swinir.streaming` (stacks, 16-bit and float, larger than
    memory, metadata) with the ``tiff`` options.
    """
    options, encode, tiff = options or RestoreOptions(), encode or EncodeOptions(), tiff or TiffOptions()
    report = Report(total=len(jobs), videos=sum(job.is_video for job in jobs))
    for job in tqdm(jobs, unit="file", disable=quiet, desc=f"{prefix}restore", position=position):
        if job.dst.exists() and not overwrite:
            tqdm.write(f"{prefix}skip {job.src}: {job.dst} exists (use --overwrite)")
            report.skipped += 1
            continue
        try:
            if job.is_video:
                _restore_video_file(model, job, options, encode, quiet=quiet, prefix=prefix, position=position + 1)
            else:
                _restore_image_file(model, job, options, tiff, quiet=quiet, prefix=prefix, position=position + 1)
        except SwinIRError as err:
            report.failed.append(str(job.src))
            tqdm.write(f"{prefix}error: {err}", file=sys.stderr)
    return report


def _restore_image_file(model: Any, job: Job, options: RestoreOptions, tiff: TiffOptions, *, quiet: bool,
                        prefix: str, position: int) -> None:
    from .images import read_image, write_image

    with _tile_bar(quiet=quiet, desc=f"{prefix}{job.src.name}", position=position) as progress:
        if restore_tiff(model, job.src, job.dst, options, tiff, progress=progress,
                        notify=lambda line: tqdm.write(f"{prefix}{job.src}: {line}")):
            return
        if tiff.pages is not None or tiff.normalize != "full":
            raise SwinIRError(f"{job.src}: --pages and --normalize apply to TIFF files written as TIFF "
                              "(-o out.tif or --format tif)")
        image = read_image(job.src)
        result = restore_image(model, image, options, progress=progress)
    for notice in result.notices:
        tqdm.write(f"{prefix}{job.src}: {notice}")
    write_image(job.dst, result.pixels, alpha=result.alpha)


@contextlib.contextmanager
def _tile_bar(*, quiet: bool, desc: str, position: int) -> Iterator[Callable[[int, int], None]]:
    """A tile progress callback whose bar appears only once an image takes several model calls: an image
    restored whole shows no bar stuck at "0tile" (the file bar counts it)."""
    bars: list[tqdm] = []

    def progress(done: int, total: int) -> None:
        if quiet or total <= 1:
            return
        if not bars:
            bars.append(tqdm(total=total, unit="tile", leave=False, desc=desc, position=position))
        bar = bars[0]
        if bar.total != total:
            bar.total = total
            bar.refresh()
        bar.update(done - bar.n)

    try:
        yield progress
    finally:
        for bar in bars:
            bar.close()


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
