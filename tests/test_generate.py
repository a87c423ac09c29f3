"""`facecue generate` / `facecue.generate`: durations, controls, and bad input everywhere."""

from __future__ import annotations

import json
import shutil
import subprocess

import av
import numpy as np
import pytest

from facecue import FaceCues
from facecue.cli import asset_path, main
from facecue.generate import GenerateConfig, generate
from facecue.io import audio_duration, probe_video, read_audio, read_image, write_image, write_wav


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
    assert not any("smiles broadly" in note for note in result.notes)  # happy on a smiling portrait: no note


def test_controls_reach_the_cues(tmp_path, short_speech):
    still = generate(asset_path("portrait.png"), short_speech, tmp_path / "still.mp4", pose_scale=0, gaze="camera",
                     blink_rate=0, mouth_scale=0, size=128, full=False, cue_model="phonetic")
    assert np.ptp(still.cues.pose_angles, axis=0).max() < 1e-3 and still.cues.blinks() == []
    lip_gap = lambda cues: cues.normalized[:, 14, 1] - cues.normalized[:, 13, 1]  # noqa: E731
    assert np.ptp(lip_gap(still.cues)) < 1e-4  # mouth scale 0: the lips stay where they rest
    assert still.cues.meta["config"]["mouth_scale"] == 0  # saved with the output
    assert json.loads((tmp_path / "still.json").read_text())["facecue_config"]["wrinkles"] == 1.0
    # neutral on the bundled portrait (a broad smile): the user is told, on screen and in the settings file
    assert "the portrait smiles broadly" in still.summary() and "so neutral may still look" in still.summary()
    assert json.loads((tmp_path / "still.json").read_text())["notes"] == still.notes
    moving = generate(asset_path("portrait.png"), short_speech, tmp_path / "moving.mp4", size=128, full=False,
                      emotion="neutral@0,sad@1.5", seed=2, cue_model="phonetic")
    assert moving.cues.pose_angles[:, 0].std() > 0.3
    assert np.ptp(lip_gap(moving.cues)) > 0.02
    wider = generate(asset_path("portrait.png"), short_speech, tmp_path / "wider.mp4", size=128, full=False,
                     emotion="neutral@0,sad@1.5", seed=2, cue_model="phonetic", mouth_scale=1.5)
    assert np.percentile(lip_gap(wider.cues), 90) > np.percentile(lip_gap(moving.cues), 90) + 0.01


def test_pose_from_reference_video(tmp_path, short_speech):
    from facecue.io import read_image, write_video

    portrait = read_image(asset_path("portrait.png"))
    frames = [np.roll(portrait, 2 * k, axis=1) for k in range(30)]
    ref = write_video(tmp_path / "ref.mp4", frames, 25)
    result = generate(asset_path("portrait.png"), short_speech, tmp_path / "posed.mp4", pose_from=ref, size=128,
                      full=False, cue_model="phonetic")
    assert result.n_frames == probe_video(tmp_path / "posed.mp4").n_frames


