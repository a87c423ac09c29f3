"""The neural stage 2: frame cache, keypoint generator, mapper, the "neural" renderer."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from facecue.errors import CheckpointError, InputError
from facecue.neural import (
    FrameClip,
    FramePairs,
    GeneratorConfig,
    KeypointGenerator,
    MapperConfig,
    MapperTask,
    RandomTPS,
    RendererConfig,
    RendererTask,
    load_frame_cache,
    load_frame_clip,
    load_generator,
    load_mapper,
    normalize_landmarks,
    reenact_heldout,
    save_frame_clip,
)
from facecue.train import load_config, read_log, save_checkpoint, train

REPO = Path(__file__).resolve().parents[1]
RENDERER_TINY = REPO / "configs" / "renderer_tiny.yaml"
MAPPER_TINY = REPO / "configs" / "mapper_tiny.yaml"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def synthetic_clip(n_frames: int = 8, size: int = 64, seed: int = 0, clip_id: str = "synthetic",
                   holdout: int = 0) -> FrameClip:
    """A cartoon talking face: textured background, a skin ellipse that drifts a few pixels,
    two eyes and a mouth that opens and closes. Landmarks: a fixed random cloud that moves with
    the face (enough for the renderer's plumbing, not a real mesh)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    background = np.stack([80 + 60 * xx / size, 90 + 40 * yy / size, 120 + 0 * xx], -1)
    background += 10 * np.sin(xx / 3.0 + rng.uniform(0, 6))[..., None] * np.cos(yy / 4.0)[..., None]
    base = rng.uniform(-0.3, 0.3, (478, 2)).astype(np.float32)
    frames, landmarks = [], []
    for t in range(n_frames):
        phase = 2 * np.pi * t / n_frames
        cx, cy = size * (0.5 + 0.06 * np.sin(phase)), size * (0.5 + 0.04 * np.cos(phase))
        img = background.copy()
        face = ((xx - cx) / (0.28 * size)) ** 2 + ((yy - cy) / (0.36 * size)) ** 2 < 1
        img[face] = (205, 160, 135)
        for ex in (-0.11, 0.11):
            eye = (xx - cx - ex * size) ** 2 + (yy - cy + 0.08 * size) ** 2 < (0.045 * size) ** 2
            img[eye] = (40, 30, 30)
        opening = 0.02 + 0.07 * (0.5 + 0.5 * np.sin(2 * phase))
        mouth = ((xx - cx) / (0.12 * size)) ** 2 + ((yy - cy - 0.17 * size) / (opening * size)) ** 2 < 1
        img[mouth] = (120, 30, 40)
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
        pts = np.zeros((478, 3), np.float32)
        pts[:, :2] = (base * [0.28, 0.36] * 2 + 0) * size + [cx, cy]
        landmarks.append(pts)
    n_train = n_frames - holdout
    return FrameClip(clip_id, np.stack(frames), np.stack(landmarks), np.ones(n_frames, bool), 25.0, n_train,
                     np.eye(2, 3), "synthetic")


def tiny_renderer_config(out: Path, **train_overrides) -> RendererConfig:
    cfg = load_config(RendererConfig, RENDERER_TINY)
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, out_dir=str(out), **train_overrides))


# --- frame cache -------------------------------------------------------------------------------


def test_frame_cache_round_trip_raw_and_jpeg(tmp_path):
    clip = synthetic_clip(n_frames=30, size=64, holdout=25)
    raw = load_frame_clip(save_frame_clip(tmp_path / "raw" / "a.npz", clip))
    np.testing.assert_array_equal(raw.frames, clip.frames)
    np.testing.assert_array_equal(raw.landmarks, clip.landmarks)
    assert raw.holdout_start == 5 and list(raw.train_indices) == [0, 1, 2, 3, 4]
    assert list(raw.heldout_indices) == list(range(5, 30))
    jpeg = load_frame_clip(save_frame_clip(tmp_path / "jpeg" / "a.npz", clip, jpeg_quality=90, half_landmarks=True))
    assert jpeg.frames.shape == clip.frames.shape and jpeg.frames.dtype == np.uint8
    assert np.abs(jpeg.frames.astype(float) - clip.frames).mean() < 6  # lossy, but close
    assert np.abs(jpeg.landmarks - clip.landmarks).max() < 0.05
    assert (tmp_path / "jpeg" / "a.npz").stat().st_size < (tmp_path / "raw" / "a.npz").stat().st_size / 3
    assert [c.clip_id for c in load_frame_cache(tmp_path / "raw")] == ["synthetic"]


