"""Media I/O on top of PyAV: probe, read and write video, audio and images.

Conventions used throughout:

* video frames are ``uint8`` RGB arrays of shape ``(H, W, 3)`` (a clip: ``(T, H, W, 3)``);
* audio is ``float32`` mono in ``[-1, 1]`` of shape ``(N,)``, at :data:`SAMPLE_RATE` Hz unless
  a function says otherwise;
* times are seconds, rates are Hz / frames per second.

Every problem with an *input* file raises :class:`~facecue.errors.InputError` naming the file;
every problem with an *output* path raises :class:`~facecue.errors.OutputError`, before any
encoding starts where it can be detected up front. Outputs are written atomically: to a hidden
temporary file in the target's folder, renamed over the target only on success.
"""

from __future__ import annotations

import contextlib
import glob
import math
import os
import secrets
import wave
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Union

import numpy as np

try:
    import av
except ImportError:  # media decoding needs PyAV; atomic_path & co. (used by the trainer) do not

    class _MissingPyAV:
        FFmpegError = type("FFmpegError", (Exception,), {})  # so `except av.FFmpegError` stays valid

        def __getattr__(self, name):
            raise ImportError("PyAV is not installed: reading and writing audio/video needs it (pip install av)")

    av = _MissingPyAV()

from .constants import SAMPLE_RATE
from .errors import InputError, OutputError

__all__ = [
    "SUPPORTED_VIDEO",
    "SUPPORTED_AUDIO",
    "SUPPORTED_IMAGE",
    "VIDEO_OUTPUT_SUFFIXES",
    "VideoInfo",
    "Video",
    "probe_video",
    "iter_video_frames",
    "read_video",
    "read_audio",
    "audio_duration",
    "AudioTooLong",
    "image_size",
    "MAX_IMAGE_PIXELS",
    "read_image",
    "write_wav",
    "check_output_path",
    "VideoWriter",
    "write_video",
]

# .flv: Flash video, as datasets of real speech such as CREMA-D ship it (PyAV reads it)
SUPPORTED_VIDEO = (".mp4", ".mov", ".avi", ".webm", ".mkv", ".flv")
SUPPORTED_AUDIO = (".wav", ".mp3", ".m4a", ".flac", ".ogg", ".aac")
SUPPORTED_IMAGE = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
#: Containers :class:`VideoWriter` can hold H.264 + AAC in.
VIDEO_OUTPUT_SUFFIXES = (".mp4", ".mov", ".mkv")

PathLike = Union[str, "os.PathLike[str]"]

_AAC_FRAME = 1024  # samples per AAC frame; also the chunk size audio is encoded in
_AAC_FALLBACK_RATE = 48_000  # Hz, used when AAC rejects the requested sample rate
_ADTS_PRIMING = 1024  # samples of encoder delay of raw ADTS .aac (ffmpeg/FDK AAC-LC)
# ffmpeg's AAC coder for the muxed speech: "fast" in place of its default "twoloop" takes a third
# to a quarter of the CPU (60 s of 16 kHz speech: 0.2 s vs 0.7-1.1 s, in the encoding process on
# the critical path) at a log-spectral distance to the input of 0.56 dB (twoloop 0.38 dB; both
# far under the ~1 dB where differences start to be heard), SNR 33.5 dB (twoloop 38.4 dB)
AAC_CODER = "fast"
# libx264 settings of every written video: veryfast at crf 18 comes within 0.5 dB (PSNR against
# the rendered frames) of medium at crf 20 for a third of the CPU time and a similar file size
# (benchmarks/bench_encoder.py, BENCHMARKS.md)
VIDEO_CRF = 18
VIDEO_PRESET = "veryfast"
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
_NTSC_TOLERANCE = 1e-3  # fps; 29.97 -> 30000/1001 when within this of k*1000/1001
_EXACT_END_FORMATS = ("mov", "mp4", "m4a")  # demuxers whose stream duration is exact (edit lists)


