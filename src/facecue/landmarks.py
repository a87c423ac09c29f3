"""MediaPipe Face Mesh landmarks (478 3D points with iris refinement) and face crop helpers.

Coordinates returned by this module are **pixels**: ``x`` and ``y`` in the image's pixel grid
(origin top-left, y down) and ``z`` on the same scale as ``x`` (MediaPipe's relative depth times
the image width; smaller is closer to the camera).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import sys
import threading
import types
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from .constants import CROP_SIZE, LEFT_EYE_CORNERS, N_LANDMARKS, N_MESH_POINTS, RIGHT_EYE_CORNERS
from .errors import InputError, NoFaceError

log = logging.getLogger(__name__)

MIN_DETECTION_CONFIDENCE = 0.5
MIN_TRACKING_CONFIDENCE = 0.5
MAX_FACES_SEARCHED = 5  # faces looked for in a still image before picking the largest
REFINE_PASSES = 2  # extra tracking passes over a still image (see detect_landmarks)
FIRST_FRAME_PASSES = 3  # a video's first frame is tracked this many times (same reason)
_NOISY_FIRST_FRAMES = 3  # frames whose native log output is silenced
# MediaPipe's face detector misses faces narrower than about a ninth of the image's longer side
# (the NASA portrait's face, 93 px wide, pasted on grey canvases: found on 768 px, missed on 896 px
# and larger): half-body, full-length and group photographs. A still image where it finds none is
# searched again in overlapping square windows of these fractions of its longer side, coarse to
# fine (each window the detector's own size range), and the face found is fitted again in a window
# FACE_WINDOW_SIZES times its size around it, where it is as large as in a usual portrait.
SEARCH_WINDOW_FRACTIONS = (0.5, 0.25, 0.125)
MIN_SEARCH_WINDOW = 128  # px: smaller windows would hold faces too small to animate
FACE_WINDOW_SIZES = 3.0
# A video's face too small for the detector is tracked in a fixed window this many times its size
# (the head moves within it; a quarter of the window, the face is well inside the detector's range).
VIDEO_FACE_WINDOW_SIZES = 4.0
# A video's face lost for this many frames in a row is searched for again in the whole frame (the
# window search above): a small face that enters the shot later, or leaves its tracking window, is
# found within about a second at 25 fps. The search costs 0.1-2 s a time, so not every frame.
FACE_SEARCH_EVERY = 25


@contextlib.contextmanager
def _native_stderr_silenced():
    """Send file descriptor 2 to /dev/null while TFLite/absl start up (they print INFO/WARNING
    lines from C++ that no Python setting reaches). Python-level errors are unaffected."""
    if os.environ.get("FACECUE_DEBUG_NATIVE"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


# Packages whose ``__init__`` import everything MediaPipe offers; see _face_mesh_module.
_DEFERRED_PACKAGES = ("mediapipe", "mediapipe.python.solutions")
_import_lock = threading.RLock()


def _deferred_package(name: str) -> types.ModuleType:
    """Register package ``name`` in ``sys.modules`` without running its ``__init__``; the
    ``__init__`` runs (into the same module object) the first time an attribute the package does
    not yet have is asked for, so later users of the package see the usual one."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        raise ImportError(f"{name} is not an importable package")
    package = importlib.util.module_from_spec(spec)

    def finish_import(attribute: str):
        with _import_lock:
            if package.__dict__.get("__getattr__") is finish_import:
                del package.__dict__["__getattr__"]
                spec.loader.exec_module(package)
        return object.__getattribute__(package, attribute)

    package.__getattr__ = finish_import  # PEP 562: asked only for attributes the module lacks
    sys.modules[name] = package
    return package


def _face_mesh_module() -> types.ModuleType:
    """MediaPipe's Face Mesh solution module (imported on first use).

    ``import mediapipe`` runs the package's ``__init__``, which imports every solution and task,
    among them matplotlib (through ``drawing_utils``) and sounddevice (which runs ldconfig and gcc
    looking for PortAudio): about 0.75 s of its 0.9 s, on the critical path of every ``generate``,
    for modules Face Mesh never uses. So when no one has imported mediapipe yet, ``mediapipe`` and
    ``mediapipe.python.solutions`` are registered without their ``__init__`` (see
    :func:`_deferred_package`) and only the Face Mesh modules are imported; if that fails for any
    reason, the usual import runs instead.
    """
    with _import_lock:
        if "mediapipe" not in sys.modules:
            before = set(sys.modules)
            try:
                for name in _DEFERRED_PACKAGES:
                    _deferred_package(name)
                return importlib.import_module("mediapipe.python.solutions.face_mesh")
            except Exception as exc:  # e.g. another mediapipe layout: fall back to the plain import
                log.debug("lean mediapipe import failed (%s); importing the whole package", exc)
                for name in set(sys.modules) - before:
                    if name == "mediapipe" or name.startswith("mediapipe."):
                        del sys.modules[name]
    from mediapipe.python.solutions import face_mesh

    return face_mesh