def test_frame_cache_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_frame_cache(tmp_path / "nope")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="corrupt"):
        load_frame_clip(bad)
    np.savez(tmp_path / "other.npz", kind="something.else")
    with pytest.raises(InputError, match="not a facecue frame cache"):
        load_frame_clip(tmp_path / "other.npz")


def test_frame_pairs_enumerate_every_training_pair():
    clips = [synthetic_clip(6, 32, holdout=2, clip_id="a"), synthetic_clip(5, 32, seed=1, holdout=1, clip_id="b")]
    ds = FramePairs(clips)
    assert len(ds) == 4 * 4 + 4 * 4
    seen = set()
    for i in range(len(ds)):
        item = ds[i]
        seen.add((item["source"].numpy().tobytes(), item["driving"].numpy().tobytes()))
    assert len(seen) == len(ds)  # all distinct pairs (the frames of a clip differ)
    held = {clips[0].frames[k].tobytes() for k in (4, 5)} | {clips[1].frames[4].tobytes()}
    assert not any(s in held or d in held for s, d in seen)  # held-out frames never drawn


def test_preprocess_frames_progress_in_a_log_is_a_few_plain_lines(tmp_path, stderr_log):
    """Resuming a frame cache whose clips are all done, stderr a log file: the bar's first and
    final lines only, no redraws, no line per clip."""
    from facecue.neural import preprocess_frames

    names = [f"clip{i}" for i in range(5)]
    for i, name in enumerate(names):
        save_frame_clip(tmp_path / f"{name}.npz", synthetic_clip(n_frames=4, size=32, seed=i, clip_id=name))
    written = preprocess_frames([tmp_path / "videos" / f"{name}.mp4" for name in names], tmp_path, size=32,
                                progress=True)
    assert [p.stem for p in written] == names
    text = stderr_log.getvalue()
    lines = stderr_log.bar_lines("clips")
    assert "\r" not in text and "\x1b" not in text, text
    assert len(lines) == 2 and "0/5" in lines[0] and "5/5" in lines[1], text


def test_preprocess_frames_real_clip(shared_data, tmp_path):
    from facecue.neural import preprocess_frames

    video = shared_data / "mead_clips" / "M030_neutral_level1_001.mp4"  # 94 frames at 25 fps
    (path,) = preprocess_frames([video], tmp_path, size=128, holdout_seconds=1.0)
    clip = load_frame_clip(path)
    assert clip.frames.shape == (94, 128, 128, 3) and clip.holdout_start == 94 - 25
    assert clip.valid.mean() > 0.95
    inside = (clip.landmarks[..., :2] > 0) & (clip.landmarks[..., :2] < 128)
    assert inside.mean() > 0.99
    # the crop is aligned: eyes level and at 40 % of the height (alignment_matrix's layout)
    eyes = clip.landmarks[:, [33, 133, 263, 362], :2].mean(axis=1)
    assert abs(np.median(eyes[:, 1]) - 0.40 * 128) < 4 and abs(np.median(eyes[:, 0]) - 64) < 4


# --- generator pieces --------------------------------------------------------------------------


def test_tps_jacobian_matches_finite_differences():
    torch.manual_seed(0)
    tps = RandomTPS(3, 0.1, 0.05, 5, "cpu")
    pts = torch.rand(3, 7, 2, dtype=torch.float32) * 2 - 1
    eps = 1e-3
    numeric = torch.stack([(tps.warp(pts + eps * e) - tps.warp(pts - eps * e)) / (2 * eps)
                           for e in (torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))], dim=-1)
    torch.testing.assert_close(tps.jacobian(pts), numeric, atol=2e-3, rtol=1e-2)


def test_generator_shapes_and_identity_keypoints():
    cfg = load_config(RendererConfig, RENDERER_TINY).model
    gen = KeypointGenerator(cfg).eval()
    x = torch.rand(2, 3, cfg.size, cfg.size)
    with torch.no_grad():
        kp, jac = gen.keypoints(x)
        assert kp.shape == (2, cfg.num_keypoints, 2) and jac.shape == (2, cfg.num_keypoints, 2, 2)
        assert kp.abs().max() <= 1
        torch.testing.assert_close(jac, torch.eye(2).expand_as(jac))  # Jacobian head starts at identity
        state = gen.prepare_source(x)
        out = gen.animate(state, state["kp"], state["jacobian"])
        assert out["prediction"].shape == x.shape
        # the source's own keypoints: every sparse motion is the identity, so the flow is too
        grid = torch.stack(torch.meshgrid(torch.linspace(-1, 1, cfg.kp_size), torch.linspace(-1, 1, cfg.kp_size),
                                          indexing="xy"), -1)
        torch.testing.assert_close(out["flow"], grid.expand_as(out["flow"]), atol=1e-4, rtol=0)


