"""Video files through the network, frame by frame: ``swinir restore clip.mp4 -o out.mp4``.

PyAV (FFmpeg in its wheels, no system ffmpeg) decodes and encodes; every frame goes through
:func:`swinir.pipeline.restore_image` with the same options as an image. Decisions, so callers can rely on them:

* Streaming: packets are read, decoded, restored, encoded and written one at a time, so memory holds a frame
  (plus the encoder's lookahead) whatever the length of the video.
* Timing: every output frame keeps its input frame's timestamp and duration in the input stream's time base,
  so the frame rate, a variable frame rate and the duration are kept. Audio and subtitle packets are copied
  unchanged (remuxed, not re-encoded) with their timestamps; data streams, cover pictures and further video
  streams are dropped, with a notice.
* Codec: libx264 (libvpx-vp9 in .webm, which holds nothing else) at CRF 18, where x264 is visually close to
  lossless: restoration is about detail, and a lower-quality default would encode it away again. Lossy codecs
  get yuv420p, what every player and browser plays (yuv420p10le for inputs of more than 8 bits, where the codec
  has it); lossless codecs (ffv1, utvideo, png) get an RGB format, so the network's output is stored exactly.
* Odd sizes: 4:2:0 and 4:2:2 need an even width (4:2:0 an even height too). Such frames are padded by repeating
  their last column or row, rather than cropped (which would drop restored pixels) or stored as 4:4:4 (which
  many players do not play); a notice says so. ``--codec ffv1`` or ``--pix-fmt yuv444p`` keep the exact size.
* Colour: frames are converted to RGB with the input's matrix and range, back with the same, and the output is
  tagged with the input's colour tags, so colours do not shift.
* Atomic: the output is written to a temporary file in the target folder and renamed when complete
  (:func:`swinir.fileio.atomic_path`); an error or an interruption leaves no file.
* Damage: a file FFmpeg cannot open or decode, and a truncated one (a decoding error, or packets that end well
  before the duration the container declares), is refused with one line and leaves no output.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from torch import nn

from .errors import SwinIRError
from .fileio import atomic_path
from .pipeline import RestoreOptions, restore_image

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"})
_MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}
_FASTSTART = {"mp4", "mov"}  # index at the front, so players and browsers can start before the end arrives
DEFAULT_CODEC, WEBM_CODEC, DEFAULT_CRF = "libx264", "libvpx-vp9", 18
_TRUNCATION_SLACK = 0.5  # seconds the last packet may end before the declared duration (rounding, edits)
# Pixel format conversion is tiny next to the network; a thread pool set up for every frame costs more.
_SCALER_THREADS = 1
_MAX_HELD = 256  # packets waiting for their duration; beyond that an encoder is not mapping frames to packets
_DROPPED_CONTAINER_TAGS = {"encoder", "major_brand", "minor_version", "compatible_brands"}

FrameProgress = Callable[[int, "int | None"], None]  # (frames done, total or None when unknown)


@dataclass(frozen=True)
class EncodeOptions:
    """How restored frames are encoded (the ``--codec``, ``--crf`` and ``--pix-fmt`` flags).

    Attributes:
        codec: an FFmpeg encoder name (libx264, libx265, libvpx-vp9, libsvtav1, ffv1, ...); None: libx264,
            or libvpx-vp9 for .webm.
        crf: constant rate factor for encoders that have one (lower is better; 0 is lossless for x264/x265);
            None: 18 where the encoder has one.
        pix_fmt: the stored pixel format; None: chosen as the module docstring says.
    """

    codec: str | None = None
    crf: int | None = None
    pix_fmt: str | None = None


@dataclass
class VideoResult:
    """What :func:`restore_video` wrote: frames, stored size, codec, pixel format, copied streams, notices."""

    frames: int
    width: int
    height: int
    codec: str
    pix_fmt: str
    copied: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Encoding:
    """The resolved encoder settings of one output."""

    codec: str
    pix_fmt: str
    options: dict[str, str]
    pad: tuple[int, int]  # (rows, columns) added at the bottom / right for chroma subsampling


def is_video(path: str | os.PathLike[str]) -> bool:
    """True for the file names :func:`restore_video` reads and writes (by suffix)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def check_encode_options(encode: EncodeOptions, suffix: str = ".mp4") -> None:
    """Refuse a codec, CRF or pixel format that cannot work, once, before any video is decoded."""
    _resolve_encoding(encode, Path(f"check{suffix}"), False, 2, 2)