def test_mouth_from_matches_the_reference_speakers_lips(tmp_path, short_speech):
    """A reference speaker made with small, parted-at-rest lips: --mouth-from reproduces their gap
    percentiles as MediaPipe reads them on the output, where the default does not."""
    from facecue.cues import extract_cues
    from facecue.mouth_style import inner_lip_gap, measure_mouth_style

    portrait = asset_path("portrait.png")
    common = dict(size=192, full=False, cue_model="phonetic", workers=0)
    reference = tmp_path / "reference.mp4"
    generate(portrait, short_speech, reference, mouth_scale=0.4, mouth_rest=0.04, seed=5, **common)
    style = measure_mouth_style(reference)
    matched = generate(portrait, short_speech, tmp_path / "matched.mp4", mouth_from=str(reference), **common)
    default = generate(portrait, short_speech, tmp_path / "default.mp4", **common)
    read = {name: np.percentile(inner_lip_gap(extract_cues(result.path, fps=25).normalized), [50, 90])
            for name, result in (("matched", matched), ("default", default))}
    target = np.array([style.p50, style.p90])
    assert np.all(np.abs(read["matched"] / target - 1) <= [0.3, 0.2]), (read, target)  # the mouth bar
    assert np.abs(read["default"] / target - 1).max() > 0.3, "the default speaker differs (the test can fail)"
    record = json.loads((tmp_path / "matched.json").read_text())["mouth_match"]
    assert record["mouth_rest"] > 0.01 and record["mouth_scale"] < 0.8 and record["reference_frames"] == style.frames
    assert record["reached"] and "only part of the reference" not in matched.summary()
    assert matched.cues.meta["mouth_match"] == record and "mouth matched to reference.mp4" in matched.summary()
    # the reference is everyday talk: an emotion's own mouth comes on top of the fitted knobs
    surprised = generate(portrait, short_speech, tmp_path / "surprised.mp4", mouth_from=str(reference),
                         emotion="surprised", **common)
    assert surprised.cues.meta["mouth_match"]["mouth_scale"] == record["mouth_scale"]
    assert surprised.cues.meta["mouth_match"]["mouth_rest"] == record["mouth_rest"]
    assert np.percentile(inner_lip_gap(surprised.cues.normalized), 90) > np.percentile(
        inner_lip_gap(matched.cues.normalized), 90) + 0.02, "surprise still drops the jaw"
    silence = write_wav(tmp_path / "silence.wav", np.zeros(32000, np.float32))
    listening = generate(portrait, silence, tmp_path / "listening.mp4", mouth_from=str(reference), **common)
    assert "not applied: the audio is silent" in listening.summary() and "mouth_match" not in listening.cues.meta
    assert np.abs(inner_lip_gap(listening.cues.normalized)).max() < 0.01, "a listener's lips stay closed"


def test_mouth_from_fits_the_networks_mouth_scale(tmp_path, short_speech):
    """--mouth-from fits the network's mouth scale alone (its rest gap is not fitted), on one
    network run, to a wide-mouthed speaker (the phonetic model at mouth scale 1.8)."""
    from facecue.cues import extract_cues
    from facecue.mouth_style import inner_lip_gap, measure_mouth_style

    portrait = asset_path("portrait.png")
    common = dict(size=192, full=False, workers=0)
    reference = tmp_path / "reference.mp4"
    generate(portrait, short_speech, reference, mouth_scale=1.8, cue_model="phonetic", **common)
    style = measure_mouth_style(reference)
    matched = generate(portrait, short_speech, tmp_path / "matched.mp4", mouth_from=str(reference),
                       cue_model="network", **common)
    default = generate(portrait, short_speech, tmp_path / "default.mp4", cue_model="network", **common)
    target = np.array([style.p50, style.p90])
    read = {name: np.percentile(inner_lip_gap(extract_cues(result.path, fps=25).normalized), [50, 90]) / target
            for name, result in (("matched", matched), ("default", default))}
    assert np.all(np.abs(read["matched"] - 1) <= [0.3, 0.2]), read  # the mouth bar's tolerances
    assert np.abs(read["default"] - 1).max() > 0.3, read
    record = matched.cues.meta["mouth_match"]
    assert record["mouth_rest"] == 0 and record["mouth_scale"] > 1.2, record
    happy = generate(portrait, short_speech, tmp_path / "happy.mp4", mouth_from=str(reference), emotion="happy",
                     cue_model="network", **common)
    assert happy.cues.meta["mouth_match"]["mouth_scale"] == record["mouth_scale"], "fitted on neutral speech"
    assert happy.cues.meta["config"]["emotion"] == "happy"
    assert np.abs(happy.cues.normalized - matched.cues.normalized).max() > 0.01, "the happy run drove the face"


