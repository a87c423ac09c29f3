"""Cue geometry: normalize/relocate round trip, pose conventions and accuracy, gaze, blinks, files."""

from __future__ import annotations

import numpy as np
import pytest

from facecue.constants import LEFT_EYE_CORNERS, LEFT_IRIS, N_LANDMARKS, RIGHT_EYE_CORNERS, RIGHT_IRIS
from facecue.cues import (
    EYEBALL_RADIUS_OVER_EYE_WIDTH,
    FaceCues,
    GazeBins,
    angles_to_rotation,
    default_template,
    detect_blinks,
    eye_aperture,
    fit_similarity,
    gaze_from_normalized,
    normalize,
    place_iris,
    relocate,
    rotation_to_angles,
)
from facecue.errors import CheckpointError, InputError
from facecue.landmarks import face_size
from facecue.motion import close_eyes, open_mouth


def posed_template(angles, scale=180.0, translation=(256.0, 240.0, 10.0)):
    points = default_template().points.astype(np.float64)
    rotation = angles_to_rotation(np.asarray(angles, dtype=np.float64))
    return (scale * points @ rotation.T + np.asarray(translation)).astype(np.float32)


# --- similarity and angles -----------------------------------------------------------------


def test_fit_similarity_recovers_known_transform():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(40, 3))
    rotation = angles_to_rotation(np.array([23.0, -11.0, 7.0]))
    dst = 3.5 * src @ rotation.T + np.array([1.0, -2.0, 0.5])
    s, r, t = fit_similarity(src, dst)
    assert s == pytest.approx(3.5, rel=1e-9)
    np.testing.assert_allclose(r, rotation, atol=1e-9)
    np.testing.assert_allclose(t, [1.0, -2.0, 0.5], atol=1e-9)


@pytest.mark.parametrize("angles", [(0, 0, 0), (20, 0, 0), (0, -15, 0), (0, 0, 10), (-25, 12, -8)])
def test_angles_round_trip(angles):
    np.testing.assert_allclose(rotation_to_angles(angles_to_rotation(np.array(angles, float))), angles, atol=1e-9)


@pytest.mark.parametrize("angles", [(20, 0, 0), (0, 15, 0), (0, 0, 10), (-18, -9, 6)])
def test_normalize_recovers_pose_of_posed_template(angles):
    points = posed_template(angles)
    normalized, scale, rotation, translation = normalize(points)
    np.testing.assert_allclose(rotation_to_angles(rotation), angles, atol=0.05)
    assert scale == pytest.approx(180.0, rel=1e-3)
    np.testing.assert_allclose(normalized, default_template().points, atol=1e-3)


def test_pose_sign_conventions():
    nose, right_eye = 1, RIGHT_EYE_CORNERS[0]
    frontal = posed_template((0, 0, 0))
    turned = posed_template((20, 0, 0))
    assert turned[nose, 0] - frontal[nose, 0] > 10, "yaw > 0 turns the nose toward the image's right"
    up = posed_template((0, 15, 0))
    assert up[nose, 1] < frontal[nose, 1] - 5, "pitch > 0 lifts the face: the nose tip rises"
    tilted = posed_template((0, 0, 10))
    assert tilted[right_eye, 1] < frontal[right_eye, 1], "roll > 0 is clockwise: the image-left eye rises"


# --- round trip on real frames -------------------------------------------------------------


def _assert_round_trip(landmarks):
    normalized, scale, rotation, translation = normalize(landmarks)
    back = relocate(normalized, scale, rotation, translation)
    error = np.abs(back - landmarks).max(axis=(-1, -2)) / face_size(landmarks)
    assert error.max() < 1e-4, f"relocate(normalize(L)) off by {error.max():.2e} of face size"
    gaze = gaze_from_normalized(normalized)
    back = relocate(normalized, scale, rotation, translation, gaze=gaze)
    error = np.abs(back - landmarks).max(axis=(-1, -2)) / face_size(landmarks)
    assert error.max() < 1e-4, f"with the frame's own gaze, off by {error.max():.2e} of face size"
    return error.max()