def restore_video(model: nn.Module, src: str | os.PathLike[str], dst: str | os.PathLike[str],
                  options: RestoreOptions | None = None, encode: EncodeOptions | None = None, *,
                  progress: FrameProgress | None = None, notify: Callable[[str], None] | None = None) -> VideoResult:
    """Restore every frame of the video ``src`` into ``dst`` (its suffix names the container).

    ``progress`` is called with (frames done, total) after every frame, total None when the container does not
    say; ``notify`` receives notices (padding, dropped streams, a channel conversion) as they arise.
    """
    name, target = os.fspath(src), Path(dst)
    options, encode = options or RestoreOptions(), encode or EncodeOptions()
    notices: list[str] = []

    def note(message: str) -> None:
        notices.append(message)
        if notify is not None:
            notify(message)

    muxer = _muxer(target)
    with _open_input(name) as source:
        video = _main_video_stream(source, name)
        copied = [s for s in source.streams if s.type in ("audio", "subtitle")]
        for stream in source.streams:
            if stream is not video and stream not in copied:
                note(f"dropped {stream.type} stream #{stream.index} ({_codec_name(stream)}): only the main video, "
                     "audio and subtitles are kept")
        context = video.codec_context
        deep = _bit_depth(context.format) > 8
        scale = int(model.upscale)
        height, width = context.height * scale, context.width * scale
        encoding = _resolve_encoding(encode, target, deep, height, width)
        if encoding.pad != (0, 0):
            note(f"{encoding.pix_fmt} needs even sizes: {width}x{height} frames are stored as "
                 f"{width + encoding.pad[1]}x{height + encoding.pad[0]} (last column/row repeated); "
                 "use --codec ffv1 or --pix-fmt yuv444p to keep the exact size")
        context.thread_type = "AUTO"
        total = video.frames or _estimated_frames(video, source)
        if progress is not None:
            progress(0, total)
        with atomic_path(target) as temporary, _open_output(temporary, target, muxer) as sink:
            sink.metadata.update({k: v for k, v in source.metadata.items() if k not in _DROPPED_CONTAINER_TAGS})
            encoder = _add_video_stream(sink, video, encoding, height, width, target)
            outputs = {s.index: _add_copied_stream(sink, s, target) for s in copied}
            _start(sink, target)
            done, last_end, channel_notice = 0, 0.0, False
            timeline = _Timeline(video)
            for item in _demuxed(source, video, copied, name):
                if isinstance(item, av.Packet):
                    last_end = max(last_end, _end_time(item))
                    item.stream = outputs[item.stream_index]
                    _guarded_write(target, lambda p=item: sink.mux(p))
                    continue
                if (item.height, item.width) != (context.height, context.width):
                    raise SwinIRError(f"{name}: the frame size changes from {context.width}x{context.height} to "
                                      f"{item.width}x{item.height} at frame {done + 1}; split the video there")
                if done == 0 and item.rotation:
                    note(f"the display rotation ({item.rotation} degrees) is not carried over; rotate the output "
                         "in the player or re-tag it")
                restored = restore_image(model, _frame_pixels(item, deep), options)
                if restored.notices and not channel_notice:
                    channel_notice = True
                    for message in restored.notices:
                        note(message)
                frame = _encoder_frame(restored.pixels, item, encoding, context)
                timeline.stamp(frame, item.duration)
                last_end = max(last_end, float((frame.pts + (item.duration or 0)) * frame.time_base))
                _guarded_write(target, lambda f=frame: sink.mux(timeline.ready(encoder.encode(f))))
                done += 1
                if progress is not None:
                    progress(done, total)
            if done == 0:
                raise SwinIRError(f"{name}: the video stream holds no decodable frame; re-export or re-download it")
            _check_complete(source, name, last_end, bool(video.frames))
            timeline.finish()
            _guarded_write(target, lambda: sink.mux(timeline.ready(encoder.encode(None), drain=True)))
        kept = [f"{s.type} #{s.index} ({_codec_name(s)})" for s in copied]  # streams die with their container
    return VideoResult(done, width + encoding.pad[1], height + encoding.pad[0], encoding.codec, encoding.pix_fmt,
                       kept, notices)