def test_mouth_from_meets_the_mouth_bar_on_another_clip_of_the_speaker(tmp_path, shared_data):
    """feifeili's clip 1 re-driven from its first frame with its own audio, her clip 2 as the
    reference: the issue's mouth bar (p90 within 20 %, p50 within 30 %; the default reads
    0.60 / 0.69 of the real gaps, docs/expressiveness)."""
    from facecue.cues import extract_cues
    from facecue.io import iter_video_frames
    from facecue.mouth_style import inner_lip_gap

    real = shared_data / "talking" / "styletalk_feifeili_clip1.mp4"
    portrait = write_image(tmp_path / "first.png", next(iter_video_frames(real)))
    out = generate(portrait, shared_data / "speech" / "styletalk_feifeili_clip1.wav", tmp_path / "redriven.mp4",
                   mouth_from=str(shared_data / "talking" / "styletalk_feifeili_clip2_short.mp4"), workers=0).path
    ratio = (np.percentile(inner_lip_gap(extract_cues(out, fps=25).normalized), [50, 90])
             / np.percentile(inner_lip_gap(extract_cues(real, fps=25).normalized), [50, 90]))
    assert abs(ratio[0] - 1) <= 0.3 and abs(ratio[1] - 1) <= 0.2, ratio


def _png_header_only(path, width: int, height: int):
    """A PNG whose header says ``width`` x ``height`` (a "decompression bomb" when huge): the
    header is valid, the pixel data a few bytes (decoding it would need gigabytes)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    """Inputs of the bad-input matrix, in their own folder (outputs go to another)."""
    import pickle

    import torch
    from PIL import Image

    folder = tmp_path_factory.mktemp("bad")
    portrait = read_image(asset_path("portrait.png"))
    speech = read_audio(asset_path("speech.wav"))[: int(1.2 * 16000)]
    files = {"folder": folder / "a_folder.png"}
    files["folder"].mkdir()
    files["empty_wav"] = folder / "empty.wav"
    files["empty_wav"].write_bytes(b"")
    files["empty_png"] = folder / "empty.png"
    files["empty_png"].write_bytes(b"")
    files["text_png"] = folder / "notes.png"
    files["text_png"].write_text("this is not an image")
    full_png = (folder / "full.png")
    Image.fromarray(portrait).save(full_png)
    files["truncated_png"] = folder / "truncated.png"
    files["truncated_png"].write_bytes(full_png.read_bytes()[: full_png.stat().st_size // 2])
    files["blank"] = write_image(folder / "blank.png", np.full((256, 256, 3), 120, np.uint8))
    files["tiny"] = write_image(folder / "tiny.png", portrait[::32, ::32])
    files["huge"] = _png_header_only(folder / "huge.png", 16000, 12000)
    files["speech"] = write_wav(folder / "speech.wav", speech)
    files["text_as_wav"] = folder / "notes.wav"
    files["text_as_wav"].write_text("this is not audio")
    files["png_as_wav"] = folder / "picture.wav"
    files["png_as_wav"].write_bytes(full_png.read_bytes())
    files["a_file"] = folder / "a_file.txt"
    files["a_file"].write_text("not a folder")
    files["wrong_ckpt"] = folder / "classifier.pt"
    torch.save({"kind": "facecue.emotion_classifier", "version": 1, "config": {}, "model": {}, "step": 0},
               files["wrong_ckpt"])
    files["truncated_ckpt"] = folder / "truncated.pt"
    files["truncated_ckpt"].write_bytes(files["wrong_ckpt"].read_bytes()[:200])
    files["evil_ckpt"] = folder / "evil.pt"
    files["pwned"] = folder / "pwned"
    files["evil_ckpt"].write_bytes(pickle.dumps({"kind": _Evil(files["pwned"])}, protocol=4))
    return files


class _Evil:
    """Unpickling this runs a shell command: a malicious checkpoint."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


