"""MediaPipe landmarks on real images: detection, no-face and several-face handling, tracking, crops."""

from __future__ import annotations

import subprocess
import sys
import warnings

import cv2
import numpy as np
import pytest

from facecue.constants import LEFT_EYE_CORNERS, N_LANDMARKS, RIGHT_EYE_CORNERS
from facecue.errors import NoFaceError
from facecue.landmarks import (
    alignment_matrix,
    crop_face,
    detect_landmarks,
    distinct_faces,
    eye_corner_distance,
    face_bbox,
    face_size,
    track_landmarks,
    transform_landmarks,
    window_starts,
)


def test_detect_on_portrait(portrait, portrait_landmarks):
    assert portrait_landmarks.shape == (N_LANDMARKS, 3) and portrait_landmarks.dtype == np.float32
    x0, y0, x1, y1 = face_bbox(portrait_landmarks)
    h, w = portrait.shape[:2]
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    # the astronaut's face sits in the upper middle of the 512 px picture
    assert 150 < (x0 + x1) / 2 < 300 and 50 < (y0 + y1) / 2 < 250
    assert 100 < face_size(portrait_landmarks) < 400
    # iris centres lie between their eye's corners
    for corners, iris in ((RIGHT_EYE_CORNERS, 468), (LEFT_EYE_CORNERS, 473)):
        xs = sorted(portrait_landmarks[list(corners), 0])
        assert xs[0] < portrait_landmarks[iris, 0] < xs[1]


def test_no_face_is_a_clear_error():
    blank = np.full((256, 256, 3), 127, np.uint8)
    with pytest.raises(NoFaceError, match="blank.png: no face"):
        detect_landmarks(blank, source="blank.png")
    with pytest.raises(NoFaceError, match="no face found in any of the 3 frames"):
        track_landmarks([blank] * 3, source="clip.mp4")


def test_several_faces_picks_the_largest_with_a_warning(portrait):
    face = portrait[0:360, 60:420]  # the astronaut's head and shoulders
    canvas = np.full((360, 600, 3), 200, np.uint8)
    canvas[:, :360] = face
    canvas[30:330, 300:600] = cv2.resize(face, (300, 300), interpolation=cv2.INTER_AREA)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        points = detect_landmarks(canvas, source="two.png")
    assert any("2 faces found" in str(w.message) for w in caught)
    assert face_bbox(points)[0] < 250, "the larger face on the left was chosen"


@pytest.mark.parametrize("side, corner", [(1536, (1024, 0)), (3072, (1280, 2304))])
def test_a_face_too_small_for_the_detector_is_found_in_windows_and_fitted_as_in_a_portrait(
        portrait, portrait_landmarks, side, corner):
    """The portrait (its face 93 px wide) on a grey canvas 3x and 6x its size, where MediaPipe's
    detector alone finds no face: found, and the landmarks within 1 % of the eye-corner distance of
    the portrait's own, moved by where it was pasted."""
    canvas = np.full((side, side, 3), 128, np.uint8)
    x, y = corner
    canvas[y:y + portrait.shape[0], x:x + portrait.shape[1]] = portrait
    with pytest.raises(NoFaceError):
        detect_landmarks(canvas, search=False)
    points = detect_landmarks(canvas, source="wide.png")
    error = np.linalg.norm(points[:, :2] - (portrait_landmarks[:, :2] + corner), axis=1)
    assert np.median(error) < 0.01 * eye_corner_distance(portrait_landmarks)


def test_a_video_s_face_too_small_for_the_detector_is_tracked_in_a_window(portrait, portrait_landmarks, monkeypatch):
    """A wide shot: the portrait moving across a 1920x1080 grey frame (its face 93 px wide), where
    the tracker alone finds no face. Tracked in a window around it: every frame, within 2 % of the
    eye-corner distance of the portrait's own landmarks, moved with it."""
    import facecue.landmarks as landmarks

    shifts = [(1200 + 6 * t, 400 + 3 * t) for t in range(8)]
    frames = []
    for x, y in shifts:
        frame = np.full((1080, 1920, 3), 128, np.uint8)
        frame[y:y + portrait.shape[0], x:x + portrait.shape[1]] = portrait
        frames.append(frame)
    points, valid = track_landmarks(frames, source="wide.mp4")
    assert valid.all()
    error = np.linalg.norm(points[:, :, :2] - (portrait_landmarks[None, :, :2] + np.array(shifts)[:, None]), axis=2)
    assert np.median(error, axis=1).max() < 0.02 * eye_corner_distance(portrait_landmarks)
    monkeypatch.setattr(landmarks, "_search_face", lambda frame: (False, None))
    with pytest.raises(NoFaceError, match="no face found in any of the 8 frames"):
        track_landmarks(frames, source="wide.mp4")


def test_a_small_face_that_enters_later_or_leaves_its_window_is_searched_for_again(portrait, portrait_landmarks,
                                                                                    monkeypatch):
    """A wide shot that opens on an empty 1920x1080 frame, then shows the portrait (its face 93 px
    wide, too small for the tracker alone), then cuts to it elsewhere, outside the window it was
    tracked in. With a search after every 4th frame in a row without a face, it is found at the
    search after it enters and after the cut, and from then on tracked within 2 % of the
    eye-corner distance of the portrait's own landmarks."""
    import facecue.landmarks as landmarks

    monkeypatch.setattr(landmarks, "FACE_SEARCH_EVERY", 4)
    places = [None] * 6 + [(200, 300)] * 7 + [(1300, 500)] * 7
    frames = []
    for place in places:
        frame = np.full((1080, 1920, 3), 128, np.uint8)
        if place is not None:
            x, y = place
            frame[y:y + portrait.shape[0], x:x + portrait.shape[1]] = portrait
        frames.append(frame)
    points, valid = track_landmarks(frames, source="wide.mp4")
    # searched at frames 0 and 3 (empty), 7 (found at the first place), 16 (lost at 13: found again)
    assert valid.tolist() == [False] * 7 + [True] * 6 + [False] * 3 + [True] * 4
    unit = eye_corner_distance(portrait_landmarks)
    for t in np.flatnonzero(valid):
        error = np.linalg.norm(points[t, :, :2] - (portrait_landmarks[:, :2] + places[t]), axis=1)
        assert np.median(error) < 0.02 * unit, t


