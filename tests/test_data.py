"""Data pipeline: labels, preprocessing (parallel, resumable, failures listed), windows, splits."""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from facecue import io
from facecue.cli import main
from facecue.constants import EMOTIONS, MEL_SUBFRAMES, N_MELS, SAMPLE_RATE
from facecue.cues import angles_to_rotation
from facecue.data import (
    SILENCE_LOG_MEL,
    CueWindows,
    PoseAnchor,
    arrange_mead_tree,
    emotion_id,
    find_mead_clips,
    load_cache,
    load_clip,
    parse_intensity,
    pose_features,
    pose_from_features,
    split_by_speaker,
    synthesize_cache,
    synthetic_audio,
)
from facecue.errors import CheckpointError, InputError


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def synthetic_cache(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("synthetic_cache")
    synthesize_cache(cache, speakers=("S01", "S02"), seconds=3.0, seed=2)
    return cache


def read_rows(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


# --- labels --------------------------------------------------------------------------------


def test_emotion_names_and_intensities():
    assert [emotion_id(e) for e in EMOTIONS] == list(range(8))
    assert emotion_id(" Happy ") == EMOTIONS.index("happy") and emotion_id("disgust") == EMOTIONS.index("disgusted")
    with pytest.raises(InputError, match="choose one of: neutral, angry, contempt, disgusted, fear, happy, sad, surprised"):
        emotion_id("joyful")
    assert parse_intensity("level_3") == 1.0 and parse_intensity("level2") == pytest.approx(2 / 3)
    assert parse_intensity("0.25") == 0.25
    for bad in ("2", "-0.1", "nan", "level_4", "loud"):
        with pytest.raises(InputError):
            parse_intensity(bad)


def test_pose_features_round_trip():
    rng = np.random.default_rng(0)
    angles = rng.normal(0, 8, (20, 3))
    rotation = angles_to_rotation(angles)
    scale = 100 * np.exp(rng.normal(0, 0.02, 20))
    translation = np.c_[rng.normal(128, 3, (20, 2)), np.zeros(20)]
    anchor = PoseAnchor.of(scale, rotation, translation)
    feats = pose_features(scale, rotation, translation, anchor)
    assert feats.shape == (20, 6)
    np.testing.assert_allclose(feats[:, :3], angles - angles[:5].mean(0), atol=1e-3)
    s, r, t = pose_from_features(feats, anchor)
    np.testing.assert_allclose(s, scale, rtol=1e-5)
    np.testing.assert_allclose(r, rotation, atol=1e-5)
    np.testing.assert_allclose(t[:, :2], translation[:, :2], atol=1e-3)


# --- windows -------------------------------------------------------------------------------


def test_windows_cover_every_crop_with_audio_context(synthetic_cache):
    clips = load_cache(synthetic_cache)
    ds = CueWindows(clips, window=20, audio_margin=3)
    assert len(ds) == sum(c.n_frames - 19 for c in clips)
    item = ds[0]
    assert item["mel"].shape == (26, MEL_SUBFRAMES, N_MELS) and item["expression"].shape == (20, 468, 3)
    # silence before the clip's start, the clip's own features after it
    assert np.all(item["mel"][:3].numpy() == SILENCE_LOG_MEL)
    np.testing.assert_allclose(item["mel"][3:26].numpy(), clips[0].mel[:23].astype(np.float32))
    # the frame before a window at the clip's start is the first frame itself (like a portrait)
    np.testing.assert_allclose(item["prev_pose"].numpy(), clips[0].pose[0])
    k, start = ds.locate(len(ds) - 1)
    last = ds[len(ds) - 1]
    assert start == clips[k].n_frames - 20 and int(last["start"]) == start
    np.testing.assert_allclose(last["prev_pose"].numpy(), clips[k].pose[start - 1])
    np.testing.assert_allclose(ds[5]["expression"].numpy(), ds[5]["expression"].numpy())  # deterministic
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_speaker_split_and_identity_modes(synthetic_cache):
    clips = load_cache(synthetic_cache, identity="neutral")
    train, test = split_by_speaker(clips, ["S02"])
    assert {c.speaker for c in train} == {"S01"} and {c.speaker for c in test} == {"S02"}
    # Synthetic clips add a static per-emotion deformation: measured from the speaker's neutral
    # shape it shows up as a mean offset; measured from the clip's own median it vanishes.
    happy = next(c for c in clips if c.speaker == "S01" and EMOTIONS[c.emotion] == "happy")
    own = next(c for c in load_cache(synthetic_cache, identity="clip") if c.clip_id == happy.clip_id)
    static_neutral = np.abs(np.median(happy.expression.astype(np.float32), axis=0)).mean()
    static_own = np.abs(np.median(own.expression.astype(np.float32), axis=0)).mean()
    assert static_neutral > 5 * static_own
    # 'stored' uses the clip file's identity: the synthetic rest shape, so the emotion shows too
    stored = next(c for c in load_cache(synthetic_cache, identity="stored") if c.clip_id == happy.clip_id)
    np.testing.assert_allclose(stored.identity, load_clip(synthetic_cache / "clips" / f"{happy.clip_id}.npz").cues.identity)
    assert np.abs(np.median(stored.expression.astype(np.float32), axis=0)).mean() > 5 * static_own


# --- preprocessing -------------------------------------------------------------------------


def _talking_video(path: Path, portrait: np.ndarray, seconds: float, audio: np.ndarray | None) -> Path:
    """The bundled portrait, slightly moving, as a 30 fps video (with or without an audio track)."""
    import cv2

    small = cv2.resize(portrait, (256, 256), interpolation=cv2.INTER_AREA)
    n = int(round(seconds * 30))
    with io.VideoWriter(path, 30, (256, 256), audio=audio) as writer:
        for i in range(n):
            shift = np.float32([[1, 0, 3 * np.sin(i / 5)], [0, 1, 2 * np.cos(i / 7)]])
            writer.write(cv2.warpAffine(small, shift, (256, 256), borderMode=cv2.BORDER_REFLECT))
    return path


def test_preprocess_labelled_videos_parallel_resumable(tmp_path, portrait, capsys):
    rng = np.random.default_rng(0)
    videos = tmp_path / "videos"
    videos.mkdir()
    speech, _ = synthetic_audio(1.2, rng)
    _talking_video(videos / "a.mp4", portrait, 1.2, speech)  # audio track
    _talking_video(videos / "b.mp4", portrait, 1.2, None)  # no track; a.wav-like sibling file
    io.write_wav(videos / "b.wav", speech)
    _talking_video(videos / "c.mp4", portrait, 1.2, None)  # no audio at all -> fails
    labels = videos / "labels.csv"
    labels.write_text("path,emotion,intensity,speaker\na.mp4,happy,level_3,P1\nb.mp4,sad,0.5,P1\n"
                      "c.mp4,angry,1,P2\nd.mp4,angry,1,P2\na.mp4,joyful,1,P1\n")
    cache = tmp_path / "cache"
    assert main(["preprocess", "--videos", str(videos), "--labels", str(labels), "--out", str(cache), "-j", "2", "-q"]) == 0
    index = read_rows(cache / "index.csv")
    assert sorted(r["clip_id"] for r in index) == ["a", "b"]
    failures = {r["clip"]: r["reason"] for r in read_rows(cache / "failures.csv")}
    assert "no audio track and no audio file" in failures["c"]
    assert "not found" in failures["d"] and "joyful" in " ".join(failures.values())
    clip = load_clip(cache / "clips" / "a.npz")
    assert clip.cues.fps == 25 and clip.cues.n_frames == 30  # 1.2 s resampled to 25 fps
    assert clip.mel.shape == (30, MEL_SUBFRAMES, N_MELS) and clip.loudness.max() > 0.01
    assert clip.emotion == "happy" and clip.intensity == 1.0 and clip.speaker == "P1"
    assert load_clip(cache / "clips" / "b.npz").audio_source.endswith("b.wav")
    assert "2 clip(s) processed" in capsys.readouterr().out

    # rerun: finished clips are skipped; a corrupt one is redone
    (cache / "clips" / "b.npz").write_bytes((cache / "clips" / "b.npz").read_bytes()[:500])
    with pytest.raises(CheckpointError):
        load_clip(cache / "clips" / "b.npz")
    assert main(["preprocess", "--videos", str(videos), "--labels", str(labels), "--out", str(cache), "-q"]) == 0
    assert "1 clip(s) processed, 1 already done" in capsys.readouterr().out
    assert load_clip(cache / "clips" / "b.npz").cues.n_frames == 30
    assert not list((cache / "clips").glob(".*"))  # no temp files left behind


def test_preprocess_progress_in_a_log_is_a_few_plain_lines(synthetic_cache, tmp_path, stderr_log):
    """Resuming a finished cache, plus a few videos that are gone, stderr a log file: the bar's
    first and final lines only (with the failure count), no redraws, no line per clip."""
    from facecue.data import ClipSource, preprocess

    cache = tmp_path / "cache"
    shutil.copytree(synthetic_cache, cache)
    done = sorted(p.stem for p in (cache / "clips").glob("*.npz"))
    sources = [ClipSource(clip_id, tmp_path / f"{clip_id}.mp4", None, "neutral", 1.0, "S01") for clip_id in done]
    sources += [ClipSource(f"gone{i}", tmp_path / f"gone{i}.mp4", None, "sad", 1.0, "S09") for i in range(3)]
    report = preprocess(sources, cache, jobs=1, progress=True)
    assert sorted(report.skipped) == done and [clip for clip, _ in report.failed] == ["gone0", "gone1", "gone2"]
    text = stderr_log.getvalue()
    lines = stderr_log.bar_lines("preprocess")
    n = len(sources)
    assert "\r" not in text and "\x1b" not in text, text
    assert len(lines) == 2 and f"0/{n}" in lines[0] and f"{n}/{n}" in lines[1] and "failed=3" in lines[1], text


def test_preprocess_argument_errors(tmp_path, capsys):
    assert main(["preprocess", "--out", str(tmp_path / "c")]) == 2
    assert main(["preprocess", "--videos", str(tmp_path), "--out", str(tmp_path / "c")]) == 2
    assert main(["preprocess", "--mead", str(tmp_path / "nowhere"), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("facecue: error:") for line in err)


def _espeak(text: str, seconds: float, tmp: Path) -> np.ndarray:
    raw, wav = tmp / "raw.wav", tmp / "speech16.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(raw), text], check=True, capture_output=True)
    subprocess.run(["sox", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(wav)], check=True, capture_output=True)
    audio = io.read_audio(wav)
    n = int(round(seconds * SAMPLE_RATE))
    return np.pad(audio, (0, max(0, n - len(audio))))[:n]


@pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")), reason="needs espeak-ng and sox")
def test_preprocess_real_mead_tree(shared_data, tmp_path):
    """Real MEAD clips laid out as a MEAD tree: audio muxed into one video, as the layout's .m4a
    for another, as .wav for a third; the fourth has none and fails with a reason."""
    import imageio_ffmpeg

    clips = shared_data / "mead_clips"
    stems = ["M030_angry_level3_001", "M030_neutral_level1_001", "W009_happy_level3_001", "W011_sad_level3_001"]
    audio = {s: _espeak(f"this is clip {i} of the test", io.probe_video(clips / f"{s}.mp4").duration_s, tmp_path)
             for i, s in enumerate(stems[:3])}
    muxed = tmp_path / "muxed" / f"{stems[0]}.mp4"
    muxed.parent.mkdir()
    video = io.read_video(clips / f"{stems[0]}.mp4")
    io.write_video(muxed, video.frames, video.fps, audio=audio[stems[0]])
    root = tmp_path / "MEAD"
    arrange_mead_tree([muxed] + [clips / f"{s}.mp4" for s in stems[1:]], root, {s: audio[s] for s in stems[1:3]})
    wav = root / "M030" / "audio" / "neutral" / "level_1" / "001.wav"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(wav), "-c:a", "aac", str(wav.with_suffix(".m4a"))], check=True)
    wav.unlink()

    sources, problems = find_mead_clips(root)
    assert not problems and {s.clip_id for s in sources} == set(stems)
    assert next(s for s in sources if s.clip_id == stems[1]).audio.suffix == ".m4a"
    cache = tmp_path / "cache"
    assert main(["preprocess", "--mead", str(root), "--out", str(cache), "-j", "2", "-q"]) == 0
    index = {r["clip_id"]: r for r in read_rows(cache / "index.csv")}
    assert set(index) == set(stems[:3])
    assert index[stems[0]]["audio_source"].endswith("(audio track)")
    assert index[stems[1]]["audio_source"].endswith(".m4a")
    assert index[stems[2]]["emotion"] == "happy" and float(index[stems[2]]["intensity"]) == 1.0
    failures = read_rows(cache / "failures.csv")
    assert [f["clip"] for f in failures] == [stems[3]] and "no audio" in failures[0]["reason"]
    for stem in stems[:3]:
        clip = load_clip(cache / index[stem]["file"])
        assert clip.cues.fps == 25 and clip.cues.n_frames == io.probe_video(clips / f"{stem}.mp4").n_frames
        assert clip.cues.valid.mean() > 0.9 and clip.loudness.max() > 0.01
    data = load_cache(cache)
    neutral = next(c for c in data if c.clip_id == stems[1])
    assert np.abs(np.median(neutral.expression.astype(np.float32), axis=0)).mean() < 0.01