# ----------------------------------------------------------------------------------------------- reading


def _open_input(name: str) -> av.container.InputContainer:
    """Open ``name`` for reading; anything FFmpeg cannot open is a one-line SwinIRError."""
    if not os.path.isfile(name):
        raise SwinIRError(f"{name}: file not found; check the path (relative to {os.getcwd()})")
    if os.path.getsize(name) == 0:
        raise SwinIRError(f"{name}: the file is empty (0 bytes); re-export or re-download it")
    try:
        return av.open(name, "r")
    except PermissionError as err:
        raise SwinIRError(f"{name}: permission denied; make the file readable (e.g. chmod a+r)") from err
    except (av.FFmpegError, OSError, ValueError) as err:
        raise SwinIRError(f"{name}: FFmpeg cannot read this file as a video ({_one_line(err)}: it is damaged, "
                          "truncated or not a video); re-export or re-download it") from err


def _main_video_stream(source: av.container.InputContainer, name: str) -> av.VideoStream:
    """The first video stream that is not a cover picture."""
    for stream in source.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            if stream.codec_context is None or not stream.codec_context.width:
                raise SwinIRError(f"{name}: FFmpeg has no decoder for its {_codec_name(stream)} video; convert it "
                                  "to H.264 first")
            return stream
    if not source.streams.audio:  # e.g. an MP4 cut before its index (written at its end), or not a video at all
        raise SwinIRError(f"{name}: FFmpeg finds no video or audio in the file (it is damaged, truncated or not a "
                          "video); re-export or re-download it")
    raise SwinIRError(f"{name}: the file has no video stream; give a video or an image file")


def _demuxed(source: av.container.InputContainer, video: av.VideoStream, copied: list[av.stream.Stream],
             name: str) -> Iterator[av.VideoFrame | av.Packet]:
    """Decoded frames of ``video`` and the packets of ``copied``, in file order; read errors become one line."""
    try:
        for packet in source.demux(video, *copied):
            if packet.stream_index == video.index:
                yield from packet.decode()  # the empty packet at the end flushes the decoder
            elif packet.dts is not None or packet.pts is not None:
                yield packet
    except (av.FFmpegError, OSError) as err:
        raise SwinIRError(f"{name}: the video is damaged or truncated (decoding failed: {_one_line(err)}); "
                          "re-export or re-download it") from err


def _check_complete(source: av.container.InputContainer, name: str, last_end: float, indexed: bool) -> None:
    """Refuse a file whose packets end well before the duration its header declares (a truncated Matroska
    or WebM decodes without an error). Indexed containers (MP4, MOV) fail while decoding instead."""
    if indexed or source.duration is None:
        return
    start = (source.start_time or 0) / av.time_base
    declared = source.duration / av.time_base
    if last_end - start < declared - _TRUNCATION_SLACK:
        raise SwinIRError(f"{name}: the file is truncated (its streams end at {last_end - start:.2f} s of "
                          f"{declared:.2f} s); re-export or re-download it")