def test_search_windows_cover_the_image_half_a_window_apart_and_count_each_face_once(portrait_landmarks):
    assert window_starts(1000, 1000) == [0] and window_starts(600, 1000) == [0]
    assert window_starts(1000, 500) == [0, 250, 500]
    starts = window_starts(1100, 500)  # 600 px beyond the first window: 3 steps of 200 px
    assert starts == [0, 200, 400, 600] and starts[-1] + 500 == 1100
    moved = portrait_landmarks.copy()
    moved[:, :2] += 5  # the same face found from another window
    elsewhere = portrait_landmarks.copy()
    elsewhere[:, :2] = elsewhere[:, :2] * 0.5 + 600  # a smaller face beside it
    kept = distinct_faces([elsewhere, moved, portrait_landmarks])
    assert len(kept) == 2 and kept[1] is elsewhere


def test_tracking_follows_a_moving_face(portrait, portrait_landmarks):
    frames = [np.roll(portrait, shift=4 * k, axis=1) for k in range(6)]
    frames.insert(3, np.full_like(portrait, 127))  # a frame without a face
    points, valid = track_landmarks(frames)
    assert points.shape == (7, N_LANDMARKS, 3)
    assert valid.tolist() == [True, True, True, False, True, True, True]
    dx = points[:, 1, 0] - portrait_landmarks[1, 0]
    expected = np.array([0, 4, 8, 8, 12, 16, 20], float)  # invalid frame holds a neighbour
    np.testing.assert_allclose(dx[valid], expected[valid], atol=1.5)


def test_tracking_progress_in_a_log_is_a_plain_line(portrait, stderr_log):
    """stderr a log file: the (transient) bar prints its first line, no redraws and no line per frame."""
    frames = [np.roll(portrait, shift=4 * k, axis=1) for k in range(3)]
    points, valid = track_landmarks(frames, progress=True, total=len(frames))
    assert points.shape == (3, N_LANDMARKS, 3) and valid.all()
    text = stderr_log.getvalue()
    assert "\r" not in text and "\x1b" not in text, text
    lines = stderr_log.bar_lines("landmarks")
    assert len(lines) == 1 and "0/3" in lines[0], text


def test_crop_face_puts_eyes_level_at_the_expected_place(portrait, portrait_landmarks):
    crop, matrix = crop_face(portrait, portrait_landmarks, 256)
    assert crop.shape == (256, 256, 3)
    moved = transform_landmarks(portrait_landmarks, matrix)
    right = moved[list(RIGHT_EYE_CORNERS), :2].mean(0)
    left = moved[list(LEFT_EYE_CORNERS), :2].mean(0)
    np.testing.assert_allclose((right + left) / 2, [128, 0.40 * 256], atol=0.5)
    assert abs(right[1] - left[1]) < 0.5
    # the landmarks re-detected on the crop agree with the transformed ones
    again = detect_landmarks(crop)
    assert np.median(np.linalg.norm(again[:, :2] - moved[:, :2], axis=1)) < 3.0
    back = cv2.invertAffineTransform(matrix)
    np.testing.assert_allclose(transform_landmarks(moved, back)[:, :2], portrait_landmarks[:, :2], atol=1e-3)
    assert alignment_matrix(portrait_landmarks, 512).shape == (2, 3)


def test_face_mesh_imports_without_the_rest_of_mediapipe_and_the_package_stays_whole():
    # a fresh interpreter: this one has imported mediapipe already
    script = (
        "import sys\n"
        "from facecue.landmarks import _face_mesh_module\n"
        "face_mesh = _face_mesh_module()\n"
        "assert face_mesh.FaceMesh, face_mesh\n"
        "lean = sorted(m for m in ('matplotlib', 'sounddevice', 'mediapipe.tasks') if m in sys.modules)\n"
        "import mediapipe\n"
        "from mediapipe.python.solutions import drawing_utils\n"
        "print(lean, mediapipe.__version__, mediapipe.solutions.face_mesh is face_mesh,\n"
        "      mediapipe.tasks.__name__, drawing_utils.__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lean, version, same, tasks, drawing = done.stdout.split()
    assert lean == "[]", "Face Mesh alone pulls in none of matplotlib, sounddevice, mediapipe.tasks"
    assert version == mediapipe_version() and same == "True"
    assert tasks == "mediapipe.tasks.python" and drawing == "mediapipe.python.solutions.drawing_utils"


def mediapipe_version() -> str:
    from importlib.metadata import version

    return version("mediapipe")


def test_eye_corner_distance_is_the_outer_corners_distance_for_one_frame_or_many():
    """``eye_corner_distance``: MediaPipe 33 to 263 in the image plane (depth ignored), a float for
    one (478, 3) frame and a (T,) array for (T, 478, 3)."""
    frame = np.zeros((478, 3))
    frame[263] = (3.0, 4.0, 7.0)
    assert eye_corner_distance(frame) == 5.0 and isinstance(eye_corner_distance(frame), float)
    frames = np.stack([frame, 2 * frame])
    np.testing.assert_allclose(eye_corner_distance(frames), [5.0, 10.0])