P, A = ["--portrait", "{portrait}"], ["--audio", "{speech}"]
BAD_CASES = [  # (id, arguments without -o, words of the one-line error, output file name)
    ("portrait missing", ["--portrait", "{folder}/../nope.png", *A], "file not found", "out.mp4"),
    ("portrait is a folder", ["--portrait", "{folder}", *A], "is a folder", "out.mp4"),
    ("portrait empty", ["--portrait", "{empty_png}", *A], "file is empty", "out.mp4"),
    ("portrait is text", ["--portrait", "{text_png}", *A], "cannot be read as an image", "out.mp4"),
    ("portrait truncated", ["--portrait", "{truncated_png}", *A], "truncated.png", "out.mp4"),
    ("portrait without a face", ["--portrait", "{blank}", *A], "no face", "out.mp4"),
    ("portrait tiny", ["--portrait", "{tiny}", *A], "too small for a face", "out.mp4"),
    ("portrait huge", ["--portrait", "{huge}", *A], "megapixel limit", "out.mp4"),
    ("audio missing", [*P, "--audio", "{folder}/../nope.wav"], "file not found", "out.mp4"),
    ("audio empty", [*P, "--audio", "{empty_wav}"], "file is empty", "out.mp4"),
    ("audio is text", [*P, "--audio", "{text_as_wav}"], "notes.wav", "out.mp4"),
    ("audio is an image", [*P, "--audio", "{portrait}"], "is an image", "out.mp4"),
    ("audio is an image named .wav", [*P, "--audio", "{png_as_wav}"], "picture.wav", "out.mp4"),
    ("audio over the limit", [*P, *A, "--max-seconds", "1"], "--max-seconds 2", "out.mp4"),
    ("unknown emotion", [*P, *A, "--emotion", "joyful"], "choose one of", "out.mp4"),
    ("bad schedule time", [*P, *A, "--emotion", "neutral@0,happy@soon"], "happy@soon", "out.mp4"),
    ("negative schedule time", [*P, *A, "--emotion", "happy@-1"], "seconds >= 0", "out.mp4"),
    ("intensity above 1", [*P, *A, "--intensity", "3"], "intensity", "out.mp4"),
    ("intensity negative", [*P, *A, "--intensity", "-0.5"], "intensity", "out.mp4"),
    ("fps zero", [*P, *A, "--fps", "0"], "fps must be within 1..120", "out.mp4"),
    ("fps too high", [*P, *A, "--fps", "500"], "fps must be within 1..120", "out.mp4"),
    ("temperature negative", [*P, *A, "--temperature", "-1"], "temperature", "out.mp4"),
    ("mouth scale too high", [*P, *A, "--mouth-scale", "9"], "mouth scale", "out.mp4"),
    ("mouth rest too high", [*P, *A, "--mouth-rest", "0.5"], "mouth rest must be within", "out.mp4"),
    ("wrinkles above 1", [*P, *A, "--wrinkles", "1.5"], "wrinkles must be within 0..1", "out.mp4"),
    ("mouth from an image", [*P, *A, "--mouth-from", "{portrait}"], "needs a video of the person talking", "out.mp4"),
    ("mouth from a missing video", [*P, *A, "--mouth-from", "{folder}/../talk.mp4"], "file not found", "out.mp4"),
    ("mouth from with a mouth scale", [*P, *A, "--mouth-from", "{folder}/../talk.mp4", "--mouth-scale", "0.5"],
     "leave --mouth-scale", "out.mp4"),
    ("size too small", [*P, *A, "--size", "16"], "size must be within 64..4096", "out.mp4"),
    ("bad gaze", [*P, *A, "--gaze", "left"], "gaze", "out.mp4"),
    ("bad extension", [*P, *A], "unsupported output type '.avi'", "out.avi"),
    ("output under a file", [*P, *A], "is not a folder", "a_file.txt/out.mp4"),
    ("foreign settings file", [*P, *A], "not facecue's settings file", "hello.mp4"),
    ("checkpoint missing", [*P, *A, "--checkpoint", "{folder}/../nope.pt"], "nope.pt", "out.mp4"),
    ("checkpoint of another kind", [*P, *A, "--checkpoint", "{wrong_ckpt}"], "expected 'facecue.stage1'", "out.mp4"),
    ("checkpoint truncated", [*P, *A, "--checkpoint", "{truncated_ckpt}"], "corrupt", "out.mp4"),
]