def test_generator_overfits_one_clip(tmp_path):
    """64 px, 8 frames: the pyramid L1 must fall at least 5x within the tiny config's 200 steps."""
    clip = synthetic_clip(8, 64)
    cfg = tiny_renderer_config(tmp_path / "run", log_every=1, device="cpu")
    started = time.perf_counter()
    final = train(RendererTask(cfg, clips=[clip]), progress=False)
    seconds = time.perf_counter() - started
    rows = read_log(final.parent)
    first = rows[0]["reconstruction"]  # at the initial weights (log_every=1 logs every step's loss)
    last = np.mean([r["reconstruction"] for r in rows[-10:]])
    print(f"overfit: reconstruction {first:.4f} -> {last:.4f} ({first / last:.1f}x) in {seconds:.1f} s")
    assert first / last > 5, (first, last)
    gen = load_generator(final)
    with torch.no_grad():
        frames = torch.from_numpy(clip.frames)
        from facecue.neural import to_image

        x = to_image(frames)
        pred = gen(x[:1].expand(8, -1, -1, -1), x)["prediction"]
    assert (pred - x).abs().mean() < 0.05  # reenacts every frame of the clip from frame 0


# --- mapper ------------------------------------------------------------------------------------


class _KnownTargets(torch.utils.data.Dataset):
    def __init__(self, landmarks, keypoints, jacobians):
        self.landmarks, self.keypoints, self.jacobians = landmarks, keypoints, jacobians

    def __len__(self):
        return len(self.landmarks)

    def __getitem__(self, i):
        return {"landmarks": self.landmarks[i], "keypoints": self.keypoints[i], "jacobians": self.jacobians[i]}


def test_mapper_recovers_a_known_linear_mapping(tmp_path):
    """Keypoints = a fixed random linear function of the landmarks + noise: the mapper's error on
    unseen frames must be far below the predict-the-mean baseline."""
    rng = np.random.default_rng(0)
    k, n_train, n_test, factors = 6, 768, 256, 8
    base = rng.uniform(-0.6, 0.6, (478, 2))
    modes = rng.normal(0, 1, (factors, 478, 2)) * 0.02
    latent = rng.normal(0, 1, (n_train + n_test, factors))
    landmarks = (base + np.einsum("nf,fpc->npc", latent, modes)).astype(np.float32)
    w = rng.normal(0, 1, (478 * 2, k * 6)) / np.sqrt(478 * 2) * 8
    flat = (landmarks - base).reshape(len(landmarks), -1) @ w
    noise = rng.normal(0, 0.005, (len(flat), k, 2))
    kp = (flat[:, : 2 * k].reshape(-1, k, 2) + noise).astype(np.float32)
    jac = (np.eye(2) + 0.3 * flat[:, 2 * k :].reshape(-1, k, 2, 2)).astype(np.float32)
    t = torch.from_numpy
    train_ds = _KnownTargets(t(landmarks[:n_train]), t(kp[:n_train]), t(jac[:n_train]))
    cfg = load_config(MapperConfig, MAPPER_TINY, ["train.steps=300", "train.log_every=50", "train.device=cpu",
                                                  f"train.out_dir={tmp_path / 'mapper'}"])
    task = MapperTask(cfg, dataset=train_ds, num_keypoints=k)
    final = train(task, progress=False)
    from facecue.train import inference_weights, load_checkpoint
    from facecue.neural import MapperModel

    model = MapperModel(cfg.model, k)
    model.load_state_dict(inference_weights(load_checkpoint(final, "facecue.mapper")))
    model.eval()
    with torch.no_grad():
        pred_kp, pred_jac = model.map(t(landmarks[n_train:]))
    err = np.abs(pred_kp.numpy() - kp[n_train:]).mean()
    baseline = np.abs(kp[:n_train].mean(0) - kp[n_train:]).mean()
    jac_err = np.abs(pred_jac.numpy() - jac[n_train:]).mean()
    jac_base = np.abs(jac[:n_train].mean(0) - jac[n_train:]).mean()
    print(f"mapper: keypoint L1 {err:.4f} vs baseline {baseline:.4f}; jacobian L1 {jac_err:.4f} vs {jac_base:.4f}")
    assert err < 0.2 * baseline and jac_err < 0.3 * jac_base
    with pytest.raises(CheckpointError, match="no generator"):
        load_mapper(final)  # trained on precomputed targets: cannot drive the renderer