def test_round_trip_on_portrait(portrait_landmarks):
    _assert_round_trip(portrait_landmarks[None])


def test_round_trip_on_real_mead_frames(mead_landmarks):
    for name, points in mead_landmarks.items():
        _assert_round_trip(points)


# --- pose agrees with an independent 3DMM fit ----------------------------------------------


def test_pose_tracks_independent_3dmm(shared_data, mead_landmarks):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from pose_vs_3dmm import compare

    result = compare(shared_data, 3.0, landmarks_cache=dict(mead_landmarks))
    (yaw, n_yaw), (pitch, n_pitch), (roll, n_roll) = (result["summary"][a] for a in ("yaw", "pitch", "roll"))
    assert n_yaw >= 5 and n_pitch >= 5 and n_roll >= 3
    assert yaw >= 0.85, f"median |r| yaw {yaw:.3f}"
    assert roll >= 0.85, f"median |r| roll {roll:.3f}"
    assert pitch >= 0.70, f"median |r| pitch {pitch:.3f}"


# --- gaze ----------------------------------------------------------------------------------


def test_template_looks_at_camera():
    np.testing.assert_allclose(gaze_from_normalized(default_template().points), 0.0, atol=1e-4)


@pytest.mark.parametrize("gaze", [(15.0, -10.0), (-25.0, 5.0), (0.0, 18.0)])
def test_place_iris_then_measure(portrait_landmarks, gaze):
    normalized, *_ = normalize(portrait_landmarks)
    moved = place_iris(normalized, np.array([gaze, gaze]))
    np.testing.assert_allclose(gaze_from_normalized(moved), [gaze, gaze], atol=1e-3)
    others = np.setdiff1d(np.arange(N_LANDMARKS), RIGHT_IRIS + LEFT_IRIS)
    np.testing.assert_array_equal(moved[others], normalized[others])


def test_gaze_from_iris_moved_in_the_image(portrait_landmarks):
    """Shift both irises by a known number of pixels in the image; the yaw changes by the
    angle whose sine is that shift over the eyeball radius, and the pitch does not move."""
    normalized, scale, rotation, _ = normalize(portrait_landmarks)
    before = gaze_from_normalized(normalized)
    eye_width = np.array([np.linalg.norm(np.subtract(*normalized[list(c), :2])) for c in (RIGHT_EYE_CORNERS, LEFT_EYE_CORNERS)])
    radius_px = EYEBALL_RADIUS_OVER_EYE_WIDTH * eye_width.mean() * scale
    shift_px = 0.3 * radius_px
    edited = portrait_landmarks.copy()
    # move along the head's own x axis as seen in the image (the portrait is nearly frontal)
    direction = rotation[:2, 0] / np.linalg.norm(rotation[:2, 0])
    edited[list(RIGHT_IRIS + LEFT_IRIS), :2] += shift_px * direction
    # pose must come from the stable points only: the iris edit must not move it
    normalized2, _, rotation2, _ = normalize(edited)
    np.testing.assert_allclose(rotation2, rotation, atol=1e-6)
    after = gaze_from_normalized(normalized2)
    # the image shift seen in the head's frame: R^T (dx, dy, 0) / s, x over eye width and radius
    shift_head = rotation.T @ np.array([*(shift_px * direction), 0.0]) / scale
    start = np.sin(np.radians(before[:, 0]))
    expected = np.degrees(np.arcsin(start + shift_head[0] / (EYEBALL_RADIUS_OVER_EYE_WIDTH * eye_width)))
    np.testing.assert_allclose(after[:, 0], expected, atol=0.05)
    assert np.abs(shift_head[0] / (EYEBALL_RADIUS_OVER_EYE_WIDTH * eye_width) - 0.3).max() < 0.03
    np.testing.assert_allclose(after[:, 1], before[:, 1], atol=1.0)
    assert (after[:, 0] > before[:, 0] + 10).all(), "iris moved to the image's right -> yaw grows"