def _to_pixels(face_landmarks, width: int, height: int) -> np.ndarray:
    """MediaPipe's normalized landmark list -> (478, 3) float32 pixels."""
    pts = np.array([(p.x, p.y, p.z) for p in face_landmarks.landmark], dtype=np.float32)
    if pts.shape[0] != N_LANDMARKS:
        raise RuntimeError(f"MediaPipe returned {pts.shape[0]} landmarks, expected {N_LANDMARKS}")
    pts[:, 0] *= width
    pts[:, 1] *= height
    pts[:, 2] *= width
    return pts


def _check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise InputError(None, f"expected an (H, W, 3) RGB image, got {getattr(image, 'shape', type(image))}")
    if image.dtype != np.uint8:
        raise InputError(None, f"expected a uint8 image, got {image.dtype}")
    return np.ascontiguousarray(image)


def face_bbox(landmarks: np.ndarray) -> np.ndarray:
    """Bounding box ``(x0, y0, x1, y1)`` of the 468 mesh points, pixels. Works on ``(..., 478, 3)``."""
    mesh = np.asarray(landmarks)[..., :N_MESH_POINTS, :2]
    return np.concatenate([mesh.min(axis=-2), mesh.max(axis=-2)], axis=-1)


def eye_corner_distance(landmarks: np.ndarray) -> np.ndarray | float:
    """Distance between the outer eye corners (MediaPipe 33 and 263), pixels: the face's unit of
    length for margins and blurs. ``(..., 478, 2+)`` -> ``(...)``."""
    pts = np.asarray(landmarks)
    distance = np.linalg.norm(pts[..., RIGHT_EYE_CORNERS[0], :2] - pts[..., LEFT_EYE_CORNERS[0], :2], axis=-1)
    return float(distance) if np.ndim(distance) == 0 else distance


def face_size(landmarks: np.ndarray) -> np.ndarray | float:
    """Face size: diagonal of the mesh bounding box, pixels. ``(..., 478, 3)`` -> ``(...)``."""
    box = face_bbox(landmarks)
    size = np.hypot(box[..., 2] - box[..., 0], box[..., 3] - box[..., 1])
    return float(size) if np.ndim(size) == 0 else size


def detect_landmarks(
    image: np.ndarray, *, source: str | Path | None = None, refine_passes: int = REFINE_PASSES, search: bool = True
) -> np.ndarray:
    """Landmarks of the face in a still image.

    MediaPipe's first pass fits the mesh inside the face detector's box; on raised brows or an
    open mouth that fit can be far off (brows 20 px low on a 256 px MEAD face). Tracking the same
    image again starts from the mesh's own box and converges in two or three passes; a pass that
    drifts to another face is ignored.

    Parameters
    ----------
    image : (H, W, 3) uint8 RGB
    source : file name used in error messages
    refine_passes : tracking passes over the same image after detection (0 = detection only)
    search : where the whole image shows no face, look for a smaller one in windows
        (:data:`SEARCH_WINDOW_FRACTIONS`) and fit it in a window around it

    Returns
    -------
    (478, 3) float32, pixels. With several faces, the largest one (a warning names the count).

    Raises
    ------
    NoFaceError when no face is found.
    """
    image = _check_image(image)
    face_mesh = _face_mesh_module()
    with _native_stderr_silenced(), face_mesh.FaceMesh(
        static_image_mode=True,
        max_num_faces=MAX_FACES_SEARCHED,
        refine_landmarks=True,
        min_detection_confidence=MIN_DETECTION_CONFIDENCE,
    ) as mesh:
        all_points = _faces_in(image, mesh)
        searched = not all_points and search
        if searched:
            all_points = _faces_in_windows(image, mesh)
    if not all_points:
        raise NoFaceError(source, "no face found in the image (a frontal, unoccluded face is needed)")
    if len(all_points) > 1:
        warnings.warn(
            f"{source or 'image'}: {len(all_points)} faces found; using the largest", stacklevel=2
        )
    areas = [np.prod(face_bbox(p)[2:] - face_bbox(p)[:2]) for p in all_points]
    points = all_points[int(np.argmax(areas))]
    if searched:
        return _fitted_in_window(image, points, source, refine_passes)
    if refine_passes <= 0 or len(all_points) > 1:
        return points
    with FaceTracker() as tracker:
        for _ in range(refine_passes + 1):
            tracked = tracker.track(image)
    if tracked is None:
        return points
    drift = np.median(np.linalg.norm(tracked[:N_MESH_POINTS, :2] - points[:N_MESH_POINTS, :2], axis=1))
    return tracked if drift < 0.1 * face_size(points) else points