# --- the renderer ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory):
    """A tiny renderer (a few steps) and the mapper trained on its frozen detector."""
    root = tmp_path_factory.mktemp("neural")
    clips = [synthetic_clip(10, 64, holdout=3, clip_id="a"), synthetic_clip(10, 64, seed=1, holdout=3, clip_id="b")]
    for c in clips:
        save_frame_clip(root / "cache" / f"{c.clip_id}.npz", c)
    renderer_cfg = tiny_renderer_config(root / "renderer", steps=6, device="cpu")
    renderer = train(RendererTask(renderer_cfg, clips=clips), progress=False)
    overrides = [f"renderer={renderer}", f"data.cache={root / 'cache'}", "train.steps=6", "train.device=cpu",
                 f"train.out_dir={root / 'mapper'}"]
    cfg = load_config(MapperConfig, MAPPER_TINY, overrides)
    mapper = train(MapperTask(cfg), progress=False)
    return {"renderer": renderer, "mapper": mapper, "clips": clips, "root": root}


def test_mapper_checkpoint_is_self_contained(tiny_checkpoints):
    model = load_mapper(tiny_checkpoints["mapper"])
    gen = load_generator(tiny_checkpoints["renderer"])
    for name, value in gen.state_dict().items():  # the generator rode along unchanged (frozen)
        torch.testing.assert_close(model.generator.state_dict()[name], value)
    out = reenact_heldout(model, tiny_checkpoints["clips"], "mapper_relative")
    assert [o["clip_id"] for o in out] == ["a", "b"]
    assert out[0]["pred"].shape == (3, 64, 64, 3) and out[0]["pred"].dtype == np.uint8
    assert list(out[0]["indices"]) == [7, 8, 9]
    np.testing.assert_array_equal(out[0]["real"], tiny_checkpoints["clips"][0].frames[7:])