def test_gaze_bins():
    bins = GazeBins(yaw_range=(-30, 30), pitch_range=(-20, 20), n_yaw=6, n_pitch=4)
    assert bins.n_bins == 24 and bins.centers.shape == (24, 2)
    np.testing.assert_array_equal(bins.encode(bins.centers), np.arange(24))
    np.testing.assert_array_equal(bins.encode(bins.decode(np.arange(24))), np.arange(24))
    assert bins.encode(np.array([-100.0, -100.0])) == 0
    assert bins.encode(np.array([100.0, 100.0])) == 23
    np.testing.assert_allclose(bins.decode(bins.encode(np.array([12.0, 7.0]))), [15.0, 5.0])
    onehot = np.eye(24)[[3, 17]]
    np.testing.assert_allclose(bins.decode_probabilities(onehot), bins.centers[[3, 17]])
    with pytest.raises(ValueError):
        bins.decode(np.array([24]))
    with pytest.raises(ValueError):
        GazeBins(yaw_range=(10, -10))


# --- blinks --------------------------------------------------------------------------------


def test_closing_lids_drops_aperture(portrait_landmarks):
    normalized, *_ = normalize(portrait_landmarks)
    open_ = eye_aperture(normalized)
    assert (open_ > 0.15).all() and (open_ < 0.6).all()
    shut = eye_aperture(close_eyes(normalized, 1.0))
    assert (shut < 0.2 * open_).all()
    half = eye_aperture(close_eyes(normalized, 0.5))
    assert ((half > shut) & (half < open_)).all()


def test_a_widened_eye_shuts_in_a_blink_as_far_as_the_portraits(portrait_landmarks):
    """A blink shuts the lids however wide an expression opened them: with the portrait's shape as
    reference, a widened eye (surprise) shuts to the portrait's shut gap, not to CLOSED_LID_GAP of
    its own wider gap (a sliver of eye stayed open in surprised blinks); an eye no wider than the
    reference's closes exactly as without one."""
    normalized, *_ = normalize(portrait_landmarks)
    widened = close_eyes(normalized, -0.8)
    assert (eye_aperture(widened) > 1.5 * eye_aperture(normalized)).all()
    shut_portrait = eye_aperture(close_eyes(normalized, 1.0))
    np.testing.assert_allclose(eye_aperture(close_eyes(widened, 1.0, reference=normalized)), shut_portrait, rtol=1e-3)
    assert (eye_aperture(close_eyes(widened, 1.0)) > 1.5 * shut_portrait).all()  # without a reference
    half = eye_aperture(close_eyes(widened, 0.5, reference=normalized))
    assert ((half > shut_portrait) & (half < eye_aperture(widened))).all()
    narrowed = close_eyes(normalized, 0.4)
    for amount in (0.3, 1.0):
        np.testing.assert_array_equal(close_eyes(narrowed, amount, reference=normalized), close_eyes(narrowed, amount))


def test_blink_events_found_at_known_frames(portrait_landmarks):
    normalized, *_ = normalize(portrait_landmarks)
    closure = np.zeros(100)
    closure[20:24] = 1.0  # a 4-frame blink
    closure[60:63] = [0.6, 1.0, 0.6]  # a 3-frame blink
    closure[80:100] = 1.0  # eyes shut for 0.8 s+ at the end: not a blink
    sequence = close_eyes(np.broadcast_to(normalized, (100, *normalized.shape)), closure)
    events = detect_blinks(eye_aperture(sequence), fps=25, max_duration_s=0.5)
    assert events == [(20, 24), (60, 63)]