def _estimated_frames(video: av.VideoStream, source: av.container.InputContainer) -> int | None:
    """Frame count from the duration and the average rate, where the container has no frame count."""
    rate = video.average_rate or video.guessed_rate
    if video.duration is not None and video.time_base is not None:
        seconds = float(video.duration * video.time_base)
    elif source.duration is not None:
        seconds = source.duration / av.time_base
    else:
        return None
    return round(seconds * float(rate)) if rate else None


def _frame_pixels(frame: av.VideoFrame, deep: bool) -> np.ndarray:
    """HxWx3 RGB pixels, uint16 for inputs of more than 8 bits, converted with the frame's matrix and range."""
    return frame.to_ndarray(format="rgb48le" if deep else "rgb24", src_color_range=frame.color_range,
                            threads=_SCALER_THREADS)


def _end_time(packet: av.Packet) -> float:
    stamp = packet.pts if packet.pts is not None else packet.dts
    return float((stamp + (packet.duration or 0)) * packet.time_base) if packet.time_base else 0.0


# ----------------------------------------------------------------------------------------------- writing


def _muxer(target: Path) -> str:
    muxer = _MUXERS.get(target.suffix.lower())
    if muxer is None:
        raise SwinIRError(f"{target}: unknown video extension ('{target.suffix}'); use one of "
                          f"{', '.join(sorted(_MUXERS))}")
    return muxer


def _open_output(temporary: Path, target: Path, muxer: str) -> av.container.OutputContainer:
    options = {"movflags": "+faststart"} if muxer in _FASTSTART else {}
    try:
        return av.open(str(temporary), "w", format=muxer, options=options)
    except (av.FFmpegError, OSError) as err:
        raise SwinIRError(f"{target}: cannot create the video ({_one_line(err)}); check the folder") from err


def _resolve_encoding(encode: EncodeOptions, target: Path, deep: bool, height: int, width: int) -> _Encoding:
    """Codec, pixel format, encoder options and padding for one output (see the module docstring)."""
    name = encode.codec or (WEBM_CODEC if target.suffix.lower() == ".webm" else DEFAULT_CODEC)
    try:
        codec = av.Codec(name, "w")
    except (av.FFmpegError, ValueError) as err:
        raise SwinIRError(f"--codec {name}: this FFmpeg has no such encoder; try libx264, libx265, libvpx-vp9, "
                          "libsvtav1 or ffv1") from err
    if codec.type != "video":
        raise SwinIRError(f"--codec {name} is an {codec.type} encoder; give a video encoder such as libx264")
    formats = [f.name for f in codec.video_formats or ()]
    pix_fmt = encode.pix_fmt or _default_pix_fmt(codec, formats, deep)
    if formats and pix_fmt not in formats:
        raise SwinIRError(f"--pix-fmt {pix_fmt}: {name} does not store it; use one of {', '.join(formats)}")
    has_crf = "crf" in {o.name for o in av.CodecContext.create(name, "w").supported_options.private}
    if encode.crf is not None and not has_crf:
        raise SwinIRError(f"--crf does not apply to {name}, which has no constant rate factor (drop --crf)")
    options = {"crf": str(DEFAULT_CRF if encode.crf is None else encode.crf)} if has_crf else {}
    if name == WEBM_CODEC:
        options["b"] = "0"  # libvpx: constant quality, not a bit rate capped by the CRF
    try:
        layout = av.VideoFormat(pix_fmt)
    except (av.FFmpegError, ValueError) as err:
        raise SwinIRError(f"--pix-fmt {pix_fmt}: not a pixel format FFmpeg knows (e.g. yuv420p, yuv444p)") from err
    step_h, step_w = _subsampling(layout)
    return _Encoding(name, pix_fmt, options, (-height % step_h, -width % step_w))


