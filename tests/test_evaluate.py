"""Evaluation metrics against closed-form answers, skimage, and real talking clips."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from facecue import evaluate as ev
from facecue.cues import FaceCues, angles_to_rotation, default_template
from facecue.errors import CheckpointError, InputError

C1 = (0.01 * 255) ** 2


# --- PSNR / SSIM ---------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [1, 5, 30, 100])
def test_psnr_of_constant_offset_is_closed_form(offset):
    a = np.full((16, 20, 3), 100, dtype=np.uint8)
    b = a + np.uint8(offset)
    assert ev.psnr(a, b) == pytest.approx(20 * math.log10(255 / offset), abs=1e-9)
    assert ev.psnr(a, a) == math.inf


def test_mean_psnr_caps_identical_frames():
    assert ev.mean_psnr(np.array([math.inf, 40.0])) == pytest.approx((ev.PSNR_CAP_DB + 40) / 2)


def test_ssim_of_image_with_itself_is_one():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    assert ev.ssim(image, image) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("m1,m2", [(100, 130), (10, 240), (0, 50), (128, 128)])
def test_ssim_of_constant_images_is_closed_form(m1, m2):
    a = np.full((32, 32), float(m1))
    b = np.full((32, 32), float(m2))
    assert ev.ssim(a, b) == pytest.approx((2 * m1 * m2 + C1) / (m1**2 + m2**2 + C1), abs=1e-12)


def _skimage_ssim(a, b, **kw):
    from skimage.metrics import structural_similarity

    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, **kw)


def test_ssim_matches_skimage_on_a_natural_image():
    import skimage.data

    from scipy.ndimage import gaussian_filter

    camera = skimage.data.camera()
    rng = np.random.default_rng(1)
    noisy = np.clip(camera + rng.normal(0, 20, camera.shape), 0, 255).astype(np.uint8)
    blurred = gaussian_filter(camera, 2.0)
    for other in (noisy, blurred):
        ours = ev.ssim(camera, other)
        assert ours == pytest.approx(_skimage_ssim(camera, other), abs=1e-4)
        assert 0.2 < ours < 0.99


def test_ssim_is_the_mean_over_rgb_channels_and_video_ssim_agrees():
    import skimage.data

    image = skimage.data.astronaut()[::2, ::2]
    rng = np.random.default_rng(2)
    noisy = np.clip(image + rng.normal(0, 15, image.shape), 0, 255).astype(np.uint8)
    assert ev.ssim(image, noisy) == pytest.approx(_skimage_ssim(image, noisy, channel_axis=-1), abs=1e-4)
    per_channel = np.mean([ev.ssim(image[..., c], noisy[..., c]) for c in range(3)])
    assert ev.ssim(image, noisy) == pytest.approx(per_channel, abs=1e-12)
    clip_a = np.stack([image, image, noisy])
    clip_b = np.stack([noisy, image, image])
    np.testing.assert_allclose(ev.video_ssim(clip_a, clip_b), [ev.ssim(a, b) for a, b in zip(clip_a, clip_b)], atol=1e-12)
    np.testing.assert_allclose(ev.video_psnr(clip_a, clip_b)[[0, 2]], ev.psnr(image, noisy))


def test_image_metrics_reject_mismatched_shapes():
    with pytest.raises(InputError):
        ev.ssim(np.zeros((20, 20)), np.zeros((20, 21)))
    with pytest.raises(InputError):
        ev.psnr(np.zeros((20, 20)), np.zeros((21, 20)))


# --- LMD-MP ---------------------------------------------------------------------------------


def test_mp68_is_68_distinct_points_in_dlib_regions():
    assert len(ev.MP68) == 68 and len(set(ev.MP68)) == 68
    assert max(ev.MP68) < 468
    assert len(range(68)[ev.MP68_REGIONS["mouth"]]) == 20
    assert len(range(68)[ev.MP68_REGIONS["face"]]) == 68


def test_mp68_mirror_pairs_are_mirror_points_of_the_template():
    """dlib's left/right partners map to MediaPipe points that mirror each other (x -> -x)."""
    mirror68 = (
        list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
        + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40]
        + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65]
    )
    points = default_template().points.astype(np.float64)
    eye_distance = 1.0  # canonical unit
    for i, j in enumerate(mirror68):
        flipped = points[ev.MP68[i]] * np.array([-1.0, 1.0, 1.0])
        assert np.linalg.norm(flipped - points[ev.MP68[j]]) < 0.02 * eye_distance, (i, j)
    # the chin is below the nose tip, which is below the eyes (y down)
    assert points[ev.MP68[8], 1] > points[ev.MP68[30], 1] > points[ev.MP68[36], 1]