@pytest.mark.parametrize("name, args, message, output", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, bad_files, name, args, message, output):
    values = {k: str(v) for k, v in bad_files.items()}
    values.update(portrait=str(asset_path("portrait.png")))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "a_file.txt").write_text("a file, not a folder")
    (out_dir / "hello.json").write_text('{"my": "own notes"}')
    before = {p: p.read_bytes() for p in out_dir.iterdir()}
    argv = ["generate", *[a.format(**values) for a in args], "-o", str(out_dir / output), "-q", "--crop",
            "--size", "128"] if "--size" not in args else ["generate", *[a.format(**values) for a in args],
                                                         "-o", str(out_dir / output), "-q"]
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("facecue: error:") and message in lines[0], err
    assert {p: p.read_bytes() for p in out_dir.iterdir()} == before, "nothing written, nothing overwritten"
    assert not list(bad_files["folder"].parent.glob(".*tmp*")), "no temp files beside the inputs"


def test_malicious_checkpoint_is_refused_on_one_line_and_never_run(tmp_path, bad_files):
    """In a fresh process, so that torch's own warnings (which pytest would capture) reach stderr."""
    import sys

    out = tmp_path / "out.mp4"
    proc = subprocess.run([sys.executable, "-m", "facecue.cli", "generate", "--portrait", str(asset_path("portrait.png")),
                           "--audio", str(bad_files["speech"]), "--checkpoint", str(bad_files["evil_ckpt"]),
                           "-o", str(out), "-q"], capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and "evil.pt" in lines[0] and "corrupt or not a facecue checkpoint" in lines[0], proc.stderr
    assert not bad_files["pwned"].exists(), "the pickle's code never ran"
    assert list(tmp_path.iterdir()) == []


def _speech_variant(folder, kind: str):
    """The first 1.2 s of the bundled speech (or silence) in another format."""
    import imageio_ffmpeg

    speech = read_audio(asset_path("speech.wav"))[: int(1.2 * 16000)]
    if kind == "silent":
        return write_wav(folder / "silent.wav", np.zeros_like(speech))
    if kind == "8 kHz":
        return write_wav(folder / "speech_8k.wav", speech[::2], sample_rate=8000)
    source = write_wav(folder / "speech16.wav", speech)
    target = folder / {"48 kHz stereo": "speech_48k_stereo.wav", "m4a": "speech.m4a"}[kind]
    extra = ["-ar", "48000", "-ac", "2"] if kind == "48 kHz stereo" else ["-c:a", "aac", "-b:a", "64k"]
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(source), *extra, str(target)],
                   check=True)
    return target


def _portrait_variant(folder, mode: str):
    from PIL import Image

    image = Image.fromarray(read_image(asset_path("portrait.png")))
    if mode == "RGBA":
        image = image.convert("RGBA")
        image.putalpha(Image.new("L", image.size, 255))
    else:
        image = image.convert(mode)
    path = folder / f"portrait_{mode}.{'jpg' if mode == 'CMYK' else 'png'}"
    image.save(path)
    return path


GOOD_CASES = [("portrait", "L"), ("portrait", "RGBA"), ("portrait", "CMYK"), ("audio", "8 kHz"),
              ("audio", "48 kHz stereo"), ("audio", "m4a"), ("audio", "silent")]