def _default_pix_fmt(codec: av.Codec, formats: list[str], deep: bool) -> str:
    """yuv420p (or yuv420p10le for deep inputs) for lossy codecs, an RGB format for lossless ones."""
    if codec.lossy or not codec.lossless:
        for wanted in (("yuv420p10le", "yuv420p") if deep else ("yuv420p",)):
            if wanted in formats:
                return wanted
    else:
        depth = 16 if deep else 8
        for candidate in formats:
            layout = av.VideoFormat(candidate)
            if layout.is_rgb and not _has_alpha(layout) and _bit_depth(layout) == depth:
                return candidate
        for candidate in formats:
            layout = av.VideoFormat(candidate)
            if layout.is_rgb and not _has_alpha(layout):
                return candidate
    return formats[0] if formats else "yuv420p"


def _subsampling(layout: av.VideoFormat) -> tuple[int, int]:
    """(vertical, horizontal) chroma subsampling factors of a pixel format: 2, 2 for yuv420p."""
    probe = 1024
    return probe // max(1, layout.chroma_height(probe)), probe // max(1, layout.chroma_width(probe))


def _add_video_stream(sink: av.container.OutputContainer, video: av.VideoStream, encoding: _Encoding,
                      height: int, width: int, target: Path) -> av.VideoStream:
    """The output video stream: the input's time base, rate, aspect and colour tags, the chosen encoder."""
    rate = video.average_rate or video.guessed_rate or Fraction(25)
    try:
        stream = sink.add_stream(encoding.codec, rate=rate)
    except (av.FFmpegError, ValueError) as err:
        raise SwinIRError(f"{target}: the {sink.format.name} container cannot hold {encoding.codec} video "
                          f"({_one_line(err)}); write .mkv instead, which holds any codec") from err
    stream.width, stream.height = width + encoding.pad[1], height + encoding.pad[0]
    stream.pix_fmt = encoding.pix_fmt
    stream.time_base = video.time_base
    out, src = stream.codec_context, video.codec_context
    out.time_base = video.time_base
    out.options = dict(encoding.options)
    out.thread_count = torch.get_num_threads()
    if src.sample_aspect_ratio:
        out.sample_aspect_ratio = src.sample_aspect_ratio
    if not av.VideoFormat(encoding.pix_fmt).is_rgb:
        out.colorspace, out.color_range = src.colorspace, src.color_range
    out.color_primaries, out.color_trc = src.color_primaries, src.color_trc
    stream.metadata.update({k: v for k, v in video.metadata.items() if k.lower() in ("language", "title")})
    return stream


def _add_copied_stream(sink: av.container.OutputContainer, stream: av.stream.Stream, target: Path) -> av.stream.Stream:
    """An output stream that takes ``stream``'s packets unchanged, with its tags and flags."""
    try:
        out = sink.add_stream_from_template(stream)
    except (av.FFmpegError, ValueError) as err:
        raise SwinIRError(f"{target}: the {sink.format.name} container cannot hold the {_codec_name(stream)} "
                          f"{stream.type} of the input; write .mkv instead, which holds any stream") from err
    out.metadata.update(stream.metadata)
    out.disposition = int(stream.disposition)
    return out


def _start(sink: av.container.OutputContainer, target: Path) -> None:
    """Write the header now, so that a stream the container refuses fails before any frame is restored."""
    try:
        sink.start_encoding()
    except (av.FFmpegError, ValueError) as err:
        raise SwinIRError(f"{target}: cannot start the {sink.format.name} file ({_one_line(err)}); check "
                          "--codec/--pix-fmt, or write .mkv, which holds any stream") from err


def _encoder_frame(pixels: np.ndarray, source: av.VideoFrame, encoding: _Encoding,
                   context: av.VideoCodecContext) -> av.VideoFrame:
    """A restored frame in the encoder's pixel format, padded as planned, with ``source``'s timing."""
    rows, columns = encoding.pad
    if rows or columns:
        pixels = np.pad(pixels, ((0, rows), (0, columns), *([(0, 0)] if pixels.ndim == 3 else [])), mode="edge")
    layout = {(2, np.uint8): "gray", (3, np.uint8): "rgb24", (2, np.uint16): "gray16le", (3, np.uint16): "rgb48le"}
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format=layout[pixels.ndim, pixels.dtype.type])
    if av.VideoFormat(encoding.pix_fmt).is_rgb:
        frame = frame.reformat(format=encoding.pix_fmt, threads=_SCALER_THREADS)
    else:  # the same matrix and range the input was decoded with, so colours do not shift
        frame = frame.reformat(format=encoding.pix_fmt, dst_colorspace=context.colorspace,
                               dst_color_range=context.color_range, threads=_SCALER_THREADS)
    frame.pts, frame.time_base = source.pts, source.time_base
    return frame