def _landmark_track(n_frames=6, seed=0):
    rng = np.random.default_rng(seed)
    base = default_template().points[None].astype(np.float64) * 60 + np.array([128.0, 120.0, 0.0])
    return (base + rng.normal(0, 0.5, (n_frames, 478, 3))).astype(np.float32)


def test_lmd_of_a_track_with_itself_is_zero():
    track = _landmark_track()
    assert ev.lmd(track, track, "mouth") == 0.0
    assert ev.lmd(track, track, "face") == 0.0


def test_mouth_lmd_grows_with_a_shift_of_the_mouth_points():
    gt = _landmark_track()
    mouth = [ev.MP68[i] for i in range(48, 68)]
    values = []
    for d in (0.5, 1.0, 2.0, 4.0):
        pred = gt.copy()
        pred[:, mouth, 0] += d
        m_lmd = ev.lmd(pred, gt, "mouth")
        # centring on the 68-point mean moves the mouth back by 20/68 of the shift
        assert m_lmd == pytest.approx(d * 48 / 68, rel=1e-5)
        assert ev.lmd(pred, gt, "face") == pytest.approx(d * 48 / 68 * 20 / 68 + d * 20 / 68 * 48 / 68, rel=1e-5)
        values.append(m_lmd)
    assert values == sorted(values) and values[0] > 0


def test_lmd_ignores_a_rigid_translation_and_scales_to_256px():
    gt = _landmark_track()
    moved = gt + np.array([17.0, -9.0, 3.0], dtype=np.float32)
    assert ev.lmd(moved, gt, "mouth") == pytest.approx(0.0, abs=1e-4)
    assert ev.lmd(moved, gt, "face") == pytest.approx(0.0, abs=1e-4)
    # the same face in a 512 px frame compares equal to its 256 px self once both are scaled to 256 px
    assert ev.lmd(gt * 2, gt, "face", pred_size=(512, 512), gt_size=(256, 256)) == pytest.approx(0.0, abs=1e-4)
    assert ev.lmd(gt * 2, gt, "face") > 1.0


# --- cues: pose, gaze, liveliness -------------------------------------------------------------


def _cues(angles, gaze=None, aperture=None, fps=25.0, jitter=0.0, seed=0):
    angles = np.asarray(angles, dtype=np.float64)
    n = len(angles)
    template = default_template().points.astype(np.float32)
    normalized = np.repeat(template[None], n, axis=0)
    if jitter:
        normalized = normalized + np.random.default_rng(seed).normal(0, jitter, normalized.shape).astype(np.float32)
    gaze = np.zeros((n, 2, 2), np.float32) if gaze is None else np.asarray(gaze, np.float32)
    aperture = np.full((n, 2), 0.3, np.float32) if aperture is None else np.asarray(aperture, np.float32)
    return FaceCues(
        normalized=normalized, scale=np.full(n, 100.0, np.float32),
        rotation=angles_to_rotation(angles).astype(np.float32), translation=np.zeros((n, 3), np.float32),
        gaze=gaze, aperture=aperture, valid=np.ones(n, bool), identity=template, fps=fps, image_size=(256, 256),
    )


def test_pose_and_gaze_errors_are_mean_absolute_degrees():
    n = 50
    t = np.arange(n)
    base = np.stack([10 * np.sin(t / 7), 5 * np.cos(t / 5), 2 * np.sin(t / 3)], axis=1)
    gt = _cues(base)
    offset = np.array([3.0, -2.0, 1.0])
    gaze_gt = np.zeros((n, 2, 2))
    gaze_pred = gaze_gt + np.array([4.0, -1.5])
    pred = _cues(base + offset, gaze=gaze_pred)
    gt = _cues(base, gaze=gaze_gt)
    errors = ev.pose_error(pred, gt)
    for axis, expected in zip(("yaw", "pitch", "roll"), offset):
        assert errors[axis] == pytest.approx(abs(expected), abs=1e-3)
    gaze = ev.gaze_error(pred, gt)
    assert gaze["yaw"] == pytest.approx(4.0, abs=1e-4) and gaze["pitch"] == pytest.approx(1.5, abs=1e-4)
    assert ev.pose_error(gt, gt) == {"yaw": 0.0, "pitch": 0.0, "roll": 0.0}
    # different lengths: truncated to the shorter
    assert ev.pose_error(pred.slice(0, 20), gt)["yaw"] == pytest.approx(3.0, abs=1e-3)