@pytest.mark.parametrize("what, variant", GOOD_CASES, ids=[v for _, v in GOOD_CASES])
def test_unusual_but_valid_inputs_give_a_video_as_long_as_the_audio(tmp_path, what, variant):
    portrait = _portrait_variant(tmp_path, variant) if what == "portrait" else asset_path("portrait.png")
    audio = _speech_variant(tmp_path, variant) if what == "audio" else _speech_variant(tmp_path, "m4a")
    out = tmp_path / "out" / "talk.mp4"
    out.parent.mkdir()
    code = main(["generate", "--portrait", str(portrait), "--audio", str(audio), "-o", str(out), "--crop", "--size",
                 "128", "-q"])
    assert code == 0
    info = probe_video(out)
    assert info.has_audio and abs(info.n_frames - audio_duration(audio) * 25) <= 1, (info.n_frames, audio_duration(audio))
    assert sorted(p.name for p in out.parent.iterdir()) == ["talk.json", "talk.mp4"]


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


def test_silence_gives_a_listening_face_as_long_as_the_audio(tmp_path):
    """Silent and near-silent (-60 dBFS noise) audio: mouth closed, but blinks, gaze shifts and
    head motion go on, for exactly the audio's length."""
    from facecue.constants import INNER_LIP_MID

    rng = np.random.default_rng(0)
    for name, samples in (("silent", np.zeros(6 * 16000, np.float32)),
                          ("hiss", (rng.normal(0, 0.001, 6 * 16000)).astype(np.float32))):
        wav = write_wav(tmp_path / f"{name}.wav", samples)
        result = generate(asset_path("portrait.png"), wav, tmp_path / f"{name}.mp4", size=128, full=False, seed=1)
        cues = result.cues
        assert result.n_frames == probe_video(tmp_path / f"{name}.mp4").n_frames == 150, name
        upper, lower = INNER_LIP_MID
        gap = cues.normalized[:, lower, 1] - cues.normalized[:, upper, 1]
        assert np.ptp(gap) < 0.01, f"{name}: the mouth stays still (gap range {np.ptp(gap):.4f})"
        assert len(cues.blinks()) >= 1, f"{name}: blinks"
        assert np.ptp(cues.gaze[:, 0, 0]) > 1.0, f"{name}: gaze shifts"
        assert cues.pose_angles[:, 0].std() > 0.2, f"{name}: slow head motion"


def test_default_full_frame_output_is_capped_and_says_so(tmp_path, short_speech):
    import cv2

    big = cv2.resize(read_image(asset_path("portrait.png")), (2400, 2400), interpolation=cv2.INTER_CUBIC)
    portrait = write_image(tmp_path / "big.png", big)
    result = generate(portrait, short_speech, tmp_path / "big.mp4", cue_model="phonetic")
    info = probe_video(tmp_path / "big.mp4")
    assert (info.width, info.height) == (1024, 1024)
    assert "capped at 1024 px" in result.summary()


def test_an_output_that_enlarges_the_portrait_past_3x_or_shows_a_tiny_face_says_so(portrait, portrait_landmarks):
    """The bundled 512 px portrait (61 px between the eye corners): a 256 or 512 px face crop enlarges
    it 1.4x / 2.8x (no note), 1024 px 5.5x; a full frame at its own size 1x, at 2048 px 4x, at 128 px
    its face is 15 px between the eye corners."""
    from facecue.generate import SOFT_ENLARGEMENT, face_scale_note
    from facecue.render import output_transform

    size = (portrait.shape[1], portrait.shape[0])
    assert face_scale_note(size, portrait_landmarks, 256, full=False) is None
    assert face_scale_note(size, portrait_landmarks, 512, full=False) is None
    assert face_scale_note(size, portrait_landmarks, None, full=True) is None
    crop = face_scale_note(size, portrait_landmarks, 1024, full=False)
    assert crop.startswith("the 1024 px face crop enlarges the portrait's face (61 px between the outer eye "
                           "corners) 5.5x")
    assert face_scale_note(size, portrait_landmarks, 2048, full=True).startswith(
        "the 2048x2048 output enlarges the 512x512 portrait 4.0x, so it will look soft")
    # a full frame whose face is under 32 px between the eye corners: --crop is suggested (512 -> 128 px: 15 px)
    assert face_scale_note(size, portrait_landmarks, 128, full=True) == (
        "the face is small in the 128x128 output (15 px between the outer eye corners), so its mouth and eyes get "
        "few pixels (--crop makes a video of the face)")
    assert face_scale_note(size, portrait_landmarks, 128, full=False) is None  # a crop is the face
    # the note's threshold is the similarity's scale: a crop just past it has the note, one just under does not
    unit = np.sqrt(abs(np.linalg.det(output_transform(size, portrait_landmarks, 256, full=False)[0][:, :2]))) / 256
    assert face_scale_note(size, portrait_landmarks, int(SOFT_ENLARGEMENT / unit) - 2, full=False) is None
    assert face_scale_note(size, portrait_landmarks, int(SOFT_ENLARGEMENT / unit) + 2, full=False) is not None


