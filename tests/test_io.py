"""Tests of facecue.io against media generated here, with known answers.

Frames carry their own index: the top half of frame ``k`` is 8 vertical bars, bar ``b`` white
when bit ``b`` of ``k`` is set (robust to lossy H.264); the bottom half is a gray level.
Audio is a 440 Hz sine whose frequency and length are checked after each round trip.
"""

from __future__ import annotations

import os
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from facecue import io as fio
from facecue.constants import SAMPLE_RATE
from facecue.errors import InputError, OutputError

SIZE = 64


# ------------------------------------------------------------------------------------------
# helpers


def make_frame(k: int, width: int = SIZE, height: int = SIZE) -> np.ndarray:
    """(H, W, 3) uint8 frame encoding ``k`` (0..255) in 8 bars of its top half."""
    img = np.empty((height, width, 3), np.uint8)
    bar = width // 8
    for b in range(8):
        img[: height // 2, b * bar : (b + 1) * bar] = 235 if (k >> b) & 1 else 20
    img[: height // 2, 8 * bar :] = 128
    img[height // 2 :] = (40 + 5 * k) % 256
    img[height // 2 :, :, 0] = 100  # some colour, so RGB order matters
    return img


def decode_index(frame: np.ndarray) -> int:
    height, width = frame.shape[:2]
    bar = width // 8
    top = frame[: height // 2].astype(np.float64).mean(axis=(0, 2))
    bits = [top[b * bar + 1 : (b + 1) * bar - 1].mean() > 128 for b in range(8)]
    return sum(1 << b for b, on in enumerate(bits) if on)


def sine(n: int, sr: int, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / sr)).astype(np.float32)


def peak_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * sr / len(x))


def write_frames(path: Path, n: int, fps, **kw) -> Path:
    return fio.write_video(path, (make_frame(k) for k in range(n)), fps, **kw)


def encode_audio_with_pyav(path: Path, codec: str, audio: np.ndarray, sr: int, layout: str = "mono",
                           options: dict | None = None) -> None:
    """Encode ``audio`` ((C, N) float) with a PyAV encoder, in 1024-sample frames."""
    audio = np.atleast_2d(audio).astype(np.float32)
    container = av.open(str(path), "w")
    stream = container.add_stream(codec, rate=sr, options=options or {})
    stream.layout = layout
    fmt = stream.codec_context.codec.audio_formats[0].name
    for i in range(0, audio.shape[1], 1024):
        chunk = audio[:, i : i + 1024]
        if fmt.startswith("s16"):
            arr = (chunk * 32767).astype(np.int16)
        elif fmt.startswith("s32"):
            arr = (chunk * 2**31 * 0.999).astype(np.int32)
        else:
            arr = chunk
        if not fmt.endswith("p"):  # packed: (1, N*C) interleaved
            arr = arr.T.reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr), format=fmt, layout=layout)
        frame.sample_rate = sr
        frame.pts = i
        for pkt in stream.encode(frame):
            container.mux(pkt)
    for pkt in stream.encode(None):
        container.mux(pkt)
    container.close()


def mux_frames_and_tone(path: Path, video_codec: str, n_frames: int, tone_samples: int, audio_start: int = 0) -> None:
    """Write ``n_frames`` :func:`make_frame` frames at 25 fps with ``video_codec`` and an AAC track of
    a 440 Hz tone ``tone_samples`` long starting ``audio_start`` samples in (``SAMPLE_RATE``), by hand
    with PyAV (not facecue's writer)."""
    sr = SAMPLE_RATE
    with av.open(str(path), "w") as c:
        v = c.add_stream(video_codec, rate=25)
        v.width, v.height, v.pix_fmt = SIZE, SIZE, "yuv420p"
        a = c.add_stream("aac", rate=sr)
        a.layout = "mono"
        for k in range(n_frames):
            f = av.VideoFrame.from_ndarray(make_frame(k), format="rgb24")
            f.pts = k
            for p in v.encode(f):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
        tone = sine(tone_samples, sr)
        for i in range(0, tone_samples, 1024):
            f = av.AudioFrame.from_ndarray(tone[None, i : i + 1024], format="fltp", layout="mono")
            f.sample_rate = sr
            f.pts = audio_start + i
            for p in a.encode(f):
                c.mux(p)
        for p in a.encode(None):
            c.mux(p)


def has_encoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
        return True
    except Exception:
        return False


# ------------------------------------------------------------------------------------------
# video round trips


@pytest.mark.parametrize("fps", [24, 25, 30, 29.97])
@pytest.mark.parametrize("duration", [1.5, 37 / 25])
def test_video_round_trip_frame_accurate(tmp_path, fps, duration):
    n = round(duration * fps)  # 1.5 s -> 36, 38, 45, 45 frames; 1.48 s -> 36, 37, 44, 44
    path = write_frames(tmp_path / "clip.mp4", n, fps)
    info = fio.probe_video(path)
    assert info.n_frames == n
    assert info.fps == pytest.approx(float(fio._fps_fraction(fps)), abs=1e-9)
    assert info.fps == pytest.approx(fps, abs=1e-3)
    assert (info.width, info.height) == (SIZE, SIZE)
    assert info.duration_s == pytest.approx(n / fps, abs=2e-3)
    assert not info.has_audio and info.audio_sample_rate is None

    video = fio.read_video(path)
    assert video.frames.shape == (n, SIZE, SIZE, 3) and video.frames.dtype == np.uint8
    assert video.fps == pytest.approx(fps, abs=1e-3)
    assert video.audio is None
    assert [decode_index(f) for f in video.frames] == list(range(n))
    expected = np.stack([make_frame(k) for k in range(n)]).astype(np.int16)
    mae = np.abs(video.frames.astype(np.int16) - expected).mean()
    assert mae < 4.0, mae


def test_ntsc_rate_is_stored_exactly(tmp_path):
    assert fio._fps_fraction(29.97) == Fraction(30000, 1001)
    assert fio._fps_fraction(23.976) == Fraction(24000, 1001)
    assert fio._fps_fraction(59.94) == Fraction(60000, 1001)
    assert fio._fps_fraction(25.0) == 25
    assert fio._fps_fraction(12.5) == Fraction(25, 2)
    path = write_frames(tmp_path / "ntsc.mp4", 10, Fraction(30000, 1001))
    with av.open(str(path)) as c:
        assert c.streams.video[0].average_rate == Fraction(30000, 1001)


@pytest.mark.parametrize("suffix", [".mkv", ".mov"])
def test_other_containers_count_frames(tmp_path, suffix):
    # Matroska stores no frame count: probe_video must count packets.
    path = write_frames(tmp_path / f"clip{suffix}", 37, 25)
    info = fio.probe_video(path)
    assert info.n_frames == 37
    assert info.fps == pytest.approx(25.0)
    frames = list(fio.iter_video_frames(path))
    assert [decode_index(f) for f in frames] == list(range(37))


def test_flash_video_frames_and_audio(tmp_path):
    """An .flv (Flash video, as CREMA-D ships its clips) is read like any video: every frame in
    order, and its audio track for speech."""
    sr, n = SAMPLE_RATE, 30
    path = tmp_path / "clip.flv"
    mux_frames_and_tone(path, "flv", n, int(sr * n / 25))  # Sorenson H.263: every FFmpeg build encodes FLV with it
    assert fio.media_kind(path) == "video"
    frames = list(fio.iter_video_frames(path))
    assert [decode_index(f) for f in frames] == list(range(n))
    audio = fio.read_audio(path)
    assert abs(len(audio) / sr - n / 25) < 0.1
    assert peak_hz(audio, sr) == pytest.approx(440, abs=2.0)


def test_odd_size_is_padded_right_bottom(tmp_path):
    frames = [make_frame(k, width=63, height=47) for k in range(5)]
    path = fio.write_video(tmp_path / "odd.mp4", frames, 25)
    video = fio.read_video(path)
    assert video.frames.shape == (5, 48, 64, 3)
    orig = np.stack(frames).astype(np.int16)
    mae = np.abs(video.frames[:, :47, :63].astype(np.int16) - orig).mean()
    assert mae < 4.0
    # the padded column/row repeat the edge
    assert np.abs(video.frames[:, :47, 63].astype(int) - video.frames[:, :47, 62]).mean() < 6


def test_writer_rejects_bad_frames(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        with fio.VideoWriter(tmp_path / "a.mp4", 25) as w:
            w.write(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="expects"):
        with fio.VideoWriter(tmp_path / "b.mp4", 25, size=(16, 8)) as w:
            w.write(np.zeros((16, 8, 3), np.uint8))  # (H, W) swapped
    with pytest.raises(ValueError, match="no frames"):
        with fio.VideoWriter(tmp_path / "c.mp4", 25):
            pass
    assert sorted(os.listdir(tmp_path)) == []


def test_writer_encoder_settings(tmp_path):
    """Unknown presets and negative thread counts are refused before anything is written; every
    preset/thread setting encodes the same frames near-losslessly (crf 18 default)."""
    with pytest.raises(ValueError, match="preset"):
        fio.VideoWriter(tmp_path / "a.mp4", 25, preset="warp-speed")
    with pytest.raises(ValueError, match="threads"):
        fio.VideoWriter(tmp_path / "a.mp4", 25, threads=-1)
    assert fio.VIDEO_PRESET in fio.X264_PRESETS and fio.VideoWriter(tmp_path / "a.mp4", 25).crf == fio.VIDEO_CRF
    yy, xx = np.mgrid[0:48, 0:64]
    frames = [np.stack([(xx * 4 + k) % 256, (yy * 5) % 256, ((xx + yy) * 2) % 256], -1).astype(np.uint8)
              for k in range(6)]
    for preset, threads in (("veryfast", 1), ("medium", 0)):
        path = tmp_path / f"{preset}.mp4"
        with fio.VideoWriter(path, 25, preset=preset, threads=threads) as writer:
            for frame in frames:
                writer.write(frame)
        video = fio.read_video(path)
        assert video.frames.shape == (6, 48, 64, 3)
        assert np.abs(video.frames.astype(np.int16) - np.stack(frames)).mean() < 4.0
    assert sorted(os.listdir(tmp_path)) == ["medium.mp4", "veryfast.mp4"]


def test_rotation_metadata_is_applied(tmp_path):
    width, height = 64, 32
    img = np.zeros((height, width, 3), np.uint8)
    img[:8, :8] = 255  # white marker at the stored image's top-left
    path = tmp_path / "rot.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.set_display_rotation(90)  # display = stored image rotated 90 deg counterclockwise
        for k in range(3):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = k
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    info = fio.probe_video(path)
    assert (info.width, info.height) == (height, width)
    frame = next(fio.iter_video_frames(path))
    assert frame.shape == (width, height, 3)
    # counterclockwise: the top-left corner moves to the bottom-left
    assert frame[-8:, :8].mean() > 200 and frame[:8, :8].mean() < 50
    # cross-check against ffmpeg's autorotate when the bundled binary is available
    try:
        import subprocess

        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as exc:  # noqa: BLE001 - no ffmpeg binary: the cross-check cannot run
        pytest.skip(f"no ffmpeg binary to cross-check against ({exc.__class__.__name__}: {exc})")
    raw = subprocess.run(
        [exe, "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    ref = np.frombuffer(raw, np.uint8).reshape(frame.shape)
    assert np.abs(ref.astype(int) - frame).mean() < 2


# ------------------------------------------------------------------------------------------
# frame-rate resampling


def test_iter_video_frames_30_to_25_nearest_frame(tmp_path):
    n = 37  # D = 37/30 s -> round(D * 25) = round(30.83) = 31 frames
    path = write_frames(tmp_path / "c30.mp4", n, 30)
    it = fio.iter_video_frames(path, fps=25)
    first = next(it)  # streaming: a generator, not a list
    frames = [first, *it]
    assert len(frames) == round(n / 30 * 25) == 31
    got = [decode_index(f) for f in frames]
    # output frame j shows time j/25 s; nearest source frame is round(j * 30 / 25) (no ties)
    assert got == [min(n - 1, int(np.floor(j * 30 / 25 + 0.5))) for j in range(31)]


def test_iter_video_frames_upsample_and_read_video_fps(tmp_path):
    n = 25  # 1 s at 25 fps
    path = write_frames(tmp_path / "c25.mp4", n, 25)
    frames = list(fio.iter_video_frames(path, fps=30))
    assert len(frames) == 30
    got = [decode_index(f) for f in frames]
    # nearest source frame to j/30 s; exact ties (j*25/30 = x.5) keep the earlier frame
    assert got == [min(n - 1, int(np.ceil(Fraction(j * 25, 30) - Fraction(1, 2)))) for j in range(30)]
    assert got[0] == 0 and got[-1] == 24
    video = fio.read_video(path, fps=12.5)
    assert video.frames.shape[0] == 13  # 1 s * 12.5 fps, rounded half up
    assert video.fps == 12.5
    same = fio.read_video(path, fps=25)
    assert same.frames.shape[0] == n


# ------------------------------------------------------------------------------------------
# audio


def test_write_wav_read_audio_sample_exact(tmp_path):
    rng = np.random.default_rng(0)
    q = rng.integers(-32768, 32767, size=12345)
    x = (q / 32768.0).astype(np.float32)
    path = fio.write_wav(tmp_path / "a.wav", x)
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, SAMPLE_RATE)
    y = fio.read_audio(path)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_array_equal(y, x)
    assert fio.audio_duration(path) == pytest.approx(12345 / SAMPLE_RATE, abs=1e-9)
    # non-default rate, read at its own rate: still exact
    path2 = fio.write_wav(tmp_path / "b.wav", x, sample_rate=22050)
    np.testing.assert_array_equal(fio.read_audio(path2, sample_rate=22050), x)
    # values outside [-1, 1] are clipped, not wrapped
    path3 = fio.write_wav(tmp_path / "c.wav", np.array([2.0, -2.0, 0.25], np.float32))
    np.testing.assert_allclose(fio.read_audio(path3), [32767 / 32768, -1.0, 0.25])
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


@pytest.mark.parametrize("fps", [25, 29.97])
def test_mp4_audio_track_covers_video_duration(tmp_path, fps):
    n = 37
    sr = SAMPLE_RATE
    tone = sine(int(3.0 * sr), sr)  # longer than the video: must be trimmed
    path = write_frames(tmp_path / "av.mp4", n, fps, audio=tone)
    info = fio.probe_video(path)
    assert info.has_audio and info.audio_sample_rate == sr
    video = fio.read_video(path)
    assert video.frames.shape[0] == n
    d = n / float(fio._fps_fraction(fps))
    assert video.audio is not None and video.audio.dtype == np.float32
    assert abs(len(video.audio) / sr - d) < 0.025
    assert abs(fio.audio_duration(path) - d) < 0.025
    assert peak_hz(video.audio, sr) == pytest.approx(440, abs=2.0)
    # the track starts with the tone, in phase (no priming delay left in front)
    a = video.audio[: sr // 2]
    err = np.abs(a[100:4000] - tone[100:4000]).mean()
    assert err < 0.05, err


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_late_audio_start_is_kept_in_sync(tmp_path, suffix):
    """An audio track starting 0.5 s after the video comes back with 0.5 s of leading silence."""
    sr = SAMPLE_RATE
    path = tmp_path / f"late{suffix}"
    mux_frames_and_tone(path, "libx264", 50, sr, audio_start=sr // 2)
    y = fio.read_audio(path)
    onset = int(np.argmax(np.abs(y) > 0.25))
    assert abs(onset - sr // 2) <= sr // 1000, onset
    assert abs(len(y) / sr - 1.5) < 0.07  # Matroska keeps the encoder's end padding


def test_short_audio_is_zero_padded_and_rate_fallback(tmp_path):
    n, fps = 50, 25  # 2 s of video
    tone = sine(int(0.5 * 20_000), 20_000)  # 0.5 s at 20 kHz, which AAC does not support
    path = write_frames(tmp_path / "pad.mp4", n, fps, audio=tone, audio_sample_rate=20_000)
    info = fio.probe_video(path)
    assert info.audio_sample_rate == 48_000
    audio = fio.read_audio(path)
    assert abs(len(audio) / SAMPLE_RATE - 2.0) < 0.025
    assert peak_hz(audio[: SAMPLE_RATE // 2], SAMPLE_RATE) == pytest.approx(440, abs=3.0)
    assert np.abs(audio[: int(0.45 * SAMPLE_RATE)]).max() > 0.4
    assert np.abs(audio[int(0.6 * SAMPLE_RATE) :]).max() < 0.01  # silence after the tone


def test_resample_44100_stereo_wav_to_16k_mono(tmp_path):
    sr = 44_100
    n = sr + 123
    left = sine(n, sr, 440, 0.5)
    path = tmp_path / "stereo.wav"
    pcm = np.stack([left, left], axis=1)  # identical channels
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes((pcm * 32767).astype("<i2").tobytes())
    y = fio.read_audio(path)
    assert abs(len(y) - n * SAMPLE_RATE / sr) <= 2
    assert peak_hz(y, SAMPLE_RATE) == pytest.approx(440, abs=1.5)
    # downmix is the channel mean: identical channels keep their amplitude (not x 1/sqrt(2)*2)
    assert np.abs(y).max() == pytest.approx(0.5, abs=0.01)
    assert fio.audio_duration(path) == pytest.approx(n / sr, abs=1e-9)

    # opposite channels cancel in the mean
    with wave.open(str(tmp_path / "anti.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes((np.stack([left, -left], axis=1) * 32767).astype("<i2").tobytes())
    assert np.abs(fio.read_audio(tmp_path / "anti.wav")).max() < 1e-3


# (suffix, encoder candidates, layout, extra encoder options, max length error in s)
COMPRESSED = [
    (".mp3", ["libmp3lame", "mp3"], "mono", None, 0.025),
    (".m4a", ["aac"], "mono", None, 0.005),
    (".aac", ["aac"], "mono", None, 0.030),
    (".flac", ["flac"], "mono", None, 0.0),
    (".ogg", ["libvorbis", "vorbis"], "stereo", {"strict": "experimental"}, 0.025),
    (".ogg", ["libopus", "opus"], "mono", None, 0.025),
]


@pytest.mark.parametrize("suffix,encoders,layout,options,tol", COMPRESSED,
                         ids=[f"{c[0]}-{c[1][0]}" for c in COMPRESSED])
def test_read_compressed_audio(tmp_path, suffix, encoders, layout, options, tol):
    encoder = next((e for e in encoders if has_encoder(e)), None)
    if encoder is None:
        pytest.skip(f"this PyAV build has no {' / '.join(encoders)} encoder for {suffix}")
    sr = 48_000 if "opus" in encoder else 44_100
    n = sr + 777
    lead = sr // 5  # 0.2 s of silence, then the tone: its onset shows misalignment
    x = np.concatenate([np.zeros(lead, np.float32), sine(n - lead, sr)])
    channels = 2 if layout == "stereo" else 1
    path = tmp_path / f"tone{suffix}"
    encode_audio_with_pyav(path, encoder, np.repeat(x[None], channels, axis=0), sr, layout, options)
    y = fio.read_audio(path)
    assert y.dtype == np.float32 and y.ndim == 1
    assert np.abs(y).max() <= 1.0
    err_s = abs(len(y) / SAMPLE_RATE - n / sr)
    assert err_s <= tol + 1.5 / SAMPLE_RATE, err_s
    onset = int(np.argmax(np.abs(y) > 0.25))
    assert abs(onset - SAMPLE_RATE // 5) <= SAMPLE_RATE // 1000, onset  # within 1 ms
    tone = y[SAMPLE_RATE // 4 : -SAMPLE_RATE // 20]
    assert peak_hz(tone, SAMPLE_RATE) == pytest.approx(440, abs=2.5)
    assert np.sqrt(np.mean(tone**2)) == pytest.approx(0.5 / np.sqrt(2), abs=0.02)
    assert fio.audio_duration(path) == pytest.approx(len(y) / SAMPLE_RATE, abs=2 / SAMPLE_RATE)


# ------------------------------------------------------------------------------------------
# atomic writes and output checks


class Boom(RuntimeError):
    pass


def test_exception_mid_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.mp4"
    with pytest.raises(Boom):
        with fio.VideoWriter(target, 25, audio=sine(SAMPLE_RATE, SAMPLE_RATE)) as w:
            for k in range(10):
                w.write(make_frame(k))
            assert [p for p in os.listdir(tmp_path) if ".tmp-" in p]  # writing to a temp file
            assert not target.exists()
            raise Boom()
    assert os.listdir(tmp_path) == []


def test_failed_write_keeps_previous_file(tmp_path):
    target = write_frames(tmp_path / "out.mp4", 5, 25)
    before = target.read_bytes()

    def frames():
        yield make_frame(0)
        raise Boom()

    with pytest.raises(Boom):
        fio.write_video(target, frames(), 25)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["out.mp4"]


def test_output_errors_before_writing(tmp_path, monkeypatch):
    missing = tmp_path / "no_such_dir" / "out.mp4"
    with pytest.raises(OutputError, match="does not exist") as ei:
        fio.VideoWriter(missing, 25)
    assert str(missing) in str(ei.value)
    with pytest.raises(OutputError, match="does not exist"):
        fio.write_video(missing, (make_frame(k) for k in range(3)), 25)
    with pytest.raises(OutputError, match="does not exist"):
        fio.write_wav(tmp_path / "nope" / "a.wav", np.zeros(10, np.float32))
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        fio.VideoWriter(afile / "out.mp4", 25)
    with pytest.raises(OutputError, match=r"\.mp4"):  # lists the supported suffixes
        fio.VideoWriter(tmp_path / "out.gif", 25)
    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        fio.VideoWriter(tmp_path / "dir.mp4", 25)

    # unwritable folder: os.access decides (root ignores mode bits, so also patch)
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(fio.os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode))
    with pytest.raises(OutputError, match="not writable"):
        fio.VideoWriter(locked / "out.mp4", 25)
    with pytest.raises(OutputError, match="not writable"):
        fio.write_wav(locked / "a.wav", np.zeros(10, np.float32))
    assert os.listdir(locked) == []
    assert sorted(os.listdir(tmp_path)) == ["afile", "dir.mp4", "locked"]


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True,
                    reason="root can write into a read-only folder")
def test_unwritable_folder_real_permissions(tmp_path):
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="not writable"):
            fio.VideoWriter(locked / "out.mp4", 25)
    finally:
        locked.chmod(0o755)


# ------------------------------------------------------------------------------------------
# input errors


def _assert_input_error(fn, path, match):
    with pytest.raises(InputError, match=match) as ei:
        fn(path)
    assert str(path) in str(ei.value)
    assert ei.value.path == Path(path)


def test_input_errors(tmp_path):
    missing = tmp_path / "missing.mp4"
    for fn in (fio.probe_video, fio.read_video, fio.read_audio, fio.iter_video_frames):
        _assert_input_error(fn, missing, "not found")
    _assert_input_error(fio.read_image, tmp_path / "missing.png", "not found")

    empty = tmp_path / "empty.mp4"
    empty.touch()
    for fn in (fio.probe_video, fio.read_video, fio.read_audio):
        _assert_input_error(fn, empty, "empty")
    empty_wav = tmp_path / "empty.wav"
    empty_wav.touch()
    _assert_input_error(fio.read_audio, empty_wav, "empty")

    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    for fn in (fio.probe_video, fio.read_video, fio.read_audio, fio.audio_duration):
        _assert_input_error(fn, text, "corrupt or not a media file")
    text_wav = tmp_path / "notes.wav"
    text_wav.write_text("RIFF? no.\n" * 50)
    _assert_input_error(fio.read_audio, text_wav, "corrupt or not a media file")

    png = tmp_path / "face.png"
    from PIL import Image

    Image.new("RGB", (8, 8), (1, 2, 3)).save(png)
    _assert_input_error(fio.read_audio, png, "image")
    _assert_input_error(fio.probe_video, png, "image")

    unknown = tmp_path / "data.xyz"
    unknown.write_bytes(b"123")
    with pytest.raises(InputError, match=r"\.wav") as ei:  # the message lists supported types
        fio.read_audio(unknown)
    assert ".mp4" in str(ei.value)

    fake_jpg = tmp_path / "notes.jpg"
    fake_jpg.write_text("this is not an image\n" * 50)
    _assert_input_error(fio.read_image, fake_jpg, "not an image")
    folder = tmp_path / "folder.mp4"
    folder.mkdir()
    _assert_input_error(fio.probe_video, folder, "folder")


def test_missing_streams(tmp_path):
    silent = write_frames(tmp_path / "silent.mp4", 5, 25)
    _assert_input_error(fio.read_audio, silent, "no audio")
    assert fio.read_video(silent, with_audio=True).audio is None

    audio_only = tmp_path / "voice.mp4"
    encode_audio_with_pyav(audio_only, "aac", sine(SAMPLE_RATE, SAMPLE_RATE)[None], SAMPLE_RATE)
    _assert_input_error(fio.probe_video, audio_only, "no video")
    # ...but its audio reads fine from a video-suffixed file
    assert abs(len(fio.read_audio(audio_only)) - SAMPLE_RATE) < 0.005 * SAMPLE_RATE

    wav = fio.write_wav(tmp_path / "a.wav", np.zeros(100, np.float32))
    _assert_input_error(fio.probe_video, wav, "audio file, expected video")


# ------------------------------------------------------------------------------------------
# images


def test_read_image_modes(tmp_path):
    from PIL import Image

    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[0, 0, 3] = 0  # transparent -> white
    rgba[1, 1, 3] = 255  # opaque -> as is
    rgba[2, 2, 3] = 128  # half -> blend with white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    img = fio.read_image(tmp_path / "a.png")
    assert img.shape == (4, 6, 3) and img.dtype == np.uint8
    assert tuple(img[0, 0]) == (255, 255, 255)
    assert tuple(img[1, 1]) == (200, 0, 0)
    assert img[2, 2, 0] == pytest.approx(228, abs=2) and img[2, 2, 1] == pytest.approx(127, abs=2)

    gray = (np.arange(20, dtype=np.uint8) * 10).reshape(4, 5)
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    g = fio.read_image(tmp_path / "g.png")
    assert g.shape == (4, 5, 3)
    for c in range(3):
        np.testing.assert_array_equal(g[..., c], gray)

    g16 = (np.arange(20, dtype=np.uint16) * 3000).reshape(4, 5)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    h = fio.read_image(tmp_path / "g16.png")
    np.testing.assert_allclose(h[..., 1], g16 / 257, atol=1)

    Image.fromarray(rgba[..., :3].copy()).save(tmp_path / "c.bmp")
    np.testing.assert_array_equal(fio.read_image(tmp_path / "c.bmp"), rgba[..., :3])


def test_read_image_exif_rotation(tmp_path):
    from PIL import Image

    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:10, :10] = 255  # marker top-left of the stored pixels
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    im.save(tmp_path / "r.jpg", exif=exif, quality=95)
    out = fio.read_image(tmp_path / "r.jpg")
    assert out.shape == (40, 20, 3)
    # clockwise: top-left moves to top-right
    assert out[:10, -10:].mean() > 200 and out[:10, :10].mean() < 50


# ------------------------------------------------------------------------------------------
# limits: long audio and huge images are refused without decoding them whole


@pytest.fixture(scope="module")
def five_minute_opus(tmp_path_factory):
    import subprocess

    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    path = tmp_path_factory.mktemp("long") / "five_minutes.ogg"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "sine=frequency=220:sample_rate=48000",
                    "-t", "300", "-c:a", "libopus", "-b:a", "8k", str(path)], check=True)
    return path


def test_long_audio_is_measured_from_its_header_and_never_decoded_whole(five_minute_opus):
    import tracemalloc

    tracemalloc.start()
    try:
        duration = fio.audio_duration(five_minute_opus, limit=10)
        with pytest.raises(InputError, match="over the 10 s limit"):
            fio.read_audio(five_minute_opus, max_seconds=10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert duration == pytest.approx(300, abs=0.5)
    assert peak < 20e6, f"{peak / 1e6:.0f} MB allocated: the 5 minutes were decoded (57 MB of float32 at 48 kHz)"
    assert fio.audio_duration(five_minute_opus) == pytest.approx(300, abs=0.05), "without a limit: the exact length"


def test_decompression_bomb_png_is_one_input_error(tmp_path):
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    for width, height in ((16000, 12000), (8000, 6000)):  # over PIL's own bomb limit, and under it but over ours
        path = tmp_path / f"bomb_{width}.png"
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                         + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
        with pytest.raises(InputError, match="megapixel limit"):
            fio.read_image(path)
        with pytest.raises(InputError, match="megapixel limit"):
            fio.image_size(path)