def test_liveliness_statistics_of_known_motion():
    fps, n = 25.0, 300  # 12 s
    t = np.arange(n) / fps
    amplitude = 6.0
    angles = np.stack([amplitude * np.sin(2 * np.pi * 0.5 * t), np.zeros(n), np.zeros(n)], axis=1)
    aperture = np.full((n, 2), 0.3, np.float32)
    for start in (30, 120, 250):  # three 4-frame blinks
        aperture[start : start + 4] = 0.05
    stats = ev.liveliness(_cues(angles, aperture=aperture, fps=fps))
    assert stats["blinks_per_min"] == pytest.approx(3 / (12 / 60))
    assert stats["head_std_yaw"] == pytest.approx(amplitude / math.sqrt(2), rel=0.02)
    assert stats["head_range_yaw"] == pytest.approx(2 * amplitude, rel=0.01)
    assert stats["head_std_pitch"] == pytest.approx(0.0, abs=1e-3)
    assert stats["jitter"] == pytest.approx(0.0, abs=1e-6)
    # eyes straight ahead: at the camera while |6 sin| < 5 degrees, i.e. (2 / pi) asin(5 / 6) of the time
    assert stats["gaze_at_camera"] == pytest.approx(2 / math.pi * math.asin(5 / 6), abs=0.04)
    noisy = ev.liveliness(_cues(angles, jitter=0.01))
    assert noisy["jitter"] > 0.01


def test_mouth_opening_is_the_inner_lip_gap_in_face_units():
    cues = _cues(np.zeros((3, 3)))
    normalized = cues.normalized.copy()
    normalized[1, 14, 1] += 0.2  # lower inner lip down by 0.2 eye-distance units
    opened = FaceCues(normalized, cues.scale, cues.rotation, cues.translation, cues.gaze, cues.aperture,
                      cues.valid, cues.identity, cues.fps, cues.image_size)
    opening = ev.mouth_opening(opened)
    assert opening[1] - opening[0] == pytest.approx(0.2, abs=0.02)
    assert opening[0] == pytest.approx(opening[2])


# --- lip sync ---------------------------------------------------------------------------------