def test_neural_renderer_from_registry(tiny_checkpoints, portrait, portrait_landmarks):
    from facecue.render import available_renderers, get_renderer, render

    assert "neural" in available_renderers()
    engine = get_renderer("neural", checkpoint=tiny_checkpoints["mapper"])
    engine.prepare(portrait, portrait_landmarks)
    frame = engine.render_frame(portrait_landmarks)
    assert frame.shape == portrait.shape and frame.dtype == np.uint8
    x0, y0, x1, y1 = engine.box
    outside = np.ones(portrait.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(frame[outside], portrait[outside])  # only the face crop is pasted
    # relative motion: the portrait's own landmarks give the portrait's own keypoints
    crop = engine.render_crop(portrait_landmarks)
    gen = engine.model.generator
    with torch.no_grad():
        own = gen.animate(engine._state, engine._state["kp"], engine._state["jacobian"])["prediction"]
    from facecue.neural import to_uint8

    assert np.abs(crop.astype(int) - to_uint8(own)[0]).max() <= 1  # J_m(l) J_m(l)^-1 = I up to rounding
    moved = portrait_landmarks.copy()
    moved[:, 1] += 4.0
    frames = list(render(portrait, portrait_landmarks, [portrait_landmarks, moved], renderer="neural",
                         checkpoint=tiny_checkpoints["mapper"]))
    assert len(frames) == 2 and frames[0].shape == portrait.shape


def test_neural_renderer_batches_match_single_frames(tiny_checkpoints, portrait, portrait_landmarks):
    """render() hands batch_size frames at a time to render_batch; the frames equal the one-by-one ones,
    a partial last batch included."""
    from facecue.render import get_renderer, render

    rng = np.random.default_rng(0)
    sequence = [portrait_landmarks + rng.normal(0, 2.0, portrait_landmarks.shape).astype(np.float32)
                for _ in range(5)]
    single = get_renderer("neural", checkpoint=tiny_checkpoints["mapper"])
    assert single.batch_size == 1  # the CPU default
    single.prepare(portrait, portrait_landmarks)
    expected = [single.render_frame(points) for points in sequence]
    batched = get_renderer("neural", checkpoint=tiny_checkpoints["mapper"], batch_size=2)
    frames = list(render(portrait, portrait_landmarks, sequence, renderer=batched))
    assert len(frames) == 5
    for got, want in zip(frames, expected):
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1  # batched convolutions: rounding only
    assert batched.render_batch([]) == []
    with pytest.raises(InputError, match="batch_size"):
        get_renderer("neural", checkpoint=tiny_checkpoints["mapper"], batch_size=0)


def test_bad_checkpoints_give_one_line_errors(tiny_checkpoints, tmp_path):
    from facecue.render import get_renderer

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00" * 100)
    other = {"kind": "facecue.stage1", "version": 1, "config": {}, "model": {}, "step": 0}
    save_checkpoint(tmp_path / "other.pt", other)
    cases = {
        tmp_path / "missing.pt": "not found",
        corrupt: "corrupt",
        tiny_checkpoints["renderer"]: "expected 'facecue.mapper'",  # a renderer alone cannot take landmarks
        tmp_path / "other.pt": "of kind 'facecue.stage1'",
    }
    for path, message in cases.items():
        with pytest.raises(CheckpointError) as info:
            get_renderer("neural", checkpoint=path)
        assert message in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(InputError, match="needs checkpoint"):
        get_renderer("neural")


def test_cli_train_renderer_and_bad_mapper_checkpoint(tiny_checkpoints, tmp_path, capsys):
    from facecue.cli import main

    cache = tiny_checkpoints["root"] / "cache"
    code = main(["train", "renderer", "--config", str(RENDERER_TINY), "--set", f"data.cache={cache}",
                 "--set", "train.steps=2", "--set", "train.device=cpu", "--out", str(tmp_path / "r"), "-q"])
    assert code == 0 and (tmp_path / "r" / "final.pt").is_file()
    assert load_generator(tmp_path / "r" / "final.pt").checkpoint_step == 2
    code = main(["train", "mapper", "--config", str(MAPPER_TINY), "--set", f"renderer={tmp_path / 'missing.pt'}",
                 "--set", f"data.cache={cache}", "--out", str(tmp_path / "m"), "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "missing.pt: checkpoint not found" in err and len(err.splitlines()) == 1


def test_renderer_resume_continues_exactly(tmp_path):
    clip = synthetic_clip(6, 64)
    full = train(RendererTask(tiny_renderer_config(tmp_path / "full", steps=4, device="cpu"), clips=[clip]),
                 progress=False)
    cfg = tiny_renderer_config(tmp_path / "part", steps=4, checkpoint_every=2, device="cpu")
    interrupted = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=2))
    train(RendererTask(interrupted, clips=[clip]), progress=False)
    resumed = train(RendererTask(cfg, clips=[clip]), resume="auto", progress=False)
    a, b = torch.load(full, weights_only=True)["model"], torch.load(resumed, weights_only=True)["model"]
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=1e-4)