class _Timeline:
    """Output timestamps and durations, and the encoded packets that wait for their duration.

    A frame's presentation duration is the gap to the next frame's timestamp (the last frame's: up to the end
    of the input's video stream), which decides the length of the output. Decoders cannot be trusted with it
    (they take it from packets in decoding order, wrong with B-frames) and encoders leave packet durations
    unset, so each packet is held until the next frame arrives and its duration is known. Timestamps that are
    missing or do not advance (broken files) are placed one frame interval after the previous one.
    """

    def __init__(self, video: av.VideoStream) -> None:
        rate = video.average_rate or video.guessed_rate
        self.step = max(1, round(1 / (rate * video.time_base))) if rate and video.time_base else 1
        known = video.duration is not None and video.start_time is not None
        self.end = video.start_time + video.duration if known else None
        self.last: int | None = None
        self.last_reported = 0
        self.durations: dict[int, int] = {}
        self.held: deque[av.Packet] = deque()

    def stamp(self, frame: av.VideoFrame, reported_duration: int | None) -> None:
        """Give ``frame`` a strictly increasing timestamp; the previous frame's duration is now known."""
        pts = frame.pts
        if pts is None or (self.last is not None and pts <= self.last):
            pts = 0 if self.last is None else self.last + self.step
        frame.pts = pts
        if self.last is not None:
            self.step = self.durations[self.last] = pts - self.last
        self.last, self.last_reported = pts, reported_duration or 0

    def finish(self) -> None:
        """The last frame lasts until the input's video stream ends (else as long as it says, or the rate)."""
        if self.last is not None:
            ends_later = self.end is not None and self.end > self.last
            self.durations[self.last] = self.end - self.last if ends_later else (self.last_reported or self.step)

    def ready(self, packets: list[av.Packet], *, drain: bool = False) -> list[av.Packet]:
        """The held packets (in encoder order) whose duration is known, with it set; all of them to drain."""
        self.held.extend(packets)
        out = []
        while self.held and (drain or self.held[0].pts is None or self.held[0].pts in self.durations
                             or len(self.held) > _MAX_HELD):
            packet = self.held.popleft()
            if packet.pts is not None and packet.pts in self.durations:
                packet.duration = self.durations.pop(packet.pts)
            out.append(packet)
        return out


def _guarded_write(target: Path, write: Callable[[], object]) -> None:
    """Encode or mux; FFmpeg's refusals become one line naming the output."""
    try:
        write()
    except (av.FFmpegError, ValueError) as err:
        raise SwinIRError(f"{target}: encoding or writing failed ({_one_line(err)}); check --codec/--pix-fmt "
                          "and the free space") from err


# ----------------------------------------------------------------------------------------------- helpers


def _bit_depth(layout: av.VideoFormat | None) -> int:
    return max((c.bits for c in layout.components), default=8) if layout is not None else 8


def _has_alpha(layout: av.VideoFormat) -> bool:
    return len(layout.components) in (2, 4)


def _codec_name(stream: av.stream.Stream) -> str:
    context = stream.codec_context
    return context.name if context is not None else "unknown codec"


def _one_line(err: BaseException) -> str:
    """FFmpeg's reason without its error number and file name (the message names the file already)."""
    text = getattr(err, "strerror", None) if isinstance(err, av.FFmpegError) else None
    return " ".join(str(text or err).split()) or type(err).__name__