def test_a_small_portrait_s_crop_is_made_and_the_user_told_it_looks_soft(tmp_path, short_speech, portrait):
    import cv2

    small = write_image(tmp_path / "small.png", cv2.resize(portrait, (96, 96), interpolation=cv2.INTER_AREA))
    result = generate(small, short_speech, tmp_path / "small.mp4", full=False, size=256, cue_model="phonetic",
                      workers=0)
    assert probe_video(tmp_path / "small.mp4").width == 256
    assert "the 256 px face crop enlarges the portrait's face" in result.summary()
    assert any("will look soft" in note for note in json.loads((tmp_path / "small.json").read_text())["notes"])


def test_settings_file_replaces_only_facecue_s_own(tmp_path, short_speech):
    out = tmp_path / "talk.mp4"
    generate(asset_path("portrait.png"), short_speech, out, size=128, full=False)
    first = (tmp_path / "talk.json").read_text()
    generate(asset_path("portrait.png"), short_speech, out, size=128, full=False, seed=3)  # a rerun replaces its own
    assert (tmp_path / "talk.json").read_text() != first and '"seed": 3' in (tmp_path / "talk.json").read_text()


def test_network_cues_are_the_same_in_generate_and_cues_from_speech(tmp_path, short_speech, capsys):
    from facecue.assets import bundled_checkpoint

    if bundled_checkpoint() is None:
        pytest.skip("this build bundles no stage-1 checkpoint")
    generate(asset_path("portrait.png"), short_speech, tmp_path / "net.mp4", cue_model="network", emotion="sadness",
             size=128, full=False, seed=4, save_cues=tmp_path / "generate.npz")
    assert main(["cues-from-speech", "--portrait", str(asset_path("portrait.png")), "--audio", str(short_speech),
                 "--emotion", "sad", "--seed", "4", "-o", str(tmp_path / "cli.npz"), "-q"]) == 0
    a, b = FaceCues.load(tmp_path / "generate.npz"), FaceCues.load(tmp_path / "cli.npz")
    assert a.n_frames == b.n_frames
    np.testing.assert_allclose(a.normalized, b.normalized, atol=1e-5)
    np.testing.assert_allclose(a.rotation, b.rotation, atol=1e-5)
    assert len(a.blinks()) == len(b.blinks()) >= 1


def test_render_workers_make_the_same_video(tmp_path, short_speech):
    """Frames rendered (and phones decoded) in worker processes: the same cues and frames as
    everything in this process."""
    from facecue.io import read_video

    here = generate(asset_path("portrait.png"), short_speech, tmp_path / "here.mp4", emotion="happy", size=128,
                    full=False, workers=0)
    there = generate(asset_path("portrait.png"), short_speech, tmp_path / "there.mp4", emotion="happy", size=128,
                     full=False, workers=2)
    assert np.array_equal(here.cues.normalized, there.cues.normalized)
    a, b = read_video(tmp_path / "here.mp4").frames, read_video(tmp_path / "there.mp4").frames
    assert a.shape == b.shape and a.shape[0] == here.n_frames
    assert np.abs(a.astype(int) - b).max() <= 1