def _speechlike_audio(seconds=12.0, seed=0):
    """Noise modulated by a slow random envelope (syllable-rate bursts and pauses)."""
    from scipy.ndimage import gaussian_filter1d

    from facecue.constants import SAMPLE_RATE

    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    envelope = np.clip(gaussian_filter1d(rng.normal(0, 1, n // 400 + 1), 2.0), 0, None)
    envelope = np.repeat(envelope / envelope.max(), 400)[:n]
    return (rng.normal(0, 0.3, n) * envelope).astype(np.float32)


def test_lip_sync_finds_a_known_lag_on_a_synthetic_clip():
    from facecue.audio import loudness_envelope

    fps = 25.0
    audio = _speechlike_audio()
    loudness = loudness_envelope(audio, fps)
    rng = np.random.default_rng(3)
    lag = 2  # the mouth follows the audio by 2 frames
    opening = np.concatenate([np.zeros(lag), loudness[:-lag]]) * 0.5 + rng.normal(0, 0.005, len(loudness))
    r, found = ev.lip_sync_score(opening, loudness, max_lag=5)
    assert found == lag and r > 0.9
    r_back, found_back = ev.lip_sync_score(opening[lag:], loudness[:-lag], max_lag=5)
    assert found_back == 0 and r_back > 0.9
    r_reversed, _ = ev.lip_sync_score(opening, loudness_envelope(audio[::-1].copy(), fps), max_lag=5)
    r_shifted, _ = ev.lip_sync_score(opening, np.roll(loudness, 25), max_lag=5)
    assert r_reversed < 0.4 and r_shifted < 0.4


def test_lip_sync_of_a_constant_signal_is_nan():
    r, lag = ev.lip_sync_score(np.ones(50), np.random.default_rng(0).random(50))
    assert math.isnan(r) and lag == 0


@pytest.mark.parametrize("clip", ["styletalk_feifeili_clip1", "styletalk_Obama_clip1"])
def test_lip_sync_on_a_real_clip_beats_shifted_and_reversed_audio(shared_data, clip):
    from facecue import io
    from facecue.audio import loudness_envelope
    from facecue.constants import SAMPLE_RATE
    from facecue.cues import extract_cues

    path = shared_data / "talking" / f"{clip}.mp4"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    cues = extract_cues(path)
    audio = io.read_audio(path)
    opening = ev.mouth_opening(cues)

    def score(a):
        return ev.lip_sync_score(opening, loudness_envelope(a, cues.fps, cues.n_frames))[0]

    own = score(audio)
    shifted = score(np.concatenate([np.zeros(SAMPLE_RATE, np.float32), audio])[: len(audio)])  # 1 s late
    reversed_ = score(audio[::-1].copy())
    assert own > 0.25
    assert own > max(shifted, reversed_) + 0.15, (own, shifted, reversed_)


# --- emotion ------------------------------------------------------------------------------


def test_emotion_and_level_from_mead_names():
    assert ev.emotion_from_name("M030_angry_level3_001") == "angry"
    assert ev.emotion_from_name("W011_neutral_level1_001") == "neutral"
    assert ev.emotion_from_name("M030_front_surprised_level3_001") == "surprised"
    assert ev.emotion_from_name("styletalk_Obama_clip1") is None
    assert ev.emotion_from_name("happy_birthday") is None
    assert ev.level_from_name("M030_angry_level3_001") == 3
    assert ev.level_from_name("W011_neutral_level1_001") == 1
    assert ev.level_from_name("styletalk_Obama_clip1") is None


# --- optional networks ------------------------------------------------------------------------


def test_syncnet_round_trip_and_layout_errors(tmp_path):
    import torch

    torch.manual_seed(0)
    model = ev.SyncNet().eval()
    assert model.netcnnaud(torch.zeros(1, 1, 13, 20)).shape == (1, 512, 1, 1)
    assert model.netcnnlip(torch.zeros(1, 3, 5, 224, 224)).shape == (1, 512, 1, 1, 1)
    good = tmp_path / "syncnet_v2.model"
    state = model.state_dict()
    torch.save(state, good)
    loaded = ev.load_syncnet(good)
    assert torch.equal(loaded.netfcaud[3].weight, model.netfcaud[3].weight)

    with pytest.raises(InputError, match="not found"):
        ev.load_syncnet(tmp_path / "missing.model")
    junk = tmp_path / "junk.model"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable"):
        ev.load_syncnet(junk)
    partial = tmp_path / "partial.model"
    torch.save({k: v for k, v in state.items() if not k.startswith("netcnnlip.0.")}, partial)
    with pytest.raises(CheckpointError, match=r"missing \(e\.g\. netcnnlip\.0\.") as info:
        ev.load_syncnet(partial)
    assert "\n" not in str(info.value)
    wrong = tmp_path / "wrong.model"
    torch.save({**state, "netfcaud.3.weight": torch.zeros(10, 512)}, wrong)
    with pytest.raises(CheckpointError, match="wrong shape"):
        ev.load_syncnet(wrong)


def test_syncnet_mfcc_frames_and_energy_row():
    from facecue.constants import SAMPLE_RATE

    audio = np.random.default_rng(0).normal(0, 0.1, SAMPLE_RATE).astype(np.float32)
    mfcc = ev.syncnet_mfcc(audio)
    assert mfcc.shape == (13, 1 + math.ceil((SAMPLE_RATE - 400) / 160))
    # row 0 is the log energy of the pre-emphasized 16-bit frames
    x = audio.astype(np.float64) * 32768
    x = np.append(x[0], x[1:] - 0.97 * x[:-1])
    frame = x[160:560]
    energy = (np.abs(np.fft.rfft(frame, 512)) ** 2 / 512).sum()
    assert mfcc[0, 1] == pytest.approx(np.log(energy), rel=1e-5)


class _LevelSyncNet:
    """A SyncNet stand-in with a known answer: the lip embedding of a window is the brightness of
    its first frame's crop centre, the audio embedding the log energy of its first video frame's
    audio (MFCC row 0); both are standardized over the batch, so they are equal where the audio
    is aligned with the video."""

    @staticmethod
    def _standard(x):
        return ((x - x.mean()) / x.std())[:, None]

    def forward_lip(self, im_in):
        return self._standard(im_in[:, :, 0, 112, 112].mean(dim=1))

    def forward_aud(self, cc_in):
        return self._standard(cc_in[:, 0, 0, 1:3].mean(dim=1))


@pytest.mark.parametrize("lag", [-2, 0, 1, 3])
def test_lse_scores_find_a_known_offset(lag):
    """lse_scores' offset search, sign convention and distances on a clip whose audio level follows
    the video's brightness ``lag`` frames later (a known answer, unlike random weights)."""
    n, vshift = 18, 4
    rng = np.random.default_rng(5)
    level = rng.uniform(0.0, 1.0, n + 2 * vshift)
    brightness = level[vshift: vshift + n]
    loudness = level[vshift - lag: vshift - lag + n]  # the audio of frame t is the video of t - lag
    frames = np.repeat((40 + 180 * brightness)[:, None, None, None], 96 * 96 * 3, axis=1).reshape(n, 96, 96, 3)
    landmarks = np.repeat((default_template().points[None] * 20 + np.array([48, 45, 0])).astype(np.float32), n, axis=0)
    noise = rng.normal(0, 1, n * 640)
    audio = (noise * np.repeat(np.exp(3 * loudness), 640) * 0.003).astype(np.float32)
    scores = ev.lse_scores(_LevelSyncNet(), frames.astype(np.uint8), landmarks, audio, vshift=vshift)
    assert scores["lse_offset"] == -lag, scores
    assert scores["lse_c"] > 0.3 and scores["lse_d"] < 0.5, scores


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_loads_both_layouts_and_is_zero_for_identical_images(tmp_path, net):
    import torch

    torch.manual_seed(0)
    model = ev.LPIPS(net)
    state = model.state_dict()
    torchvision_layout = tmp_path / "torchvision.pth"
    torch.save({**state, "classifier.1.weight": torch.zeros(3, 3)}, torchvision_layout)
    taps = model.taps
    lpips_layout = {}
    for key, value in state.items():
        if key.startswith("features."):
            index = int(key.split(".")[1])
            slice_number = next(s for s, end in enumerate(taps, start=1) if index < end)
            lpips_layout[f"net.slice{slice_number}.{key.split('.', 1)[1]}"] = value
        else:
            lpips_layout[key] = value
    lpips_file = tmp_path / "lpips.pth"
    torch.save({**lpips_layout, "scaling_layer.shift": torch.zeros(1, 3, 1, 1)}, lpips_file)
    frames = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    for path in (torchvision_layout, lpips_file):
        loaded = ev.load_lpips(path)
        assert loaded.net_name == net
        np.testing.assert_allclose(ev.lpips_per_frame(loaded, frames, frames), 0.0, atol=1e-7)
        assert np.all(ev.lpips_per_frame(loaded, frames, frames[::-1]) != 0)
    torch.save({"lin0.model.1.weight": state["lin0.model.1.weight"]}, tmp_path / "lin_only.pth")
    with pytest.raises(CheckpointError, match="no trunk weights"):
        ev.load_lpips(tmp_path / "lin_only.pth")


def test_inception_loader_accepts_the_fc_layer_and_frechet_distance(tmp_path):
    import torch

    torch.manual_seed(0)
    model = ev.FIDInception()
    path = tmp_path / "pt_inception-2015-12-05.pth"
    torch.save({**model.state_dict(), "fc.weight": torch.zeros(1008, 2048), "fc.bias": torch.zeros(1008)}, path)
    loaded = ev.load_inception(path)
    assert "Mixed_7c.branch_pool.conv.weight" in loaded.state_dict()
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (4000, 3))
    b = rng.normal(0, 1, (4000, 3))
    assert ev.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert ev.frechet_distance(a, b + np.array([2.0, 0, 0])) == pytest.approx(4.0, abs=0.15)


# --- end to end -------------------------------------------------------------------------------


def _portrait_videos(tmp_path, portrait):
    """gt: a still portrait that slides; pred: the same clip, a blurred copy, and an unpaired one."""
    import cv2

    from facecue import io

    size = 192
    base = cv2.resize(portrait, (size, size), interpolation=cv2.INTER_AREA)
    frames = [np.roll(base, (t // 2, t // 3), axis=(0, 1)) for t in range(14)]
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    pred_dir.mkdir()
    gt_dir.mkdir()
    audio = _speechlike_audio(seconds=14 / 25)
    io.write_video(gt_dir / "W011_happy_level3_001.mp4", frames, 25, crf=0)
    io.write_video(pred_dir / "W011_happy_level3_001.mp4", frames, 25, crf=0, audio=audio)
    blurred = [cv2.GaussianBlur(cv2.resize(f, (256, 256)), (0, 0), 3) for f in frames]
    io.write_video(gt_dir / "blurred.mp4", frames, 25, crf=0)
    io.write_video(pred_dir / "blurred.mp4", blurred[:12], 25)
    io.write_video(pred_dir / "lonely.mp4", frames[:5], 25)
    return pred_dir, gt_dir


def test_evaluate_videos_writes_reports_and_plots(tmp_path, portrait, stderr_log):
    pred_dir, gt_dir = _portrait_videos(tmp_path, portrait)
    out = tmp_path / "report"
    report = ev.evaluate_videos(pred_dir, gt_dir, out, progress=True)
    # stderr is a log file: the bar's first and final lines, no redraws, no line per video
    text = stderr_log.getvalue()
    lines = stderr_log.bar_lines("evaluate")
    assert "\r" not in text and "\x1b" not in text, text
    assert len(lines) == 2 and "0/2" in lines[0] and "2/2" in lines[1], text
    by_stem = {r["stem"]: r for r in report.results}
    assert set(by_stem) == {"W011_happy_level3_001", "blurred"}
    assert report.unpaired_pred == ["lonely"] and report.unpaired_gt == []
    same, blurred = by_stem["W011_happy_level3_001"], by_stem["blurred"]
    assert same["psnr"] == ev.PSNR_CAP_DB and same["ssim"] == pytest.approx(1.0)
    assert same["m_lmd_mp"] == 0.0 and same["f_lmd_mp"] == 0.0
    assert blurred["psnr"] < 40 and blurred["ssim"] < 0.95 and blurred["frames"] == 12
    assert any("resized from 256x256" in n for n in blurred["notes"])
    assert "sync_r" in same and "sync_r" not in blurred  # only the first pred has an audio track
    assert same["target_emotion"] == "happy"
    saved = json.loads((out / "report.json").read_text())
    assert saved["unpaired_pred"] == ["lonely"] and len(saved["videos"]) == 2
    markdown = (out / "report.md").read_text()
    assert "M-LMD-MP" in markdown and "lonely" in markdown and "no --emotion-classifier" in markdown
    for stem in by_stem:
        png = out / f"{stem}_cues.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_cli_errors_are_one_line_with_exit_2(tmp_path, capsys):
    from facecue.cli import main

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert main(["evaluate", "--pred", str(tmp_path / "nope"), "--gt", str(tmp_path / "b"), "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "not found" in err and "\n" not in err
    assert main(["evaluate", "--pred", str(tmp_path / "a"), "--gt", str(tmp_path / "b"), "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no video has the same file stem" in err and "\n" not in err
    assert not (tmp_path / "r").exists()


def _happy_classifier(path):
    """A collaborative-classifier checkpoint that always answers 'happy'."""
    import torch

    from facecue.constants import EMOTIONS
    from facecue.stage1 import CLASSIFIER_KIND, CLASSIFIER_VERSION, ClassifierConfig, EmotionClassifier
    from facecue.train import config_to_dict, save_checkpoint

    config = ClassifierConfig()
    model = EmotionClassifier(config.model)
    with torch.no_grad():
        model.out.weight.zero_()
        model.out.bias.zero_()
        model.out.bias[EMOTIONS.index("happy")] = 10.0
    payload = {"kind": CLASSIFIER_KIND, "version": CLASSIFIER_VERSION, "config": config_to_dict(config),
               "model": model.state_dict(), "step": 0}
    return save_checkpoint(path, payload)


def test_emotion_accuracy_with_a_classifier_checkpoint(tmp_path, portrait):
    pred_dir, gt_dir = _portrait_videos(tmp_path, portrait)
    checkpoint = _happy_classifier(tmp_path / "classifier.pt")
    report = ev.evaluate_videos(pred_dir, gt_dir, tmp_path / "r", emotion_classifier=checkpoint, plots=False, progress=False)
    by_stem = {r["stem"]: r for r in report.results}
    assert by_stem["W011_happy_level3_001"]["predicted_emotion"] == "happy"
    assert by_stem["W011_happy_level3_001"]["emotion_correct"] is True
    assert "emotion_correct" not in by_stem["blurred"]  # no MEAD emotion in the name: not judged
    assert report.mean["emotion_accuracy"] == 1.0 and report.mean["emotion_judged"] == 1
    assert "collaborative classifier" in (tmp_path / "r" / "report.md").read_text()
    (tmp_path / "bad.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError):
        ev.evaluate_videos(pred_dir, gt_dir, tmp_path / "r2", emotion_classifier=tmp_path / "bad.pt", progress=False)
    assert not (tmp_path / "r2").exists()