def _faces_in(image: np.ndarray, mesh) -> list[np.ndarray]:
    """(478, 3) float32 pixel landmarks of each face a static-image FaceMesh finds in ``image``."""
    result = mesh.process(np.ascontiguousarray(image))
    return [_to_pixels(f, image.shape[1], image.shape[0]) for f in result.multi_face_landmarks or []]


def window_starts(length: int, side: int) -> list[int]:
    """Offsets (px) of windows ``side`` px long that cover ``length`` px, half a window apart
    (the last one ends at ``length``)."""
    if side >= length:
        return [0]
    steps = int(np.ceil((length - side) / (side / 2)))
    return sorted({int(round(v)) for v in np.linspace(0, length - side, steps + 1)})


def _faces_in_windows(image: np.ndarray, mesh) -> list[np.ndarray]:
    """Faces found in overlapping square windows (:data:`SEARCH_WINDOW_FRACTIONS`), landmarks in
    the image's pixels; the first window size that finds any wins, each face once."""
    height, width = image.shape[:2]
    for fraction in SEARCH_WINDOW_FRACTIONS:
        side = int(round(fraction * max(height, width)))
        if side < MIN_SEARCH_WINDOW:
            break
        found = []
        for y0 in window_starts(height, side):
            for x0 in window_starts(width, side):
                for points in _faces_in(image[y0:y0 + side, x0:x0 + side], mesh):
                    points[:, :2] += (x0, y0)
                    found.append(points)
        if found:
            return distinct_faces(found)
    return []


def distinct_faces(faces: list[np.ndarray]) -> list[np.ndarray]:
    """The faces of ``faces`` ((478, 3) pixels each) once each: overlapping windows find one face
    several times, so a face whose centre lies in a larger one's mesh box is the same face."""
    kept: list[np.ndarray] = []
    for points in sorted(faces, key=face_size, reverse=True):
        centre = points[:N_MESH_POINTS, :2].mean(axis=0)
        if not any(np.all((face_bbox(k)[:2] <= centre) & (centre <= face_bbox(k)[2:])) for k in kept):
            kept.append(points)
    return kept


def _fitted_in_window(image: np.ndarray, points: np.ndarray, source, refine_passes: int) -> np.ndarray:
    """``points`` (a face found by the window search) fitted again, as a usual portrait's face is,
    in a square window :data:`FACE_WINDOW_SIZES` times its mesh box around it (kept inside the
    image); ``points`` themselves where that fit finds no face."""
    x0, y0, side = face_window(points, FACE_WINDOW_SIZES, image.shape[:2])
    try:
        fitted = detect_landmarks(image[y0:y0 + side, x0:x0 + side], source=source, refine_passes=refine_passes,
                                  search=False)
    except NoFaceError:
        return points
    fitted[:, :2] += (x0, y0)
    return fitted