# ------------------------------------------------------------------------------------------
# data classes


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` learns about a video file without decoding all of it.

    Attributes
    ----------
    fps : float
        Frames per second (the stream's average frame rate).
    n_frames : int
        Number of video frames (from the container, or counted by demuxing when unknown).
    width, height : int
        Frame size in pixels *as displayed*, i.e. after applying rotation metadata.
    duration_s : float
        ``n_frames / fps``, seconds.
    has_audio : bool
        Whether the container has an audio stream.
    audio_sample_rate : int or None
        Native sample rate (Hz) of the first audio stream, ``None`` without audio.
    """

    fps: float
    n_frames: int
    width: int
    height: int
    duration_s: float
    has_audio: bool
    audio_sample_rate: int | None


@dataclass(eq=False)
class Video:
    """A decoded clip.

    Attributes
    ----------
    frames : np.ndarray
        ``(T, H, W, 3)`` uint8 RGB.
    fps : float
        Frames per second of ``frames``.
    audio : np.ndarray or None
        ``(N,)`` float32 mono in [-1, 1] at :data:`SAMPLE_RATE` Hz, ``None`` if not read or
        the file has no audio track.
    """

    frames: np.ndarray
    fps: float
    audio: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        """Number of frames ``T``."""
        return int(self.frames.shape[0])

    @property
    def duration_s(self) -> float:
        """``T / fps``, seconds."""
        return self.n_frames / self.fps


# ------------------------------------------------------------------------------------------
# input checks


def _kind_of(suffix: str) -> str | None:
    if suffix in SUPPORTED_VIDEO:
        return "video"
    if suffix in SUPPORTED_AUDIO:
        return "audio"
    if suffix in SUPPORTED_IMAGE:
        return "image"
    return None


def _check_input(path: PathLike, kinds: Sequence[str]) -> Path:
    """Return ``path`` as a Path if it is an existing, non-empty file of one of ``kinds``.

    ``kinds`` is a subset of ``("video", "audio", "image")``; raises :class:`InputError`.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(p, "file not found")
    if p.is_dir():
        raise InputError(p, "is a folder, not a file")
    if not os.access(p, os.R_OK):
        raise InputError(p, "file is not readable (permission denied)")
    if p.stat().st_size == 0:
        raise InputError(p, "file is empty (0 bytes)")
    suffix = p.suffix.lower()
    kind = _kind_of(suffix)
    if kind is None or kind not in kinds:
        wanted = " or ".join(kinds)
        groups = {"video": SUPPORTED_VIDEO, "audio": SUPPORTED_AUDIO, "image": SUPPORTED_IMAGE}
        supported = [s for k in kinds for s in groups[k]]
        if kind is not None:
            problem = f"is an {kind} file, expected {wanted}"
        else:
            problem = f"unsupported file type {suffix or '(no extension)'!r} for {wanted}"
        raise InputError(p, f"{problem}; supported: {', '.join(supported)}")
    return p


def _open_input(p: Path) -> Any:
    """Open a media container for reading, turning any failure into :class:`InputError`."""
    try:
        return av.open(str(p), mode="r", metadata_errors="replace")
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(p, f"cannot be read as media, corrupt or not a media file ({e})") from e


def _decode_error(p: Path, e: Exception) -> InputError:
    return InputError(p, f"corrupt media data, decoding failed ({e})")


def _stream_fps(stream: Any) -> Fraction | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return Fraction(rate)
    return None


def _fps_fraction(fps: float | Fraction) -> Fraction:
    """Exact frame rate for ``fps``: integers stay integers, NTSC rates (29.97, 23.976, 59.94...)
    become ``k*1000/1001``, anything else ``Fraction(fps).limit_denominator(1001)``."""
    if isinstance(fps, Fraction):
        rate = fps
    else:
        f = float(fps)
        if not math.isfinite(f) or f <= 0:
            raise ValueError(f"fps must be a positive finite number, got {fps!r}")
        if abs(f - round(f)) < 1e-9:
            return Fraction(round(f))
        k = round(f * 1.001)
        ntsc = Fraction(k * 1000, 1001)
        if k > 0 and abs(f - float(ntsc)) < _NTSC_TOLERANCE:
            return ntsc
        rate = Fraction(f).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    return rate


def _round_half_up(x: Fraction | float) -> int:
    return math.floor(x + Fraction(1, 2)) if isinstance(x, Fraction) else math.floor(x + 0.5)


def _frame_rgb(frame: Any) -> np.ndarray:
    """Decoded video frame -> (H, W, 3) uint8 RGB, rotated as its display matrix says."""
    rgb = frame.to_ndarray(format="rgb24")
    try:
        rotation = int(frame.rotation or 0)
    except (AttributeError, TypeError, ValueError):  # pragma: no cover - older PyAV
        rotation = 0
    k = _round_half_up(rotation / 90) % 4
    if k:
        # PyAV: "the angle by which the transformation rotates the frame counterclockwise";
        # np.rot90 rotates counterclockwise too (matches ffmpeg's autorotate).
        rgb = np.ascontiguousarray(np.rot90(rgb, k))
    return rgb


# ------------------------------------------------------------------------------------------
# video reading


def probe_video(path: PathLike) -> VideoInfo:
    """Read a video's frame rate, frame count, size and audio presence.

    Parameters
    ----------
    path : str or PathLike
        A video file with one of :data:`SUPPORTED_VIDEO`'s extensions.

    Returns
    -------
    VideoInfo
        ``n_frames`` is the container's frame count, or, where the container does not store
        one (Matroska/WebM), counted exactly by demuxing the video packets (no decoding).

    Raises
    ------
    InputError
        Missing, empty, unsupported or corrupt file; no video stream; no frames.
    """
    return _probe(_check_input(path, ("video",)))[0]


def _probe(p: Path) -> tuple[VideoInfo, Fraction]:
    """:func:`probe_video` of a checked path, plus the exact frame rate."""
    with _open_input(p) as container:
        if not container.streams.video:
            raise InputError(p, "has no video stream")
        stream = container.streams.video[0]
        fps = _stream_fps(stream)
        if fps is None:
            raise InputError(p, "video stream has no usable frame rate")
        n_frames = int(stream.frames or 0)
        has_audio = bool(container.streams.audio)
        audio_rate = int(container.streams.audio[0].rate) if has_audio else None
        try:
            first = next(container.decode(stream), None)
        except av.FFmpegError as e:
            raise _decode_error(p, e) from e
        if first is None:
            raise InputError(p, "video stream has no frames")
        height, width = _frame_rgb(first).shape[:2]
    if n_frames <= 0:
        with _open_input(p) as container:
            stream = container.streams.video[0]
            try:
                n_frames = sum(1 for pkt in container.demux(stream) if pkt.size > 0)
            except av.FFmpegError as e:
                raise _decode_error(p, e) from e
    info = VideoInfo(
        fps=float(fps),
        n_frames=n_frames,
        width=int(width),
        height=int(height),
        duration_s=float(n_frames / fps),
        has_audio=has_audio,
        audio_sample_rate=audio_rate,
    )
    return info, fps


def _decoded_frames(p: Path) -> Iterator[tuple[Fraction | None, Any]]:
    """Yield ``(presentation time in s relative to the first frame or None, av frame)``."""
    with _open_input(p) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        time_base = stream.time_base
        origin: int | None = None
        try:
            for frame in container.decode(stream):
                pts = frame.pts
                if pts is None or time_base is None:
                    yield None, frame
                    continue
                if origin is None:
                    origin = pts
                yield Fraction(pts - origin) * time_base, frame
        except av.FFmpegError as e:
            raise _decode_error(p, e) from e


def _iter_frames(
    p: Path, info: VideoInfo, source: Fraction, fps: float | Fraction | None
) -> Iterator[np.ndarray]:
    target = None if fps is None else _fps_fraction(fps)
    if target is None or abs(target - source) < Fraction(1, 10**6):
        produced = 0
        for _, frame in _decoded_frames(p):
            produced += 1
            yield _frame_rgb(frame)
        if produced == 0:
            raise InputError(p, "video stream has no frames")
        return

    n_out = _round_half_up(Fraction(info.n_frames) * target / source)
    frames = _decoded_frames(p)
    index = 0

    def timed(item: tuple[Fraction | None, Any]) -> tuple[Fraction, Any]:
        nonlocal index
        t, frame = item
        index += 1
        return (Fraction(index - 1) / source if t is None else t), frame

    first = next(frames, None)
    if first is None:
        raise InputError(p, "video stream has no frames")
    cur_t, cur = timed(first)
    nxt = next(frames, None)
    nxt_timed = timed(nxt) if nxt is not None else None
    cur_rgb: np.ndarray | None = None
    for j in range(n_out):
        t_j = Fraction(j) / target
        # Nearest frame in presentation time; ties keep the earlier frame.
        while nxt_timed is not None and nxt_timed[0] - t_j < t_j - cur_t:
            cur_t, cur = nxt_timed
            cur_rgb = None
            nxt = next(frames, None)
            nxt_timed = timed(nxt) if nxt is not None else None
        if cur_rgb is None:
            cur_rgb = _frame_rgb(cur)
        yield cur_rgb.copy() if j + 1 < n_out else cur_rgb
    frames.close()


def iter_video_frames(path: PathLike, fps: float | None = None) -> Iterator[np.ndarray]:
    """Stream a video's frames one at a time (bounded memory).

    Parameters
    ----------
    path : str or PathLike
        A video file (:data:`SUPPORTED_VIDEO`).
    fps : float, optional
        Output frame rate. ``None`` (default) or the source rate yields every decoded frame.
        Otherwise frames are resampled by nearest-frame selection on presentation time:
        output frame ``j`` is the source frame shown closest to ``j / fps`` s, and a clip of
        ``n`` source frames at ``F`` fps (duration ``D = n / F``) yields ``round(D * fps)``
        frames.

    Yields
    ------
    np.ndarray
        ``(H, W, 3)`` uint8 RGB, rotation metadata applied.

    Raises
    ------
    InputError
        As :func:`probe_video` (raised at call time), or corrupt data met while decoding.
    """
    p = _check_input(path, ("video",))
    info, source = _probe(p)  # validate eagerly, not at the first next()
    if fps is not None:
        _fps_fraction(fps)  # ValueError now rather than mid-iteration
    return _iter_frames(p, info, source, fps)


def read_video(path: PathLike, fps: float | None = None, with_audio: bool = True) -> Video:
    """Decode a whole video (and its audio track) into memory.

    Parameters
    ----------
    path : str or PathLike
        A video file (:data:`SUPPORTED_VIDEO`).
    fps : float, optional
        Resample to this frame rate (see :func:`iter_video_frames`); default: source rate.
    with_audio : bool
        Also decode the audio track (mono, :data:`SAMPLE_RATE` Hz) if there is one.

    Returns
    -------
    Video
        ``frames`` ``(T, H, W, 3)`` uint8 RGB with ``T = round(duration_s * fps)`` (every frame
        when ``fps`` is None), ``fps`` the output rate, ``audio`` ``(N,)`` float32 or None.
    """
    p = _check_input(path, ("video",))
    info, source = _probe(p)
    out_fps = info.fps if fps is None else float(_fps_fraction(fps))
    expected = (
        info.n_frames
        if fps is None
        else _round_half_up(Fraction(info.n_frames) * _fps_fraction(fps) / source)
    )
    frames = np.empty((max(expected, 1), info.height, info.width, 3), dtype=np.uint8)
    extra: list[np.ndarray] = []
    n = 0
    for frame in _iter_frames(p, info, source, fps):
        if frame.shape != frames.shape[1:]:
            raise InputError(p, f"frame size changes mid-stream ({frame.shape[1]}x{frame.shape[0]})")
        if n < frames.shape[0]:
            frames[n] = frame
        else:
            extra.append(frame)
        n += 1
    frames = frames[: min(n, frames.shape[0])]
    if extra:
        frames = np.concatenate([frames, np.stack(extra)])
    audio = read_audio(p) if (with_audio and info.has_audio) else None
    return Video(frames=frames, fps=out_fps, audio=audio)


# ------------------------------------------------------------------------------------------
# audio reading


class AudioTooLong(InputError):
    """The audio is longer than the limit it was read with (decoding stopped there)."""

    def __init__(self, path: Path, limit: float, duration: float | None):
        self.limit, self.duration = limit, duration
        length = f"{duration:.0f} s long" if duration is not None else "longer than that"
        super().__init__(path, f"audio is {length}, over the {limit:g} s limit")


def _decode_audio(p: Path, sample_rate: int | None, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Decode, downmix (channel mean) and resample the first audio stream of ``p``.

    With ``max_seconds``, decoding stops (:class:`AudioTooLong`) as soon as more than that has
    been decoded, so memory stays bounded by the limit whatever the file's header says.

    Returns ``(audio, rate)``: float32 mono ``(N,)`` and its rate (``sample_rate`` or the
    native one when None). Samples are placed on the timeline of the file: encoder priming
    before the stream's start (or before the video's start in a video container) is dropped,
    a late start is zero-padded, and where the demuxer knows the exact end (MP4/MOV edit
    lists) padding after it is cut.
    """
    with _open_input(p) as container:
        if not container.streams.audio:
            raise InputError(p, "has no audio track")
        stream = container.streams.audio[0]
        native_rate = int(stream.rate or stream.codec_context.sample_rate or 0)
        rate = int(sample_rate) if sample_rate is not None else native_rate
        if rate <= 0:
            raise InputError(p, "audio stream has no usable sample rate")
        time_base = stream.time_base
        if container.streams.video and container.streams.video[0].start_time is not None:
            video = container.streams.video[0]
            ref: Fraction | None = Fraction(video.start_time) * video.time_base
        elif stream.start_time is not None and time_base is not None:
            ref = Fraction(stream.start_time) * time_base
        else:
            ref = None
        resampler = av.AudioResampler(format="fltp", rate=rate)
        chunks: list[np.ndarray] = []
        first_t: Fraction | None = None
        # decoded samples may include up to a few hundred ms of priming that is trimmed below
        max_samples = None if max_seconds is None else int((max_seconds + 1.0) * rate)
        n_samples = 0

        def take(frames: Iterable[Any]) -> None:
            nonlocal n_samples
            for out in frames:
                arr = out.to_ndarray()
                chunks.append(arr.mean(axis=0, dtype=np.float32) if arr.shape[0] > 1 else arr[0])
                n_samples += chunks[-1].shape[0]

        try:
            for frame in container.decode(stream):
                if first_t is None and frame.pts is not None and time_base is not None:
                    first_t = Fraction(frame.pts) * time_base
                take(resampler.resample(frame))
                if max_samples is not None and n_samples > max_samples:
                    raise AudioTooLong(p, float(max_seconds), _header_duration(container))
            take(resampler.resample(None))
        except av.FFmpegError as e:
            raise _decode_error(p, e) from e
        audio = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)

        if ref is None:
            ref = first_t
        if first_t is not None and ref is not None:
            lead = _round_half_up((first_t - ref) * rate)
            if lead > 0:
                audio = np.concatenate([np.zeros(lead, np.float32), audio])
            elif lead < 0:
                audio = audio[-lead:]
        fmt = container.format.name.split(",")
        if "aac" in fmt and native_rate > 0:  # raw ADTS: no priming info in the stream
            audio = audio[_round_half_up(Fraction(_ADTS_PRIMING * rate, native_rate)) :]
        if (
            any(f in _EXACT_END_FORMATS for f in fmt)
            and stream.duration
            and time_base is not None
            and ref is not None
        ):
            end = Fraction(stream.start_time or 0) * time_base + Fraction(stream.duration) * time_base
            n_end = _round_half_up((end - ref) * rate)
            if 0 < n_end < audio.shape[0]:
                audio = audio[:n_end]
    if max_seconds is not None and audio.shape[0] > max_seconds * rate:
        raise AudioTooLong(p, float(max_seconds), audio.shape[0] / rate)
    np.clip(audio, -1.0, 1.0, out=audio)
    return np.ascontiguousarray(audio, dtype=np.float32), rate


def _header_duration(container: Any) -> float | None:
    """Duration in seconds of the first audio stream as the container's header states it (no
    decoding; approximate, and None when the header does not say)."""
    stream = container.streams.audio[0] if container.streams.audio else None
    if stream is not None and stream.duration and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def read_audio(path: PathLike, sample_rate: int = SAMPLE_RATE, *, max_seconds: float | None = None) -> np.ndarray:
    """Decode an audio file, or the audio track of a video, to mono float32.

    Parameters
    ----------
    path : str or PathLike
        An audio file (:data:`SUPPORTED_AUDIO`) or a video file (:data:`SUPPORTED_VIDEO`).
    sample_rate : int
        Output rate in Hz (default :data:`SAMPLE_RATE`).
    max_seconds : float, optional
        Refuse longer audio (:class:`AudioTooLong`, an :class:`InputError`): decoding stops at the
        limit, so a long file never fills memory.

    Returns
    -------
    np.ndarray
        ``(N,)`` float32 in [-1, 1]; channels are averaged, then resampled with libswresample.
        Encoder priming/padding is trimmed: a WAV/FLAC round trip is sample-exact, MP4/M4A
        AAC is within a few ms of the encoded length.

    Raises
    ------
    InputError
        Missing/empty/unsupported/corrupt file, an image, or no audio track.
    """
    if int(sample_rate) <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate!r}")
    p = _check_input(path, ("audio", "video"))
    audio, _ = _decode_audio(p, int(sample_rate), max_seconds)
    return audio


def audio_duration(path: PathLike, limit: float | None = None) -> float:
    """Duration in seconds of the audio of ``path`` (audio file or video's audio track).

    Decodes at the native rate (no resampling) so that the value matches what
    :func:`read_audio` returns: ``len(read_audio(path, sr)) / sr`` up to one sample.

    With ``limit`` (seconds), audio longer than that is never decoded whole: when the container's
    header already says it is longer, that duration is returned without decoding; otherwise
    decoding stops just past the limit. Either way a value over ``limit`` means "too long" (it is
    then the header's estimate, or a lower bound).
    """
    p = _check_input(path, ("audio", "video"))
    if limit is not None:
        with _open_input(p) as container:
            if not container.streams.audio:
                raise InputError(p, "has no audio track")
            stated = _header_duration(container)
        if stated is not None and stated > limit + 1.0:
            return stated
    try:
        audio, rate = _decode_audio(p, None, limit)
    except AudioTooLong as exc:
        return exc.duration if exc.duration is not None and exc.duration > limit else float(limit) + 1.0
    return audio.shape[0] / rate


# ------------------------------------------------------------------------------------------
# images


MAX_IMAGE_PIXELS = 40_000_000  # larger images are refused from their header, before decoding


def image_size(path: PathLike, max_pixels: int | None = MAX_IMAGE_PIXELS) -> tuple[int, int]:
    """``(width, height)`` of an image file from its header, without decoding its pixels.

    Raises :class:`InputError` when the file is not a readable image, or has more than
    ``max_pixels`` pixels (a huge image, or a "decompression bomb" that would need gigabytes).
    """
    from PIL import Image, UnidentifiedImageError

    p = _check_input(path, ("image",))
    try:
        with Image.open(p) as img:
            width, height = img.size
    except Image.DecompressionBombError:  # PIL refuses to even open it: far over any limit
        limit = f"the {max_pixels / 1e6:.0f}-megapixel limit" if max_pixels else "what can be decoded safely"
        raise InputError(p, f"image is over {limit}; scale it down first") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise InputError(p, f"cannot be read as an image, corrupt or not an image ({e})") from e
    if max_pixels is not None and width * height > max_pixels:
        raise InputError(p, f"image is {width}x{height} px ({width * height / 1e6:.0f} megapixels), over the "
                         f"{max_pixels / 1e6:.0f}-megapixel limit; scale it down first")
    return width, height


def read_image(path: PathLike, max_pixels: int | None = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Load an image as RGB.

    Parameters
    ----------
    path : str or PathLike
        An image file (:data:`SUPPORTED_IMAGE`).
    max_pixels : int, optional
        Refuse (:class:`InputError`) images with more pixels, checked from the header before
        decoding (default :data:`MAX_IMAGE_PIXELS`; None: no limit but PIL's own).

    Returns
    -------
    np.ndarray
        ``(H, W, 3)`` uint8 RGB: EXIF orientation applied, transparency composited on white,
        grayscale / palette / 16-bit images converted to 8-bit RGB.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = Path(path)
    image_size(p, max_pixels)
    try:
        with Image.open(p) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
                arr = np.asarray(img, dtype=np.float64)
                scale = 257.0 if arr.max(initial=0) > 255 else 1.0
                gray = np.clip(np.round(arr / scale), 0, 255).astype(np.uint8)
                return np.repeat(gray[..., None], 3, axis=2)
            has_alpha = img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
                img.mode == "P" and "transparency" in img.info
            )
            if has_alpha:
                rgba = img.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                img = Image.alpha_composite(white, rgba)
            rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise InputError(p, f"cannot be read as an image, corrupt or not an image ({e})") from e
    return np.ascontiguousarray(rgb)


# ------------------------------------------------------------------------------------------
# writing


def check_output_path(path: PathLike, suffixes: Sequence[str]) -> Path:
    """Validate an output path before anything is computed or written.

    Parameters
    ----------
    path : str or PathLike
        The file to be written. Its folder must already exist (it is not created).
    suffixes : sequence of str
        Allowed extensions, lower case with the dot (e.g. ``(".mp4",)``).

    Returns
    -------
    Path
        ``path`` as a :class:`~pathlib.Path`.

    Raises
    ------
    OutputError
        Wrong extension, target is a folder, folder missing / not a folder / not writable.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in tuple(s.lower() for s in suffixes):
        raise OutputError(
            p, f"unsupported output type {suffix or '(no extension)'!r}; use one of: {', '.join(suffixes)}"
        )
    if p.is_dir():
        raise OutputError(p, "is a folder; give a file name")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.exists():
        raise OutputError(p, f"output folder {str(parent)!r} does not exist; create it first")
    if not parent.is_dir():
        raise OutputError(p, f"{str(parent)!r} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(p, f"output folder {str(parent)!r} is not writable")
    return p


def media_kind(path: PathLike) -> str:
    """``"video"``, ``"audio"`` or ``"image"`` for an existing, non-empty input file of a
    supported type; raises :class:`InputError` otherwise (missing, empty, unknown extension)."""
    p = _check_input(path, ("video", "audio", "image"))
    return _kind_of(p.suffix.lower())  # type: ignore[return-value]


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temp path next to ``path``; rename it over ``path`` when the block succeeds, remove
    it when the block raises. For writers that take a file name (np.savez, torch.save...)."""
    target = Path(path)
    tmp = _temp_sibling(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        _remove_quietly(tmp)
        raise


def write_image(path: PathLike, image: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 RGB image (png/jpg/...), atomically."""
    p = check_output_path(path, SUPPORTED_IMAGE)
    from PIL import Image

    with atomic_path(p) as tmp:
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(tmp, format=_PIL_FORMATS.get(p.suffix.lower()))
    return p


_PIL_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".webp": "WEBP"}


def _temp_sibling(p: Path) -> Path:
    """Hidden temp name next to ``p`` with the same extension: ``.name.tmp-XXXXXXXX.ext``."""
    return p.with_name(f".{p.stem}.tmp-{secrets.token_hex(4)}{p.suffix}")


def _remove_quietly(p: Path | None) -> None:
    if p is None:
        return
    try:
        p.unlink()
    except FileNotFoundError:
        pass
    except OSError:  # pragma: no cover - best effort cleanup
        pass


def _as_mono_float(audio: Any, what: str = "audio") -> np.ndarray:
    arr = np.asarray(audio)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be mono with shape (N,), got shape {arr.shape}")
    if arr.dtype == np.int16:
        arr = arr.astype(np.float32) / 32768.0
    arr = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} contains NaN or infinite samples")
    return arr


def write_wav(path: PathLike, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write mono audio as 16-bit PCM WAV, atomically.

    Parameters
    ----------
    path : str or PathLike
        Target ``.wav`` file; its folder must exist.
    audio : np.ndarray
        ``(N,)`` float in [-1, 1] (clipped), or int16 PCM.
    sample_rate : int
        Hz.

    Returns
    -------
    Path
        The written file. Samples are stored as ``round(x * 32768)`` clipped to int16, so
        values read back by :func:`read_audio` (which divides by 32768) are exact for any
        ``x = k / 32768``.
    """
    p = check_output_path(path, (".wav",))
    if int(sample_rate) <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate!r}")
    x = _as_mono_float(audio)
    pcm = np.clip(np.round(x.astype(np.float64) * 32768.0), -32768, 32767).astype("<i2")
    tmp = _temp_sibling(p)
    try:
        with open(tmp, "xb") as fh, wave.open(fh, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(int(sample_rate))
            w.writeframes(pcm.tobytes())
        os.replace(tmp, p)
    except OSError as e:
        _remove_quietly(tmp)
        raise OutputError(p, f"writing failed ({e})") from e
    except BaseException:
        _remove_quietly(tmp)
        raise
    return p


def _aac_rate(rate: int) -> int:
    try:
        rates = av.codec.Codec("aac", "w").audio_rates
    except Exception:  # pragma: no cover
        rates = None
    if rates and rate not in rates:
        return _AAC_FALLBACK_RATE
    return rate


def _resample_mono(audio: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    if src_rate == dst_rate or audio.size == 0:
        return audio
    frame = av.AudioFrame.from_ndarray(audio[None, :], format="fltp", layout="mono")
    frame.sample_rate = src_rate
    frame.pts = None
    resampler = av.AudioResampler(format="fltp", layout="mono", rate=dst_rate)
    outs = [f.to_ndarray()[0] for f in resampler.resample(frame)]
    outs += [f.to_ndarray()[0] for f in resampler.resample(None)]
    out = np.concatenate(outs).astype(np.float32) if outs else np.zeros(0, np.float32)
    want = _round_half_up(Fraction(audio.shape[0] * dst_rate, src_rate))
    if out.shape[0] >= want:
        return out[:want]
    return np.concatenate([out, np.zeros(want - out.shape[0], np.float32)])


@dataclass(frozen=True)
class YuvFrame:
    """A frame converted for the H.264 encoder (:class:`Yuv420p`): ``planes`` the
    ``(H' * 3 / 2, W')`` uint8 yuv420p planes of the frame padded to even sizes, ``size`` the
    ``(W, H)`` of the RGB frame it was made from."""

    planes: np.ndarray
    size: tuple[int, int]


class Yuv420p:
    """``(H, W, 3)`` uint8 RGB frame -> :class:`YuvFrame`, converted exactly as
    :meth:`VideoWriter.write` converts RGB frames (it uses this): odd sizes padded by an edge
    copy, then OpenCV's RGB -> I420 (BT.601, limited range, 2x2 chroma averages: what swscale,
    used before, makes within 1 level of luma and 4 of chroma, at an eighth of the time: 0.08
    against 0.64 ms per 256 px frame). Picklable, so that other processes can convert frames for
    the encoder (:class:`facecue.parallel.RenderWorkers`' ``finish``)."""

    @staticmethod
    def planes(frame: np.ndarray) -> np.ndarray:
        """``(H' * 3 / 2, W')`` uint8 yuv420p planes of an RGB frame padded to even sizes."""
        import cv2

        arr = np.asarray(frame)
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
            raise ValueError(f"frame must be (H, W, 3) uint8 RGB, got {arr.dtype} {arr.shape}")
        h, w = arr.shape[:2]
        if w % 2 or h % 2:
            arr = np.pad(arr, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        return cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_RGB2YUV_I420)

    def frame(self, frame: np.ndarray) -> Any:
        """The ``av.VideoFrame`` (yuv420p) of an RGB frame."""
        return av.VideoFrame.from_ndarray(self.planes(frame), format="yuv420p")

    def __call__(self, frame: np.ndarray) -> YuvFrame:
        h, w = np.shape(frame)[:2]
        return YuvFrame(self.planes(frame), (int(w), int(h)))


class VideoWriter:
    """Stream RGB frames into an H.264 (+ AAC audio) file, written atomically.

    Parameters
    ----------
    path : str or PathLike
        Target file (:data:`VIDEO_OUTPUT_SUFFIXES`); its folder must exist and be writable.
        Checked here, before anything is encoded (:class:`OutputError`).
    fps : float or Fraction
        Frames per second. NTSC rates given as floats (29.97, 23.976, 59.94) are stored
        exactly as ``k*1000/1001``.
    size : (int, int), optional
        ``(W, H)`` of the frames to be written; default: taken from the first frame. An odd
        width/height is padded by one pixel on the right/bottom (edge copy), as yuv420p
        needs even sizes.
    audio : np.ndarray, optional
        ``(N,)`` float mono in [-1, 1] at ``audio_sample_rate``, muxed as AAC. The track is
        trimmed or zero-padded to exactly ``n_frames / fps`` s.
    audio_sample_rate : int
        Hz of ``audio``; encoded at this rate, or at 48000 Hz if AAC does not support it.
    crf : int
        libx264 constant rate factor, 0 (lossless) .. 51; the default ``VIDEO_CRF`` (18) is
        visually near-lossless.
    preset : str
        libx264 speed preset (``X264_PRESETS``); default ``VIDEO_PRESET``.
    threads : int
        encoder threads. 1 (the default): no threads competing with render workers for the
        cores (at 256-512 px one veryfast thread keeps up with them), and the file does not
        depend on the number of cores; 0 = libx264's choice (about 1.5 per core). Not
        bit-reproducible in every case even so: libx264's SIMD and C paths give different files,
        and inside Ray's workers an encode of the same frames occasionally differs (a few levels
        in some macroblocks; tests/test_batch_ray.py has the measurements).

    Notes
    -----
    Use as a context manager: on normal exit the file is finalised and renamed over ``path``;
    on an exception the temporary file (``.name.tmp-XXXXXXXX.ext`` in the same folder) is
    deleted and ``path`` is left untouched.
    """

    def __init__(
        self,
        path: PathLike,
        fps: float | Fraction,
        size: tuple[int, int] | None = None,
        audio: np.ndarray | None = None,
        audio_sample_rate: int = SAMPLE_RATE,
        crf: int = VIDEO_CRF,
        preset: str = VIDEO_PRESET,
        threads: int = 1,
    ) -> None:
        self.path = check_output_path(path, VIDEO_OUTPUT_SUFFIXES)
        self.rate = _fps_fraction(fps)
        self.fps = float(self.rate)
        if size is not None:
            w, h = (int(v) for v in size)
            if w <= 0 or h <= 0:
                raise ValueError(f"size must be positive (W, H), got {size!r}")
            self.size: tuple[int, int] | None = (w, h)
        else:
            self.size = None
        if not 0 <= int(crf) <= 51:
            raise ValueError(f"crf must be in 0..51, got {crf!r}")
        self.crf = int(crf)
        if preset not in X264_PRESETS:
            raise ValueError(f"preset must be one of {', '.join(X264_PRESETS)}, got {preset!r}")
        self.preset = preset
        if int(threads) < 0:
            raise ValueError(f"threads must be >= 0, got {threads!r}")
        self.threads = int(threads)
        if int(audio_sample_rate) <= 0:
            raise ValueError(f"audio_sample_rate must be positive, got {audio_sample_rate!r}")
        self._audio: np.ndarray | None = None
        self._audio_rate = int(audio_sample_rate)
        if audio is not None:
            a = _as_mono_float(audio)
            self._audio_rate = _aac_rate(int(audio_sample_rate))
            self._audio = np.clip(_resample_mono(a, int(audio_sample_rate), self._audio_rate), -1, 1)
        self.n_frames = 0
        self._tmp: Path | None = None
        self._container: Any = None
        self._vstream: Any = None
        self._astream: Any = None
        self._audio_pos = 0
        self._closed = False
        self._converter = Yuv420p()

    # -- context manager -------------------------------------------------------------------
    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    def __del__(self) -> None:  # never leave a temp file behind when not closed
        try:
            if not self._closed:
                self.abort()
        except Exception:
            pass

    # -- internals -------------------------------------------------------------------------
    def _open(self, width: int, height: int) -> None:
        self._tmp = _temp_sibling(self.path)
        options = {"movflags": "+faststart"} if self.path.suffix.lower() in (".mp4", ".mov") else {}
        try:
            self._container = av.open(str(self._tmp), mode="w", container_options=options)
            vs = self._container.add_stream("libx264", rate=self.rate)
            vs.width = width + width % 2
            vs.height = height + height % 2
            vs.pix_fmt = "yuv420p"
            vs.time_base = 1 / self.rate
            vs.codec_context.time_base = 1 / self.rate
            vs.options = {"crf": str(self.crf), "preset": self.preset, "threads": str(self.threads)}
            self._vstream = vs
            if self._audio is not None:
                a = self._container.add_stream("aac", rate=self._audio_rate)
                a.layout = "mono"
                a.options = {"aac_coder": AAC_CODER}
                a.time_base = Fraction(1, self._audio_rate)
                self._astream = a
        except (av.FFmpegError, OSError) as e:
            self.abort()
            raise OutputError(self.path, f"cannot start writing ({e})") from e

    def _mux(self, packets: Iterable[Any]) -> None:
        for pkt in packets:
            self._container.mux(pkt)

    def _encode_audio_until(self, end: int, final: bool) -> None:
        """Encode audio samples [pos, end) in 1024-sample frames (the last may be short when
        ``final``); samples past the given audio are silence."""
        assert self._audio is not None
        while self._audio_pos < end:
            n = min(_AAC_FRAME, end - self._audio_pos)
            if n < _AAC_FRAME and not final:
                return
            chunk = np.zeros(n, np.float32)
            src = self._audio[self._audio_pos : self._audio_pos + n]
            chunk[: src.shape[0]] = src
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
            frame.sample_rate = self._audio_rate
            frame.pts = self._audio_pos
            frame.time_base = Fraction(1, self._audio_rate)
            self._mux(self._astream.encode(frame))
            self._audio_pos += n

    def _audio_end(self, n_frames: int) -> int:
        return math.floor(Fraction(n_frames * self._audio_rate) / self.rate)

    # -- public ----------------------------------------------------------------------------
    def write(self, frame: np.ndarray) -> None:
        """Append one frame.

        Parameters
        ----------
        frame : np.ndarray or YuvFrame
            ``(H, W, 3)`` uint8 RGB with ``(W, H) == size``, or such a frame already converted
            by :class:`Yuv420p` (the same video either way).
        """
        if self._closed:
            raise ValueError("VideoWriter is closed")
        if isinstance(frame, YuvFrame):
            w, h = frame.size
        else:
            arr = np.asarray(frame)
            if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
                raise ValueError(f"frame must be (H, W, 3) uint8 RGB, got {arr.dtype} {arr.shape}")
            h, w = arr.shape[:2]
        if self.size is None:
            self.size = (w, h)
        elif (w, h) != self.size:
            raise ValueError(f"frame is {w}x{h}, writer expects {self.size[0]}x{self.size[1]}")
        if self._container is None:
            self._open(w, h)
        try:
            if isinstance(frame, YuvFrame):
                vf = av.VideoFrame.from_ndarray(frame.planes, format="yuv420p")
            else:
                vf = self._converter.frame(arr)
            vf.pts = self.n_frames
            vf.time_base = 1 / self.rate
            self._mux(self._vstream.encode(vf))
            self.n_frames += 1
            if self._astream is not None:
                self._encode_audio_until(self._audio_end(self.n_frames), final=False)
        except (av.FFmpegError, OSError) as e:
            self.abort()
            raise OutputError(self.path, f"writing failed ({e})") from e

    def close(self) -> Path:
        """Flush the encoders, finish the audio track and move the file into place.

        Returns
        -------
        Path
            The written file.
        """
        if self._closed:
            return self.path
        if self.n_frames == 0:
            self.abort()
            raise ValueError(f"{self.path}: no frames were written")
        try:
            self._mux(self._vstream.encode(None))
            if self._astream is not None:
                self._encode_audio_until(self._audio_end(self.n_frames), final=True)
                self._mux(self._astream.encode(None))
            self._container.close()
            self._container = None
            assert self._tmp is not None
            os.replace(self._tmp, self.path)
        except (av.FFmpegError, OSError) as e:
            self.abort()
            raise OutputError(self.path, f"writing failed ({e})") from e
        except BaseException:
            self.abort()
            raise
        self._tmp = None
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Stop writing and delete the temporary file; the target is left untouched."""
        self._closed = True
        container, self._container = self._container, None
        if container is not None:
            try:
                container.close()
            except Exception:
                pass
        _remove_quietly(self._tmp)
        self._tmp = None


def write_video(
    path: PathLike,
    frames: Iterable[np.ndarray],
    fps: float | Fraction,
    audio: np.ndarray | None = None,
    audio_sample_rate: int = SAMPLE_RATE,
    crf: int = VIDEO_CRF,
    size: tuple[int, int] | None = None,
    preset: str = VIDEO_PRESET,
) -> Path:
    """Write frames (and optional mono audio) to an H.264/AAC file; see :class:`VideoWriter`.

    Parameters
    ----------
    frames : iterable of np.ndarray
        ``(H, W, 3)`` uint8 RGB frames, or one ``(T, H, W, 3)`` array.

    Returns
    -------
    Path
        The written file.
    """
    with VideoWriter(path, fps, size=size, audio=audio, audio_sample_rate=audio_sample_rate, crf=crf,
                     preset=preset) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.path


def remove_temp_siblings(path: PathLike) -> list[Path]:
    """Delete the temp files that atomic writes of ``path`` left behind (``.name.tmp-XXXXXXXX.ext``,
    as :func:`atomic_path` and :class:`VideoWriter` name them): what a process killed mid-write
    leaves. Only for a caller that knows no other writer of ``path`` is running. Returns them."""
    p = Path(path)
    stale = sorted(p.parent.glob(f".{glob.escape(p.stem)}.tmp-{'[0-9a-f]' * 8}{glob.escape(p.suffix)}"))
    for tmp in stale:
        _remove_quietly(tmp)
    return stale