def test_open_mouth_moves_lower_lip_only(portrait_landmarks):
    normalized, *_ = normalize(portrait_landmarks)
    opened = open_mouth(normalized, 0.2)
    assert opened[14, 1] - normalized[14, 1] == pytest.approx(0.2, abs=0.005)  # lower inner lip
    assert opened[152, 1] - normalized[152, 1] == pytest.approx(0.2, rel=0.1)  # chin
    np.testing.assert_allclose(opened[[13, 10, 1, 33, 263]], normalized[[13, 10, 1, 33, 263]])


# --- FaceCues container --------------------------------------------------------------------


def _cues(portrait_landmarks, n=12):
    rng = np.random.default_rng(1)
    points = np.repeat(portrait_landmarks[None], n, axis=0) + rng.normal(scale=0.3, size=(n, N_LANDMARKS, 3)).astype(np.float32)
    return FaceCues.from_landmarks(points, fps=25.0, image_size=(512, 512), meta={"source": "test"})


def test_face_cues_save_load_round_trip(tmp_path, portrait_landmarks):
    cues = _cues(portrait_landmarks)
    path = cues.save(tmp_path / "c.npz")
    loaded = FaceCues.load(path)
    for name in ("normalized", "scale", "rotation", "translation", "gaze", "aperture", "valid", "identity"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(cues, name))
    assert loaded.fps == 25.0 and loaded.image_size == (512, 512) and loaded.meta == {"source": "test"}
    np.testing.assert_allclose(loaded.landmarks(), cues.landmarks())
    assert cues.pose_angles.shape == (12, 3) and cues.combined_gaze.shape == (12, 2)
    assert cues.slice(2, 5).n_frames == 3
    assert not list(tmp_path.glob("*.tmp*")), "no temp files left behind"


def test_face_cues_load_errors(tmp_path, portrait_landmarks):
    with pytest.raises(InputError, match="not found"):
        FaceCues.load(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"this is not a zip file")
    with pytest.raises(CheckpointError, match="bad.npz"):
        FaceCues.load(bad)
    other = tmp_path / "other.npz"
    np.savez(other, kind="something.else", x=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a facecue cue file"):
        FaceCues.load(other)
    good = _cues(portrait_landmarks).save(tmp_path / "good.npz")
    data = dict(np.load(good))
    data["version"] = np.int64(99)
    newer = tmp_path / "newer.npz"
    np.savez(newer, **data)
    with pytest.raises(CheckpointError, match="newer"):
        FaceCues.load(newer)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(CheckpointError):
        FaceCues.load(truncated)


def test_face_cues_rejects_wrong_shapes(portrait_landmarks):
    cues = _cues(portrait_landmarks)
    with pytest.raises(InputError, match="gaze"):
        FaceCues(cues.normalized, cues.scale, cues.rotation, cues.translation, cues.gaze[:-1], cues.aperture,
                 cues.valid, cues.identity, 25.0, (512, 512))


def test_mirror_indices_pair_each_point_with_its_mirror_partner():
    """Its own inverse, the midline fixed, and MediaPipe's named contours (FACEMESH_LIPS, eyes)
    mapped onto their mirror contours point for point: the inner lips' crowded corners included,
    which the nearest mirrored point paired with the next ring (78 -> 292, 80 -> 272, ...)."""
    from facecue.cues import mirror_indices, mirror_shape

    mirror = mirror_indices()
    assert np.array_equal(mirror[mirror], np.arange(N_LANDMARKS))
    for midline in (0, 1, 2, 13, 14, 17, 152, 10, 168):
        assert mirror[midline] == midline
    upper_inner = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]  # MediaPipe's lipsUpperInner
    lower_inner = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
    upper_outer = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291]
    for contour in (upper_inner, lower_inner, upper_outer):
        assert list(mirror[contour]) == contour[::-1]
    assert mirror[33] == 263 and mirror[133] == 362 and mirror[LEFT_IRIS[0]] == RIGHT_IRIS[0]
    shape = np.random.default_rng(0).normal(size=(N_LANDMARKS, 3))
    np.testing.assert_allclose(mirror_shape(mirror_shape(shape)), shape)