def test_training_modules_import_without_mediapipe_pyav_opencv(tmp_path):
    """The GPU machine has torch, numpy, PyYAML, tensorboard and maybe no OpenCV / MediaPipe / PyAV."""
    code = (
        "import sys\n"
        "for name in ('mediapipe', 'av', 'cv2', 'tqdm'):\n"
        "    sys.modules[name] = None\n"
        "import facecue.cues, facecue.train, facecue.neural, facecue.evaluate\n"
        "from facecue.train import save_checkpoint\n"
        f"save_checkpoint({str(tmp_path / 'x.pt')!r}, {{'kind': 'k'}})\n"
        "assert not any(m in sys.modules and sys.modules[m] is not None for m in ('mediapipe', 'av', 'cv2'))\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                            env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]


def test_landmark_normalization_maps_crop_edges_to_unit_square():
    pts = np.array([[[0.0, 0.0, 0.0], [256.0, 256.0, 128.0], [128.0, 64.0, -32.0]]], np.float32)
    out = normalize_landmarks(pts, 256, use_depth=True)
    np.testing.assert_allclose(out, [[[-1, -1, 0], [1, 1, 1], [0, -0.5, -0.25]]])
    np.testing.assert_allclose(normalize_landmarks(torch.from_numpy(pts), 256).numpy(), out[..., :2])


def test_config_errors_are_named():
    from facecue.train import ConfigError

    with pytest.raises(ConfigError, match="divisible"):
        GeneratorConfig(size=64, kp_scale=0.25, kp_blocks=5)
    for name in ("renderer_default.yaml", "renderer_tiny.yaml"):
        assert load_config(RendererConfig, REPO / "configs" / name).model.size in (64, 256)
    for name in ("mapper_default.yaml", "mapper_tiny.yaml"):
        assert load_config(MapperConfig, REPO / "configs" / name).model.hidden > 0


def test_gan_terms_train_each_network_on_its_own_objective():
    from facecue.neural import RendererTrainingModel

    cfg = load_config(RendererConfig, RENDERER_TINY, ["loss.gan=0.1"])
    model = RendererTrainingModel(cfg.model, cfg.loss)
    frames = torch.from_numpy(synthetic_clip(4, 64).frames)
    for term, trained, untouched in (("gan", model.generator, model.discriminator),
                                     ("discriminator", model.discriminator, model.generator)):
        model.zero_grad(set_to_none=True)
        model(frames[:2], frames[2:])[term].backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trained.parameters()), term
        assert all(p.grad is None or p.grad.abs().sum() == 0 for p in untouched.parameters()), term
    task = RendererTask(cfg, clips=[synthetic_clip(4, 64)])
    total, terms = task.loss(model, {"source": frames[:2], "driving": frames[2:]}, 0)
    expected = {"gan", "discriminator", "reconstruction", "ssim", "equivariance_value", "equivariance_jacobian"}
    assert expected <= set(terms)
    assert torch.isfinite(total)


def test_training_step_and_reenactment_under_bf16_autocast():
    """The GPU trains under bf16 autocast: every module must accept mixed dtypes (CPU autocast
    runs the same casts) and keep the keypoint geometry in float32."""
    from facecue.neural import MapperModel, RendererTrainingModel

    cfg = load_config(RendererConfig, RENDERER_TINY, ["loss.gan=0.1"])
    model = RendererTrainingModel(cfg.model, cfg.loss)
    frames = torch.from_numpy(synthetic_clip(4, 64).frames)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        terms = model(frames[:2], frames[2:])
        kp, jac = model.generator.keypoints(torch.rand(2, 3, 64, 64))
    assert kp.dtype == torch.float32 and jac.dtype == torch.float32
    sum(terms.values()).backward()
    assert all(torch.isfinite(v) for v in terms.values())
    mcfg = load_config(MapperConfig, MAPPER_TINY)
    mapper = MapperModel(mcfg.model, cfg.model.num_keypoints, model.generator).train()
    clip = synthetic_clip(8, 64, holdout=3)
    lmk = torch.from_numpy(normalize_landmarks(clip.landmarks[:4], 64))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mterms = mapper(lmk, torch.from_numpy(clip.frames[:4]))
    sum(mterms.values()).backward()
    out = reenact_heldout(mapper.eval(), [clip], "mapper_relative", amp=True)
    assert out[0]["pred"].shape == (3, 64, 64, 3)


def test_render_device_option_errors_and_plumbing(tiny_checkpoints, tmp_path, capsys):
    """--device reaches the neural renderer only; an unusable device is a one-line error, exit 2, no output."""
    from facecue.cli import asset_path, main
    from facecue.generate import GenerateConfig
    from facecue.render import renderer_options

    mapper = tiny_checkpoints["mapper"]
    assert renderer_options("mesh", None, "cuda") == {}  # the mesh renderer takes no device
    assert renderer_options("neural", mapper, "cpu") == {"checkpoint": str(mapper), "device": "cpu"}
    with pytest.raises(InputError, match="device must be one of auto, cpu, cuda"):
        renderer_options("neural", mapper, "tpu")
    with pytest.raises(InputError, match="device must be one of"):
        GenerateConfig(device="gpu").validate()
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the no-CUDA error cannot be shown")
    out = tmp_path / "talk.mp4"
    code = main(["generate", "--portrait", str(asset_path("portrait.png")), "--audio", str(asset_path("speech.wav")),
                 "--renderer", "neural", "--renderer-checkpoint", str(mapper), "--device", "cuda", "-o", str(out), "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "no CUDA GPU" in err and len(err.splitlines()) == 1, err
    assert not out.exists() and not list(tmp_path.glob("*.tmp*"))
    with pytest.raises(InputError, match="no CUDA GPU"):
        GenerateConfig(renderer="neural", renderer_checkpoint=str(mapper), device="cuda").validate()  # before any model