def face_window(points: np.ndarray, sizes: float, image_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """``(x0, y0, side)`` pixels: a square window ``sizes`` times the larger side of the face's
    mesh box (``points`` (478, 3) pixels), centred on it and moved inside the image (``image_shape``
    (H, W, ...)); at most the image's longer side (then cut by the image on its shorter side)."""
    height, width = image_shape[:2]
    box = face_bbox(points)
    side = int(min(max(height, width), round(sizes * float(np.max(box[2:] - box[:2])))))
    x0, y0 = ((box[:2] + box[2:]) / 2 - side / 2).round().astype(int)
    return int(np.clip(x0, 0, max(width - side, 0))), int(np.clip(y0, 0, max(height - side, 0))), side


class FaceTracker:
    """Landmarks frame by frame through MediaPipe's video mode (detection, then tracking).

    Use as a context manager; ``track(frame)`` returns ``(478, 3)`` float32 pixels or ``None``
    when the frame has no face.
    """

    def __init__(self) -> None:
        # MediaPipe's graph threads print TFLite banners during start-up and the first
        # inferences, asynchronously: keep native stderr silenced until a few frames are done.
        self._silencer = _native_stderr_silenced()
        self._silencer.__enter__()
        self._silenced = True
        try:
            self._mesh = _face_mesh_module().FaceMesh(
                static_image_mode=False,
                max_num_faces=1,
                refine_landmarks=True,
                min_detection_confidence=MIN_DETECTION_CONFIDENCE,
                min_tracking_confidence=MIN_TRACKING_CONFIDENCE,
            )
        except BaseException:
            self._unsilence()
            raise
        self._frames_seen = 0

    def _unsilence(self) -> None:
        if self._silenced:
            self._silenced = False
            self._silencer.__exit__(None, None, None)

    def track(self, frame: np.ndarray) -> np.ndarray | None:
        frame = _check_image(frame)
        result = self._mesh.process(frame)
        self._frames_seen += 1
        if self._frames_seen >= _NOISY_FIRST_FRAMES:
            self._unsilence()
        if not result.multi_face_landmarks:
            return None
        return _to_pixels(result.multi_face_landmarks[0], frame.shape[1], frame.shape[0])

    def close(self) -> None:
        self._unsilence()
        self._mesh.close()

    def __enter__(self) -> FaceTracker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def iter_tracked_landmarks(frames: Iterable[np.ndarray]) -> Iterator[np.ndarray | None]:
    """Stream ``(478, 3)`` pixel landmarks (or ``None``) for each frame of an iterable.

    A face too small for the detector (a speaker in a wide shot; see
    :data:`SEARCH_WINDOW_FRACTIONS`) is found by :func:`detect_landmarks`' window search and
    tracked in a fixed window :data:`VIDEO_FACE_WINDOW_SIZES` times its size around it. The search
    runs on the first frame when the tracker finds no face there, and again after every
    :data:`FACE_SEARCH_EVERY` frames in a row without one: a small face that enters the shot later,
    or one that leaves its window, is found again (and a face grown large enough is tracked in the
    whole frame again)."""
    window: tuple[int, int, int] | None = None  # (x0, y0, side) the tracker sees; None: the whole frame
    lost = 0
    with contextlib.ExitStack() as stack:
        tracker = stack.enter_context(FaceTracker())
        for index, frame in enumerate(frames):
            view = _window_view(frame, window)
            points = _track_first_frame(tracker, view) if index == 0 else tracker.track(view)
            lost = 0 if points is not None else lost + 1
            if points is None and (index == 0 or lost % FACE_SEARCH_EVERY == 0):
                found, moved_to = _search_face(frame)
                if found and moved_to != window:
                    window = moved_to
                    stack.close()
                    tracker = stack.enter_context(FaceTracker())
                    points = _track_first_frame(tracker, _window_view(frame, window))
                    lost = 0 if points is not None else lost
            if points is not None and window is not None:  # window pixels -> frame pixels
                points[:, :2] += window[:2]
            yield points


def _window_view(frame: np.ndarray, window: tuple[int, int, int] | None) -> np.ndarray:
    """The part of ``frame`` inside ``window`` ``(x0, y0, side)`` (cut by the frame), or all of it."""
    if window is None:
        return frame
    x0, y0, side = window
    return frame[y0:y0 + side, x0:x0 + side]


def _track_first_frame(tracker: FaceTracker, frame: np.ndarray) -> np.ndarray | None:
    """A video's first frame (or the first in a new tracking window) tracked
    :data:`FIRST_FRAME_PASSES` times: a cold detection's fit can be off, so tracking converges
    first."""
    for _ in range(FIRST_FRAME_PASSES - 1):
        tracker.track(frame)
    return tracker.track(frame)


def _search_face(frame: np.ndarray) -> tuple[bool, tuple[int, int, int] | None]:
    """Whether :func:`detect_landmarks` (with its window search) finds a face in a video frame the
    tracker found none in, and where to track it: ``(x0, y0, side)``, a window
    :data:`VIDEO_FACE_WINDOW_SIZES` times the face's size (:func:`face_window`), or None for the
    whole frame (when the window would be the frame)."""
    try:
        points = detect_landmarks(frame, refine_passes=0)
    except NoFaceError:
        return False, None
    x0, y0, side = face_window(points, VIDEO_FACE_WINDOW_SIZES, frame.shape)
    return True, (None if side >= max(frame.shape[:2]) else (x0, y0, side))


def track_landmarks(
    frames: Iterable[np.ndarray],
    *,
    source: str | Path | None = None,
    progress: bool = False,
    total: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks of a frame sequence (a video), tracked.

    Frames where no face is found take the landmarks of the nearest frame that has one, and are
    flagged invalid.

    Returns
    -------
    landmarks : (T, 478, 3) float32, pixels
    valid : (T,) bool, False where the face was not found

    Raises
    ------
    NoFaceError when no frame has a face.
    """
    found: list[np.ndarray | None] = []
    iterator = iter_tracked_landmarks(frames)
    if progress:
        from .progress import progress_bar

        iterator = progress_bar(iterator, total=total, desc="landmarks", unit="frame", leave=False)
    for points in iterator:
        found.append(points)
    valid = np.array([p is not None for p in found], dtype=bool)
    if not valid.any():
        raise NoFaceError(source, f"no face found in any of the {len(found)} frames")
    if not valid.all():
        log.warning("%s: no face in %d of %d frames; held from neighbours", source, (~valid).sum(), len(found))
    good = np.flatnonzero(valid)
    out = np.empty((len(found), N_LANDMARKS, 3), dtype=np.float32)
    for t in range(len(found)):
        nearest = good[np.argmin(np.abs(good - t))]
        out[t] = found[nearest]
    return out, valid


# --- crop / align --------------------------------------------------------------------------


def alignment_matrix(
    landmarks: np.ndarray,
    size: int = CROP_SIZE,
    *,
    face_fraction: float = 0.55,
    eye_height: float = 0.40,
    keep_rotation: bool = False,
) -> np.ndarray:
    """Similarity transform (2x3) mapping image pixels to an aligned square face crop.

    The eyes' midpoint lands at ``(size/2, eye_height*size)``; the face (mesh bounding-box
    diagonal) spans ``face_fraction`` of the crop's diagonal; the eye line is made horizontal
    unless ``keep_rotation``.

    Parameters
    ----------
    landmarks : (478, 3) pixels
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    right_eye = pts[list(RIGHT_EYE_CORNERS), :2].mean(axis=0)
    left_eye = pts[list(LEFT_EYE_CORNERS), :2].mean(axis=0)
    centre = (right_eye + left_eye) / 2
    dx, dy = left_eye - right_eye
    angle = 0.0 if keep_rotation else np.arctan2(dy, dx)
    scale = face_fraction * size * np.sqrt(2) / face_size(pts)
    cos, sin = scale * np.cos(-angle), scale * np.sin(-angle)
    linear = np.array([[cos, -sin], [sin, cos]])
    target = np.array([size / 2, eye_height * size])
    offset = target - linear @ centre
    return np.hstack([linear, offset[:, None]]).astype(np.float64)


def transform_landmarks(landmarks: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 similarity to ``(..., 478, 3)`` pixel landmarks; z is scaled like x and y."""
    pts = np.asarray(landmarks, dtype=np.float32)
    matrix = np.asarray(matrix, dtype=np.float64)
    scale = np.sqrt(abs(np.linalg.det(matrix[:, :2])))
    out = pts.copy()
    out[..., :2] = pts[..., :2] @ matrix[:, :2].T.astype(np.float32) + matrix[:, 2].astype(np.float32)
    out[..., 2] = pts[..., 2] * scale
    return out


def crop_face(
    image: np.ndarray, landmarks: np.ndarray, size: int = CROP_SIZE, **alignment
) -> tuple[np.ndarray, np.ndarray]:
    """Aligned square crop of the face.

    Returns
    -------
    crop : (size, size, 3) uint8
    matrix : (2, 3) image -> crop similarity (invert with ``cv2.invertAffineTransform``)
    """
    matrix = alignment_matrix(landmarks, size, **alignment)
    crop = cv2.warpAffine(
        _check_image(image), matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101
    )
    return crop, matrix