def test_wrinkles_change_the_pixels_not_the_cues(tmp_path, short_speech):
    """``--wrinkles`` reaches the renderer, in worker processes too, and leaves stage 1 alone:
    the same cues, a frame drawn with fewer creases."""
    from facecue.io import read_video

    runs = {w: generate(asset_path("portrait.png"), short_speech, tmp_path / f"w{w}.mp4", emotion="angry", size=128,
                        full=False, workers=2, wrinkles=w) for w in (0.0, 1.0)}
    assert np.array_equal(runs[0.0].cues.normalized, runs[1.0].cues.normalized)
    plain, creased = (read_video(tmp_path / f"w{w}.mp4").frames.astype(np.float64) for w in (0.0, 1.0))
    assert np.abs(plain - creased).mean() > 0.5
    assert runs[0.0].cues.meta["config"]["wrinkles"] == 0.0


def test_render_of_generates_cues_draws_the_same_video(tmp_path, short_speech, capsys):
    """Stage 2 alone on the cues generate saved, same portrait and framing: the same frames as
    generate's, the emotion's wrinkles and bared teeth included (cues made from speech say their
    emotion and wrinkle strength); ``--wrinkles`` overrides the strength they were made with."""
    from facecue.io import read_video

    portrait = asset_path("portrait.png")
    made = generate(portrait, short_speech, tmp_path / "made.mp4", emotion="neutral@0,angry@1", wrinkles=0.5,
                    size=128, full=False, workers=0, save_cues=tmp_path / "made.npz")
    common = ["render", "--portrait", str(portrait), "--cues", str(tmp_path / "made.npz"), "--crop", "--size", "128",
              "-q"]
    assert main([*common, "-o", str(tmp_path / "again.mp4")]) == 0
    assert "emotion neutral@0,angry@1" in capsys.readouterr().out
    frames = {name: read_video(tmp_path / f"{name}.mp4", with_audio=False).frames.astype(np.int16)
              for name in ("made", "again")}
    assert frames["made"].shape[0] == made.n_frames and np.array_equal(frames["made"], frames["again"])
    assert main([*common, "--wrinkles", "1", "-o", str(tmp_path / "creased.mp4")]) == 0
    creased = read_video(tmp_path / "creased.mp4", with_audio=False).frames.astype(np.int16)
    angry = slice(made.n_frames // 2, None)  # after the change to anger: deeper creases
    assert np.abs(creased[angry] - frames["made"][angry]).mean() > 0.3
    assert np.array_equal(creased[:5], frames["made"][:5])  # neutral: no wrinkles at any strength


def test_render_of_generates_scaled_full_frame_cues_draws_the_same_face(tmp_path, short_speech):
    """``generate --full --size`` makes its cues on the portrait scaled to the output size; render
    on the original portrait scales it the same way instead of taking the cues for another face's
    and retargeting them (mean difference 3.2 levels before, on a 384 px angry clip)."""
    from facecue.io import read_video

    portrait = asset_path("portrait.png")  # 512 x 512
    made = generate(portrait, short_speech, tmp_path / "made.mp4", emotion="angry", size=160, full=True, workers=0,
                    save_cues=tmp_path / "made.npz")
    assert tuple(made.cues.image_size) == (160, 160)
    assert main(["render", "--portrait", str(portrait), "--cues", str(tmp_path / "made.npz"), "--full", "--size", "160",
                 "-q", "-o", str(tmp_path / "again.mp4")]) == 0
    made_frames, again = (read_video(tmp_path / f"{name}.mp4", with_audio=False).frames.astype(np.int16)
                          for name in ("made", "again"))
    assert made_frames.shape == again.shape
    assert np.abs(made_frames - again).mean() < 0.5
