"""Stage 1: the model (streaming = training computation), overfitting, long audio, the inference
API and CLI, and the collaborative emotion classifier. All on data the tests make themselves."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import facecue
from facecue import io
from facecue.audio import loudness_envelope, mel_frames, n_video_frames
from facecue.cli import main
from facecue.constants import EMOTIONS, SAMPLE_RATE
from facecue.cues import FaceCues, rotation_to_angles
from facecue.data import load_cache, load_clip, synthesize_cache, synthetic_audio
from facecue.errors import CheckpointError, InputError
from facecue.stage1 import (
    ClassifierConfig,
    ClassifierTask,
    Stage1Config,
    Stage1Model,
    Stage1Task,
    classify_emotion,
    evaluate_teacher_forced,
    load_stage1,
    model_size,
    speech_to_cues,
)
from facecue.train import load_config, read_log, train

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "stage1_tiny.yaml"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def synthetic_cache(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("synthetic_cache")
    synthesize_cache(cache, speakers=("S01", "S02", "S03"), seconds=4.0, seed=3)
    return cache


def tiny_config(cache: Path, out: Path, *overrides: str) -> Stage1Config:
    return load_config(Stage1Config, TINY, [f"data.cache={cache}", f"train.out_dir={out}", *overrides])


@pytest.fixture(scope="module")
def stage1_checkpoint(synthetic_cache, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("stage1_run")
    return train(Stage1Task(tiny_config(synthetic_cache, out, "train.steps=300")), progress=False)


@pytest.fixture(scope="module")
def classifier_checkpoint(synthetic_cache, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("classifier_run")
    cfg = load_config(ClassifierConfig, REPO / "configs" / "classifier_default.yaml", [
        f"data.cache={synthetic_cache}", "data.held_out_speakers=[S03]", "data.window=32", "train.steps=300",
        "train.checkpoint_every=1000", f"train.out_dir={out}"])
    return train(ClassifierTask(cfg), progress=False)


@pytest.fixture(scope="module")
def portrait_cues(synthetic_cache) -> FaceCues:
    return load_clip(synthetic_cache / "clips" / "S01_neutral_000.npz").cues.slice(0, 1)


def test_default_model_is_small():
    model = Stage1Model(Stage1Config().model)
    params, nbytes = model_size(model)
    assert params < 3_000_000 and nbytes < 15e6, (params, nbytes)
    assert Stage1Config().model.audio_margin == 5  # frame t sees +-0.2 s of audio


def _random_tiny_model(cfg: Stage1Config, clips) -> Stage1Model:
    torch.manual_seed(0)
    model = Stage1Model(cfg.model)
    model.fit_statistics(clips)
    with torch.no_grad():  # non-zero heads and modulations so every path matters
        for p in model.parameters():
            if p.dim() >= 1 and p.abs().sum() == 0:
                p.normal_(0, 0.1)
    return model.eval()


def test_streaming_generation_is_the_training_computation(synthetic_cache, tmp_path):
    """Frame-by-frame generation (KV cache of `context` tokens, audio encoded in chunks) gives,
    at every frame, what the parallel teacher-forced pass predicts from the same inputs - past
    the context length and across chunk seams."""
    cfg = tiny_config(synthetic_cache, tmp_path, "model.context=8")
    clips = load_cache(synthetic_cache)
    model = _random_tiny_model(cfg, clips)
    clip = clips[0]
    n = 70
    init = (clip.expression[0].astype(np.float32), clip.pose[0], clip.gaze[0])
    args = (clip.mel[:n].astype(np.float32), clip.loudness[:n], 5, 0.7, clip.identity, init)
    out = model.generate(*args, temperature=0, chunk=13)
    whole = model.generate(*args, temperature=0, chunk=10_000)
    np.testing.assert_allclose(out["expression"], whole["expression"], atol=1e-5)
    m = model.audio_margin
    mel = np.full((n + 2 * m, *clip.mel.shape[1:]), -10.0, np.float32)
    mel[m : m + n] = clip.mel[:n]
    loud = np.zeros(n + 2 * m, np.float32)
    loud[m : m + n] = clip.loudness[:n]
    with torch.no_grad():
        coeffs = torch.from_numpy(out["coeffs"])[None]
        pose = model.normalize_pose(torch.from_numpy(out["pose"]))[None]
        bins = torch.from_numpy(out["gaze_bins"])[None]
        prev_c = torch.cat([model.encode_expression(torch.from_numpy(init[0]))[None, None], coeffs[:, :-1]], 1)
        prev_p = torch.cat([model.normalize_pose(torch.from_numpy(init[1]))[None, None], pose[:, :-1]], 1)
        prev_b = torch.cat([model.gaze_to_bin(torch.from_numpy(init[2]))[None, None], bins[:, :-1]], 1)
        ref = model(torch.from_numpy(mel)[None], torch.from_numpy(loud)[None], prev_c, prev_p, prev_b,
                    torch.tensor([5]), torch.tensor([0.7]), torch.from_numpy(clip.identity)[None])
    assert coeffs.abs().max() > 0.1  # the check is not vacuous
    torch.testing.assert_close(ref["coeffs"], coeffs, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ref["pose"], pose, atol=1e-4, rtol=1e-4)
    assert torch.equal(ref["gaze_logits"].argmax(-1), bins)


def test_overfits_a_tiny_set(synthetic_cache, tmp_path):
    """Two clips of one speaker: teacher-forced landmark error falls below 10% of its initial value."""
    clips = [c for c in load_cache(synthetic_cache) if c.speaker == "S01" and EMOTIONS[c.emotion] in ("happy", "sad")]
    cfg = tiny_config(synthetic_cache, tmp_path, "train.steps=400", "train.lr=3e-3", "train.warmup_steps=20",
                      "loss.scheduled_sampling=0.0", "model.d_model=48", "train.checkpoint_every=1000")
    task = Stage1Task(cfg, clips)
    torch.manual_seed(cfg.train.seed)
    before = evaluate_teacher_forced(task.build_model(None), clips, cfg.data.window)
    final = train(task, progress=False)
    after = evaluate_teacher_forced(load_stage1(final), clips, cfg.data.window)
    assert after["landmark_l1"] < 0.1 * before["landmark_l1"], (before, after)
    assert after["lip_l1"] < 0.1 * before["lip_l1"]


def test_long_audio_has_no_seams(stage1_checkpoint, synthetic_cache):
    """40 s of audio generated with the audio encoded in 100-frame chunks equals the unchunked
    generation: at every chunk seam (and where the decoder's context fills up) the frame-to-frame
    landmark step is the step the continuous computation makes there, so a seam adds no jump.

    (The issue's statistic "largest step at a seam <= 2x the median step" is reported but not
    asserted: with speech-driven mouths the step distribution is heavy-tailed - about 1 frame in
    4 exceeds 2x the median at syllable onsets - so it measures where seams fall, not seams.)"""
    model = load_stage1(stage1_checkpoint)
    audio, _ = synthetic_audio(40.0, np.random.default_rng(7))
    n = n_video_frames(len(audio), 25)
    mel, loud = mel_frames(audio, 25, n), loudness_envelope(audio, 25, n)
    identity = load_cache(synthetic_cache)[0].identity
    init = (np.zeros((468, 3), np.float32), np.zeros(6, np.float32), np.zeros(2, np.float32))
    for temperature in (0.0, 1.0):
        chunked = model.generate(mel, loud, 5, 1.0, identity, init, temperature=temperature, seed=1, chunk=100)
        whole = model.generate(mel, loud, 5, 1.0, identity, init, temperature=temperature, seed=1, chunk=10**6)
        np.testing.assert_allclose(chunked["expression"], whole["expression"], atol=1e-4)
        np.testing.assert_allclose(chunked["pose"], whole["pose"], atol=1e-3)
        np.testing.assert_array_equal(chunked["gaze_bins"], whole["gaze_bins"])
        step = np.abs(np.diff(chunked["expression"], axis=0)).mean(axis=(1, 2))  # step[t - 1]: frame t-1 -> t
        reference = np.abs(np.diff(whole["expression"], axis=0)).mean(axis=(1, 2))
        seams = np.array([*range(100, n, 100), model.cfg.context]) - 1
        assert step.max() > 1e-4  # it moves
        np.testing.assert_allclose(step[seams], reference[seams], atol=2e-6)
        print(f"T={temperature}: largest seam step / median step = {step[seams].max() / np.median(step):.2f}; "
              f"frames over 2x median: {(step > 2 * np.median(step)).mean():.0%}")


def test_speech_to_cues_api(stage1_checkpoint, portrait_cues, tmp_path):
    rng = np.random.default_rng(1)
    audio, _ = synthetic_audio(2.5, rng)
    cues = facecue.speech_to_cues(audio, "Happy", 0.8, portrait_cues, seed=3, checkpoint=stage1_checkpoint)
    assert isinstance(cues, FaceCues) and cues.fps == 25 and cues.n_frames == n_video_frames(len(audio), 25) == 63
    assert cues.image_size == portrait_cues.image_size and cues.meta["emotion"] == "happy"
    np.testing.assert_allclose(cues.identity, portrait_cues.identity)
    # anchored on the portrait: the first frames sit near its pose and size
    angles = rotation_to_angles(cues.rotation)
    assert np.abs(angles[0] - rotation_to_angles(portrait_cues.rotation[0])).max() < 5
    assert abs(cues.scale[0] / portrait_cues.scale[0] - 1) < 0.05
    # seeds and temperature
    again = speech_to_cues(audio, "happy", 0.8, portrait_cues, seed=3, checkpoint=stage1_checkpoint)
    other = speech_to_cues(audio, "happy", 0.8, portrait_cues, seed=4, checkpoint=stage1_checkpoint)
    np.testing.assert_array_equal(cues.normalized, again.normalized)
    assert not np.array_equal(cues.gaze, other.gaze)
    cold = [speech_to_cues(audio, "happy", 0.8, portrait_cues, seed=s, checkpoint=stage1_checkpoint, temperature=0) for s in (1, 2)]
    np.testing.assert_array_equal(cold[0].normalized, cold[1].normalized)
    # a file path works the same as the samples; a half frame rounds up
    wav = io.write_wav(tmp_path / "speech.wav", audio[: SAMPLE_RATE // 2])
    short = speech_to_cues(wav, "sad", 0.5, portrait_cues, checkpoint=stage1_checkpoint)
    assert short.n_frames == 13
    # the mouth follows the audio: lips open more in loud frames than in silent ones
    loud = loudness_envelope(audio, 25, cues.n_frames)
    gap = cues.normalized[:, 14, 1] - cues.normalized[:, 13, 1]
    assert gap[loud > np.percentile(loud, 75)].mean() > gap[loud < np.percentile(loud, 25)].mean()


def test_speech_to_cues_bad_input(stage1_checkpoint, classifier_checkpoint, portrait_cues, tmp_path, monkeypatch):
    import facecue.assets

    audio = np.zeros(SAMPLE_RATE, np.float32)
    with pytest.raises(InputError, match="choose one of: neutral, angry"):
        speech_to_cues(audio, "elated", 0.5, portrait_cues, checkpoint=stage1_checkpoint)
    with pytest.raises(InputError, match="within 0..1"):
        speech_to_cues(audio, "happy", 1.5, portrait_cues, checkpoint=stage1_checkpoint)
    with monkeypatch.context() as patch:
        patch.setattr(facecue.assets, "bundled_checkpoint", lambda: None)
        with pytest.raises(InputError, match="no stage-1 checkpoint is bundled"):
            speech_to_cues(audio, "happy", 0.5, portrait_cues)
    with pytest.raises(CheckpointError, match="kind 'facecue.emotion_classifier'"):
        speech_to_cues(audio, "happy", 0.5, portrait_cues, checkpoint=classifier_checkpoint)
    with pytest.raises(InputError, match="FaceCues"):
        speech_to_cues(audio, "happy", 0.5, "portrait.png", checkpoint=stage1_checkpoint)


def test_cli_cues_from_speech(stage1_checkpoint, classifier_checkpoint, portrait_cues, tmp_path, capsys):
    audio, _ = synthetic_audio(1.0, np.random.default_rng(2))
    wav = io.write_wav(tmp_path / "a.wav", audio)
    portrait = portrait_cues.save(tmp_path / "portrait.npz")
    out, preview = tmp_path / "cues.npz", tmp_path / "preview.mp4"
    base = ["cues-from-speech", "--audio", str(wav), "--portrait", str(portrait), "-o", str(out), "-q"]
    assert main(base + ["--emotion", "angry", "--intensity", "0.5", "--checkpoint", str(stage1_checkpoint),
                        "--preview", str(preview)]) == 0
    cues = FaceCues.load(out)
    assert cues.n_frames == 25 and cues.meta["emotion"] == "angry"
    assert io.probe_video(preview).n_frames == 25 and io.probe_video(preview).has_audio
    # the motion controls generate has (one set of rules): still head, still lips, no blinks
    still = tmp_path / "still.npz"
    assert main(base[:-3] + ["-o", str(still), "-q", "--emotion", "angry", "--checkpoint", str(stage1_checkpoint),
                             "--pose-scale", "0", "--mouth-scale", "0", "--blink-rate", "0"]) == 0
    still_cues = FaceCues.load(still)
    lip_gap = still_cues.normalized[:, 14, 1] - still_cues.normalized[:, 13, 1]
    assert np.ptp(lip_gap) < 1e-4 and np.ptp(still_cues.pose_angles, axis=0).max() < 1e-3
    assert still_cues.blinks() == []
    capsys.readouterr()

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(Path(stage1_checkpoint).read_bytes()[:4096])
    cases = [
        (["--emotion", "joy", "--checkpoint", str(stage1_checkpoint)], "choose one of: neutral, angry, contempt"),
        (["--emotion", "sad", "--intensity", "2", "--checkpoint", str(stage1_checkpoint)], "within 0..1"),
        (["--emotion", "sad", "--mouth-scale", "9", "--checkpoint", str(stage1_checkpoint)], "mouth scale"),
        (["--emotion", "sad", "--gaze", "left", "--checkpoint", str(stage1_checkpoint)], "gaze"),
        (["--emotion", "sad", "--checkpoint", str(classifier_checkpoint)], "expected 'facecue.stage1'"),
        (["--emotion", "sad", "--checkpoint", str(corrupt)], "corrupt"),
        (["--emotion", "sad", "--checkpoint", str(tmp_path / "none.pt")], "not found"),
    ]
    for extra, message in cases:
        assert main(base + extra) == 2, extra
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("facecue: error:") and message in err, err


def test_cli_without_any_checkpoint(monkeypatch, portrait_path, tmp_path, capsys):
    import facecue.assets

    monkeypatch.setattr(facecue.assets, "bundled_checkpoint", lambda: None)
    audio, _ = synthetic_audio(0.6, np.random.default_rng(4))
    wav = io.write_wav(tmp_path / "a.wav", audio)
    code = main(["cues-from-speech", "--audio", str(wav), "--emotion", "sad", "--portrait", str(portrait_path),
                 "-o", str(tmp_path / "c.npz"), "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--checkpoint is required" in err and len(err.splitlines()) == 1


def test_cli_with_a_portrait_image(stage1_checkpoint, portrait_path, tmp_path):
    audio, _ = synthetic_audio(0.6, np.random.default_rng(3))
    wav = io.write_wav(tmp_path / "a.wav", audio)
    out, preview = tmp_path / "cues.npz", tmp_path / "preview.mp4"
    assert main(["cues-from-speech", "--audio", str(wav), "--emotion", "surprised", "--portrait", str(portrait_path),
                 "--checkpoint", str(stage1_checkpoint), "-o", str(out), "--preview", str(preview), "-q"]) == 0
    cues = FaceCues.load(out)
    points = cues.landmarks()
    width, height = cues.image_size
    assert cues.n_frames == 15 and io.probe_video(preview).width == width
    assert (points[..., 0] > 0).all() and (points[..., 0] < width).all() and (points[..., 1] < height).all()


def test_classifier_and_emotion_loss(classifier_checkpoint, synthetic_cache, tmp_path):
    # classify_emotion on cue sequences of a speaker the classifier never saw, expression measured
    # from the speaker's neutral shape (as the classifier was trained)
    files = sorted((synthetic_cache / "clips").glob("S03_*.npz"))
    neutral = next(c for c in load_cache(synthetic_cache) if c.clip_id == "S03_neutral_000").identity
    held_out = [dataclasses.replace(load_clip(p).cues, identity=neutral) for p in files]
    labels = [EMOTIONS.index(p.stem.split("_")[1]) for p in files]
    probs = classify_emotion(classifier_checkpoint, held_out)
    assert probs.shape == (8, 8) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert (probs.argmax(1) == labels).mean() >= 0.75, probs.argmax(1)
    assert classify_emotion(classifier_checkpoint, held_out[0]).shape == (8,)
    with pytest.raises(CheckpointError):
        classify_emotion(tmp_path / "missing.pt", held_out[0])
    # stage 1 trains with the frozen classifier's loss on its soft outputs
    cfg = tiny_config(synthetic_cache, tmp_path / "emo", "train.steps=6", "train.log_every=2",
                      f"loss.classifier={classifier_checkpoint}", "loss.emotion=0.5")
    task = Stage1Task(cfg)
    before = [p.clone() for p in task.classifier.parameters()]
    train(task, progress=False)
    rows = read_log(tmp_path / "emo")
    assert all("emotion" in r and np.isfinite(r["emotion"]) for r in rows)
    assert all(torch.equal(a, b) for a, b in zip(before, task.classifier.parameters()))  # frozen


def test_config_roundtrip_through_checkpoint(stage1_checkpoint):
    data = torch.load(stage1_checkpoint, weights_only=True)
    assert data["kind"] == "facecue.stage1" and data["version"] == 1
    assert data["extra"]["held_out_speakers"] == ["S03"] and data["extra"]["emotions"] == list(EMOTIONS)
    model = load_stage1(stage1_checkpoint)
    assert model.n_components == 8 and dataclasses.asdict(model.cfg)["context"] == 16


def test_network_mouth_gain_scales_the_speech_not_the_emotions_mouth(portrait_cues):
    """The network's lower-face movement is scaled around the emotion's own closed-lip mouth
    (width, corners, raised lip), so a bigger mouth gain opens the speech more without doubling
    the emotion's mouth shape."""
    from facecue.phonetic import emotion_weights
    from facecue.stage1 import emotion_rest, scale_mouth
    from facecue.motion import open_mouth

    identity = portrait_cues.normalized[0].astype(np.float64)
    weights = emotion_weights("happy", 4, 25.0)
    rest = emotion_rest(identity, weights, 1.0)
    speech = open_mouth(rest, np.array([0.0, 0.05, 0.1, 0.0]))
    cues = dataclasses.replace(portrait_cues.slice(0, 1), normalized=speech.astype(np.float32)[:1], identity=identity.astype(np.float32))
    scaled = scale_mouth(dataclasses.replace(cues, normalized=speech.astype(np.float32)[:1]), 2.0, rest[:1])
    np.testing.assert_allclose(scaled.normalized[0], rest[0], atol=1e-5)  # a closed mouth stays the emotion's mouth
    open_frame = dataclasses.replace(cues, normalized=speech.astype(np.float32)[2:3])
    gap = lambda n: n[..., 14, 1] - n[..., 13, 1]  # noqa: E731
    doubled = scale_mouth(open_frame, 2.0, rest[2:3]).normalized
    assert gap(doubled)[0] - gap(rest[2]) == pytest.approx(2 * (gap(speech[2]) - gap(rest[2])), rel=0.05)
    width = lambda n: n[..., 291, 0] - n[..., 61, 0]  # noqa: E731
    old_way = scale_mouth(dataclasses.replace(cues, normalized=rest.astype(np.float32)[:1]), 2.0).normalized
    assert abs(width(old_way)[0] - width(identity)) > abs(width(rest[0]) - width(identity)) + 0.02  # the old scaling doubled the smile


def test_network_path_follows_the_action_shapes_set_now(portrait_cues):
    """The network path draws the ``EMOTION_ACTIONS`` set at inference whatever its teacher had:
    with fear's taken away, the bundled network's fear mouth is narrower by twice the lip stretch,
    scaled to the face (its mouth gain does not pull the corners toward a stretched rest);
    emotions without actions are unchanged."""
    import facecue.phonetic as phonetic
    from facecue.cli import asset_path
    from facecue.phonetic import expression_scale
    from facecue.stage1 import network_cues

    audio = io.read_audio(asset_path("speech.wav"))[: SAMPLE_RATE * 2]
    width = lambda cues: cues.normalized[:, 291, 0] - cues.normalized[:, 61, 0]  # noqa: E731
    saved = phonetic.emotion_settings()
    stretch = saved["actions"]["fear"]["lip_stretch"]
    with_actions = {e: network_cues(audio, portrait_cues, e, 1.0, seed=3) for e in ("fear", "sad")}
    try:
        phonetic.restore_emotion_settings({**saved, "actions": {}})
        without = {e: network_cues(audio, portrait_cues, e, 1.0, seed=3) for e in ("fear", "sad")}
    finally:
        phonetic.restore_emotion_settings(saved)
    np.testing.assert_allclose(with_actions["sad"].normalized, without["sad"].normalized)
    ratio = expression_scale(with_actions["fear"].identity)
    np.testing.assert_allclose(width(with_actions["fear"]) - width(without["fear"]), 2 * stretch * ratio, rtol=0.03)


def test_network_path_widens_the_mouth_by_what_its_teacher_did_not(portrait_cues):
    """The bundled network's teacher had no speech widening (its record has none); the network path
    adds ``SPEECH_WIDENING`` x each frame's gap to its mouth width, and nothing when it is 0. (The
    portrait's lips are closed first: parted, its rest shape is narrowed by the same amount.)"""
    import facecue.phonetic as phonetic
    from facecue.cli import asset_path
    from facecue.phonetic import REST_LIP_GAP, closed_mouth
    from facecue.stage1 import load_stage1, network_cues, stage1_checkpoint

    closed = closed_mouth(portrait_cues.normalized).astype(np.float32)
    portrait_cues = dataclasses.replace(portrait_cues, normalized=closed)

    assert load_stage1(stage1_checkpoint()).teacher_expression["speech_widening"] == 0.0
    audio = io.read_audio(asset_path("speech.wav"))[: SAMPLE_RATE * 2]
    width = lambda cues: cues.normalized[:, 291, 0] - cues.normalized[:, 61, 0]  # noqa: E731
    saved = phonetic.emotion_settings()
    widened = network_cues(audio, portrait_cues, "neutral", 1.0, seed=3)
    try:
        phonetic.restore_emotion_settings({**saved, "speech_widening": 0.0})
        plain = network_cues(audio, portrait_cues, "neutral", 1.0, seed=3)
    finally:
        phonetic.restore_emotion_settings(saved)
    assert phonetic.emotion_settings() == saved
    gap = plain.normalized[:, 14, 1] - plain.normalized[:, 13, 1] - REST_LIP_GAP
    assert gap.max() > 0.05
    np.testing.assert_allclose(width(widened) - width(plain), saved["speech_widening"] * np.clip(gap, 0, None),
                               atol=2e-3)


def test_action_shapes_the_network_learnt_are_not_added_twice(portrait_cues):
    """``add_expression_changes`` adds the action shapes set now less those the network's
    teacher had: none when it learnt them all, all when it learnt none, the difference when an
    amount changed since."""
    import facecue.phonetic as phonetic
    from facecue.phonetic import emotion_weights, expression_scale
    from facecue.stage1 import add_expression_changes

    cues = portrait_cues.slice(0, 1)
    weights = emotion_weights("fear", 1, 25.0)
    current = phonetic.emotion_settings()["actions"]
    stretch = current["fear"]["lip_stretch"]
    width = lambda c: float(c.normalized[0, 291, 0] - c.normalized[0, 61, 0])  # noqa: E731
    ratio = expression_scale(cues.identity)
    learnt_all = add_expression_changes(cues, weights, 1.0, {"actions": current})
    np.testing.assert_array_equal(learnt_all.normalized, cues.normalized)

    def widened(learnt: dict) -> float:
        return width(add_expression_changes(cues, weights, 1.0, {"actions": learnt})) - width(cues)

    assert widened({}) == pytest.approx(2 * stretch * ratio, rel=0.03)
    assert widened({**current, "fear": {**current["fear"], "lip_stretch": stretch / 2}}) == pytest.approx(
        stretch * ratio, rel=0.03)


def test_brow_emphasis_changed_since_the_teacher_reaches_the_network(portrait_cues):
    """A brow emphasis changed since the network's teacher reaches the network path: with a
    teacher whose sad brows moved half as far as the settings set now, the network's sad brows
    move by the difference (the inner brows up), scaled to the face; lips and lids stay, and an
    emotion whose settings did not change is drawn as the network drew it."""
    import facecue.phonetic as phonetic
    from facecue.phonetic import emotion_weights, expression_offsets, expression_scale
    from facecue.stage1 import add_expression_changes

    cues = portrait_cues.slice(0, 1)
    current = phonetic.emotion_settings()
    now = current["emphasis"].get("sad", {}).get("brows", 1.0)
    teacher = {**current, "emphasis": {**current["emphasis"], "sad": {**current["emphasis"].get("sad", {}),
                                                                      "brows": now / 2}}}
    sad = EMOTIONS.index("sad")
    expected = (expression_offsets() - expression_offsets(teacher))[sad] * expression_scale(cues.identity)
    changed = add_expression_changes(cues, emotion_weights("sad", 1, 25.0), 1.0, teacher)
    moved = changed.normalized[0] - cues.normalized[0]
    np.testing.assert_allclose(moved, expected, atol=1e-6)
    inner_brows = [55, 285]  # MediaPipe's inner brow ends: raised (y points down)
    assert (moved[inner_brows, 1] < -0.002).all()
    assert np.abs(moved[[13, 14, 61, 291, 159, 145, 386, 374]]).max() == 0.0  # lips and lids stay
    np.testing.assert_allclose(changed.aperture, cues.aperture, atol=1e-6)  # re-measured: the eyes did not move
    unchanged = add_expression_changes(cues, emotion_weights("happy", 1, 25.0), 1.0, teacher)
    np.testing.assert_array_equal(unchanged.normalized, cues.normalized)


def test_checkpoints_record_what_their_teacher_drew(tmp_path):
    """A teacher cache's settings (``teacher.json``, written by scripts/make_teacher_data.py) are
    read back for the trainer's checkpoint; checkpoints without the record learnt no action
    shapes; a broken file is a one-line input error."""
    import json

    from facecue.stage1 import TEACHER_FILE, read_teacher_settings, teacher_actions

    assert read_teacher_settings(tmp_path) == {}
    settings = {"actions": {"fear": {"lip_stretch": 0.04}}, "gains": {"brows": 2.5}, "priors_version": 3}
    (tmp_path / TEACHER_FILE).write_text(json.dumps(settings))
    assert read_teacher_settings(tmp_path) == settings == read_teacher_settings(tmp_path / TEACHER_FILE)
    assert teacher_actions({"extra": {"teacher": settings}}) == {"fear": {"lip_stretch": 0.04}}
    assert teacher_actions({"extra": {}}) == {} and teacher_actions({}) == {}
    (tmp_path / TEACHER_FILE).write_text("{not json")
    with pytest.raises(InputError, match=TEACHER_FILE):
        read_teacher_settings(tmp_path)


def test_the_bundled_network_learnt_the_current_teacher():
    """The bundled network imitates the phonetic teacher as it was when it was trained (its
    checkpoint records the teacher's settings). A change to the teacher's priors or to what its
    emotions do while speaking (the ``lower`` and ``jaw`` emphasis: opening shapes, held jaw)
    does not reach it without a retraining (the previous network went stale for several changes
    unnoticed); the expression's region gains, brow and eye emphasis and action shapes are
    exempt, the network path adds their changes (``stage1.add_expression_changes``)."""
    import facecue.phonetic as phonetic
    from facecue.cli import asset_path

    data = torch.load(asset_path("stage1.pt"), weights_only=True)
    teacher = data.get("extra", {}).get("teacher", {})
    current = phonetic.emotion_settings()
    how = ("retrain it: scripts/make_teacher_data.py, then facecue train stage1 and scripts/export_stage1.py "
           "(configs/stage1_bundled.yaml)")
    assert teacher.get("priors_version") == phonetic.PRIORS_VERSION, how

    def speaking(emphasis: dict) -> dict:  # the factors that act on speech, not on the held expression
        return {e: {k: v for k, v in f.items() if k in ("lower", "jaw")} for e, f in emphasis.items()
                if any(k in ("lower", "jaw") for k in f)}

    assert speaking(teacher.get("emphasis", {})) == speaking(current["emphasis"]), how


def test_network_head_and_gaze_are_moved_onto_the_teachers_means():
    """Known answers: a head parked 5 degrees rolled and 6 pitched is brought to the teacher's mean
    for each emotion of a schedule, its motion around the mean kept exactly; the eyes' target goes
    to the portrait's gaze plus the teacher's gaze offset."""
    from facecue.phonetic import emotion_weights, load_priors
    from facecue.stage1 import teacher_head_and_gaze

    priors = load_priors()
    n, fps = 200, 25.0
    t = np.arange(n) / fps
    wave = np.sin(2 * np.pi * 0.3 * t)
    head = np.stack([0.1 * wave, 6.0 + 0.2 * wave, 5.0 + 3.0 * wave], axis=1)
    target = np.stack([-7.0 + 0.5 * wave, 9.0 + 0.0 * wave], axis=1)
    portrait_gaze = np.array([2.0, -1.0])
    weights = emotion_weights("happy", n, fps)  # happy: the teacher's pose and gaze offsets are not zero
    new_head, new_target = teacher_head_and_gaze(head, target, weights, 0.5, portrait_gaze)
    neutral, happy = EMOTIONS.index("neutral"), EMOTIONS.index("happy")
    assert np.abs(priors.pose_mean[happy]).max() > 1.0 and np.abs(priors.gaze_mean[happy]).max() > 1.0
    np.testing.assert_allclose(new_head.mean(axis=0), priors.pose_mean[happy] * 0.5, atol=1e-6)
    np.testing.assert_allclose(new_head - new_head.mean(axis=0), head - head.mean(axis=0), atol=1e-9)
    np.testing.assert_allclose(new_target.mean(axis=0), portrait_gaze + priors.gaze_mean[happy] * 0.5, atol=1e-6)
    np.testing.assert_allclose(new_target - new_target.mean(axis=0), target - target.mean(axis=0), atol=1e-9)

    schedule = emotion_weights([(0.0, "neutral"), (4.0, "happy")], n, fps)
    assert schedule[:80, neutral].min() > 0.99 and schedule[-80:, happy].min() > 0.99
    new_head, _ = teacher_head_and_gaze(head, target, schedule, 1.0, portrait_gaze)
    np.testing.assert_allclose(new_head[:80].mean(axis=0), priors.pose_mean[neutral], atol=0.6)
    np.testing.assert_allclose(new_head[-80:].mean(axis=0), priors.pose_mean[happy], atol=0.6)


def test_network_mouth_rests_in_the_pauses_of_a_noisy_recording(portrait_cues):
    """A 1.5 s pause under steady hiss 30 dB below the speech: the network's mouth rests there as
    in the clean recording (before, its angry mouth stood 0.02-0.05 open in it, clean or noisy);
    the speech around it still opens the mouth."""
    from facecue.audio import loudness_envelope
    from facecue.cli import asset_path
    from facecue.constants import INNER_LIP_MID
    from facecue.stage1 import network_cues

    speech = io.read_audio(asset_path("speech.wav"))[: SAMPLE_RATE * 4]
    audio = np.concatenate([speech, np.zeros(int(SAMPLE_RATE * 1.5), np.float32), speech])
    rms = loudness_envelope(audio, 25)
    hiss = np.random.default_rng(0).standard_normal(len(audio)) * np.percentile(rms[rms > 0], 95) * 10 ** (-30 / 20)
    pause = slice(100 + 8, 137 - 8)  # the inserted pause (frames 100-137), away from its edges
    for recording in (audio, (audio + hiss).astype(np.float32)):
        cues = network_cues(recording, portrait_cues, "angry", 1.0, seed=3)
        gap = cues.normalized[:, INNER_LIP_MID[1], 1] - cues.normalized[:, INNER_LIP_MID[0], 1]
        assert gap[pause].max() < 0.015, "the mouth rests in the pause"
        assert np.percentile(gap[:100], 90) > 0.1, "and speaks around it"


def test_network_path_holds_the_head_where_its_teacher_does(portrait_cues):
    """With the bundled network, the head's mean offset from the portrait is the teacher's for the
    emotion (not the network's drift); a head copied from a reference (``pose_angles``) is left as
    given."""
    from facecue.cli import asset_path
    from facecue.phonetic import CueControls, load_priors
    from facecue.stage1 import network_cues

    priors = load_priors()
    audio = io.read_audio(asset_path("speech.wav"))[: SAMPLE_RATE * 4]
    angles0 = rotation_to_angles(portrait_cues.rotation[0])
    for emotion in ("neutral", "happy"):
        cues = network_cues(audio, portrait_cues, emotion, 1.0, seed=3)
        head = rotation_to_angles(cues.rotation) - angles0[None]
        np.testing.assert_allclose(head.mean(axis=0), priors.pose_mean[EMOTIONS.index(emotion)], atol=0.05)
    copied = np.tile([[4.0, -3.0, 2.0]], (len(cues.rotation), 1))
    cues = network_cues(audio, portrait_cues, "happy", 1.0, seed=3, controls=CueControls(pose_angles=copied))
    np.testing.assert_allclose(rotation_to_angles(cues.rotation) - angles0[None], copied, atol=1e-3)
