"""`facecue generate` / `facecue.generate`: durations, controls, and bad input everywhere."""

from __future__ import annotations

import shutil
import subprocess

import av
import numpy as np
import pytest

from facecue import FaceCues
from facecue.cli import asset_path, main
from facecue.generate import GenerateConfig, generate
from facecue.io import audio_duration, probe_video, read_audio, write_image, write_wav


@pytest.fixture(scope="module")
def short_speech(tmp_path_factory):
    """The first 3.1 s of the bundled speech clip (an odd length: 77.5 frames at 25 fps)."""
    speech = read_audio(asset_path("speech.wav"))[: int(3.1 * 16000)]
    path = tmp_path_factory.mktemp("audio") / "short.wav"
    return write_wav(path, speech)


def audio_track_seconds(path) -> float:
    """Length of the audio track as a player sees it (encoder priming/padding trimmed)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return float(stream.duration * stream.time_base)


def test_duration_matches_audio_and_tracks_agree(tmp_path, short_speech):
    out = tmp_path / "talk.mp4"
    result = generate(asset_path("portrait.png"), short_speech, out, emotion="happy", size=160, full=False,
                      save_cues=tmp_path / "talk.npz")
    info = probe_video(out)
    speech_s = audio_duration(short_speech)
    assert abs(info.n_frames - speech_s * 25) <= 1, (info.n_frames, speech_s)
    assert info.n_frames == result.n_frames and (info.width, info.height) == (160, 160)
    video_s = info.n_frames / info.fps
    assert abs(audio_track_seconds(out) - video_s) < 0.005, "audio track as long as the video"
    assert abs(len(read_audio(out)) / 16000 - video_s) < 0.005
    cues = FaceCues.load(tmp_path / "talk.npz")
    assert cues.n_frames == info.n_frames and cues.meta["config"]["emotion"] == "happy"
    assert (tmp_path / "talk.json").exists(), "the config is saved next to the output"
    assert result.real_time_factor > 0


def test_controls_reach_the_cues(tmp_path, short_speech):
    still = generate(asset_path("portrait.png"), short_speech, tmp_path / "still.mp4", pose_scale=0, gaze="camera",
                     blink_rate=0, size=128, full=False, cue_model="phonetic")
    assert np.ptp(still.cues.pose_angles, axis=0).max() < 1e-3 and still.cues.blinks() == []
    moving = generate(asset_path("portrait.png"), short_speech, tmp_path / "moving.mp4", size=128, full=False,
                      emotion="neutral@0,sad@1.5", seed=2, cue_model="phonetic")
    assert moving.cues.pose_angles[:, 0].std() > 0.3


def test_pose_from_reference_video(tmp_path, short_speech):
    from facecue.io import read_image, write_video

    portrait = read_image(asset_path("portrait.png"))
    frames = [np.roll(portrait, 2 * k, axis=1) for k in range(30)]
    ref = write_video(tmp_path / "ref.mp4", frames, 25)
    result = generate(asset_path("portrait.png"), short_speech, tmp_path / "posed.mp4", pose_from=ref, size=128,
                      full=False, cue_model="phonetic")
    assert result.n_frames == probe_video(tmp_path / "posed.mp4").n_frames


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    files = {"empty_wav": folder / "empty.wav", "empty_png": folder / "empty.png"}
    files["empty_wav"].write_bytes(b"")
    files["empty_png"].write_bytes(b"")
    files["blank"] = write_image(folder / "blank.png", np.full((256, 256, 3), 120, np.uint8))
    files["silent"] = write_wav(folder / "silent.wav", np.zeros(32000, np.float32))
    files["text_as_wav"] = folder / "notes.wav"
    files["text_as_wav"].write_text("this is not audio")
    files["readonly"] = folder / "readonly"
    files["readonly"].mkdir()
    if shutil.which("sox"):
        files["long"] = folder / "two_hours.flac"
        subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", str(files["long"]), "synth", "7200", "sine", "200"],
                       check=True)
    return files


CASES = [
    ("no face", ["--portrait", "{blank}", "--audio", "{speech}"], "no face"),
    ("silent audio", ["--portrait", "{portrait}", "--audio", "{silent}"], "audio is silent"),
    ("0-byte audio", ["--portrait", "{portrait}", "--audio", "{empty_wav}"], "file is empty"),
    ("0-byte portrait", ["--portrait", "{empty_png}", "--audio", "{speech}"], "file is empty"),
    ("image as audio", ["--portrait", "{portrait}", "--audio", "{portrait}"], "is an image"),
    ("text as audio", ["--portrait", "{portrait}", "--audio", "{text_as_wav}"], "notes.wav"),
    ("unknown emotion", ["--portrait", "{portrait}", "--audio", "{speech}", "--emotion", "joyful"], "choose one of"),
    ("intensity", ["--portrait", "{portrait}", "--audio", "{speech}", "--intensity", "3"], "intensity"),
    ("bad gaze", ["--portrait", "{portrait}", "--audio", "{speech}", "--gaze", "left"], "gaze"),
    ("missing checkpoint", ["--portrait", "{portrait}", "--audio", "{speech}", "--checkpoint", "nope.pt"], "nope.pt"),
    ("2-hour audio", ["--portrait", "{portrait}", "--audio", "{long}"], "--max-seconds"),
]


@pytest.mark.parametrize("name, args, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, bad_files, name, args, message):
    if "{long}" in args and "long" not in bad_files:
        pytest.skip("sox is not installed")
    values = {k: str(v) for k, v in bad_files.items()}
    values.update(portrait=str(asset_path("portrait.png")), speech=str(asset_path("speech.wav")))
    out = tmp_path / "out.mp4"
    argv = ["generate", *[a.format(**values) for a in args], "-o", str(out), "-q"]
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("facecue: error:") and message in lines[0], err
    assert list(tmp_path.iterdir()) == [], "nothing half-written"


def test_unwritable_output_path(tmp_path, capsys):
    code = main(["generate", "--portrait", str(asset_path("portrait.png")), "--audio", str(asset_path("speech.wav")),
                 "-o", str(tmp_path / "missing_folder" / "x.mp4"), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1


def test_config_validation():
    with pytest.raises(Exception, match="renderer"):
        GenerateConfig(renderer="nope").validate()
    with pytest.raises(Exception, match="cue model"):
        GenerateConfig(cue_model="magic").validate()
    with pytest.raises(Exception, match="size"):
        GenerateConfig(size=10).validate()


def test_bundled_network_with_an_emotion_schedule(tmp_path, short_speech):
    from facecue.generate import bundled_checkpoint

    if bundled_checkpoint() is None:
        pytest.skip("this build bundles no stage-1 checkpoint")
    result = generate(asset_path("portrait.png"), short_speech, tmp_path / "net.mp4", cue_model="network",
                      emotion="neutral@0,happy@1.5", size=128, full=False, fps=30)
    info = probe_video(tmp_path / "net.mp4")
    assert info.n_frames == result.n_frames == round(audio_duration(short_speech) * 30)
    assert result.cues.meta["cue_model"] == "network" and result.cues.fps == 30
    assert np.isfinite(result.cues.normalized).all()
