"""Facial cues: the paper's decomposition of landmarks into expression, head pose, gaze and blinks,
and its inverse (relocation).

Frames and units
----------------
* **Image landmarks** ``X``: ``(T, 478, 3)`` float32 pixels (see :mod:`facecue.landmarks`).
* **Canonical frame**: the frame of the shipped face template (``assets/face_template.npz``), built
  from real faces looking at the camera: x to the image's right, y down, z away from the camera,
  origin at the centroid of the expression-stable points, unit = the distance between the outer
  eye corners (about 9 cm on an adult).
* **Head pose** per frame: a similarity ``X = s R L + T`` from canonical to image space:
  ``rotation`` (3, 3), ``translation`` (3,) pixels, ``scale`` pixels per canonical unit. As angles
  (degrees) with ``R = Ry(yaw) Rx(pitch) Rz(roll)``: yaw > 0 turns the face toward the image's
  right, pitch > 0 lifts the chin (face looks up), roll > 0 tilts the head clockwise in the image.
* **Normalized landmarks** ``L = R^T (X - T) / s``: ``(T, 478, 3)`` canonical units.
* **Gaze** per eye: (yaw, pitch) in degrees of the eyeball relative to the head, from the iris
  centre relative to the eye corners in the normalized frame; same sign convention as head pose
  (yaw > 0: looking toward the image's right; pitch > 0: looking up).
* **Aperture** per eye: mean upper-to-lower lid distance over the eye width (about 0.3 open, < 0.1
  closed).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from .assets import asset_path
from .constants import (
    CUES_FORMAT_VERSION,
    DEFAULT_FPS,
    LEFT_EYE_CORNERS,
    LEFT_EYELID_PAIRS,
    LEFT_IRIS,
    N_LANDMARKS,
    N_MESH_POINTS,
    RIGHT_EYE_CORNERS,
    RIGHT_EYELID_PAIRS,
    RIGHT_IRIS,
)
from .errors import CheckpointError, InputError, check_file_header

CUES_FILE_KIND = "facecue.cues"
TEMPLATE_FILE_KIND = "facecue.face_template"

# Expression-stable points of the MediaPipe mesh: upper forehead, nose bridge, eye corners,
# temples and upper cheekbones. Lips, jaw, eyelids, brows and iris are left out because they move
# with speech and emotion; a pose fitted on them would absorb expression. The nose tip is left out
# too: on the 24 MEAD clips it lowered the agreement of pitch with an independent 3DMM fit
# (median |r| 0.773 without it vs 0.750 with it; benchmarks/pose_vs_3dmm.py).
STABLE_POINTS = (
    # forehead (above the brows' reach)
    10, 151, 9, 109, 67, 103, 338, 297, 332, 108, 337, 69, 299,
    # nose bridge
    168, 6, 197, 195,
    # eye corners
    33, 133, 263, 362,
    # temples / side of the head
    127, 356, 162, 389, 34, 264, 139, 368,
    # upper cheekbones
    116, 345, 117, 346, 123, 352,
)

# Eyeball radius over eye width (corner to corner): ~12 mm over ~29 mm in adults. Converts the
# iris' displacement inside the eye into a rotation angle; an approximation, not a calibration.
EYEBALL_RADIUS_OVER_EYE_WIDTH = 0.42

ROBUST_ITERATIONS = 3  # reweighted pose fits; down-weights points an expression moved
ROBUST_SCALE = 2.5  # Cauchy scale in units of the median residual

EYES = ("right", "left")  # order of the per-eye axis (the subject's own right eye first)


# --- template ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaceTemplate:
    """Canonical face: mean neutral shape of real faces looking at the camera.

    points : (478, 3) float32 canonical units
    stable : (K,) int indices fitted for head pose
    mirror : (478,) int index of each point's mirror partner (x -> -x)
    """

    points: np.ndarray
    stable: np.ndarray
    mirror: np.ndarray
    description: str = ""

    def save(self, path: str | Path) -> None:
        np.savez_compressed(
            path,
            kind=TEMPLATE_FILE_KIND,
            points=self.points.astype(np.float32),
            stable=self.stable.astype(np.int32),
            mirror=self.mirror.astype(np.int32),
            description=self.description,
        )

    @classmethod
    def load(cls, path: str | Path) -> FaceTemplate:
        with np.load(path, allow_pickle=False) as data:
            if str(data.get("kind", "")) != TEMPLATE_FILE_KIND:
                raise CheckpointError(path, "not a facecue face template")
            return cls(
                points=data["points"].astype(np.float32),
                stable=data["stable"].astype(np.int64),
                mirror=data["mirror"].astype(np.int64),
                description=str(data["description"]),
            )


@lru_cache(maxsize=1)
def default_template() -> FaceTemplate:
    """The template shipped in the package (see ``scripts/build_template.py``)."""
    return FaceTemplate.load(asset_path("face_template.npz"))


# --- similarity fit ------------------------------------------------------------------------


# Weight of mesh agreement against distance (canonical units) when pairing mirror points: one
# neighbour that maps onto a neighbour outweighs 0.01 of distance.
MIRROR_MESH_WEIGHT = 0.01


@lru_cache(maxsize=1)
def mirror_indices() -> np.ndarray:
    """(478,) index of each landmark's left-right counterpart, its own inverse (the irises swap as
    wholes). Each point is paired with the point nearest its mirror image on the template, except
    where the mesh disagrees: the template's inner-lip corners are crowded, and nearest points
    paired the left inner lip (78, 80, 88, 95, 191) with the right lip's next ring (292, 272, 319,
    325, 407), which is not its own inverse. Pairs are chosen by one assignment that also counts
    how many of a point's mesh neighbours map onto its partner's, repeated until it settles."""
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION
    from scipy.optimize import linear_sum_assignment

    points = default_template().points[:N_MESH_POINTS].astype(np.float64)
    mirrored = points * np.array([-1.0, 1.0, 1.0])
    distance = np.linalg.norm(mirrored[:, None] - points[None], axis=-1)  # (468, 468)
    adjacency = np.zeros((N_MESH_POINTS, N_MESH_POINTS))
    for a, b in FACEMESH_TESSELATION:
        adjacency[a, b] = adjacency[b, a] = 1.0
    index = distance.argmin(axis=1)
    for _ in range(10):
        agreement = adjacency @ adjacency[index]  # [i, j]: neighbours of i mapped onto neighbours of j
        _, partner = linear_sum_assignment(distance - MIRROR_MESH_WEIGHT * agreement)  # rows in order
        if np.array_equal(partner, index):
            break
        index = partner
    return np.r_[index, np.arange(N_MESH_POINTS + 5, N_LANDMARKS), np.arange(N_MESH_POINTS, N_MESH_POINTS + 5)]


def mirror_shape(shape: np.ndarray) -> np.ndarray:
    """(..., 478, 3) canonical shapes or offsets mirrored left-right (x negated, sides swapped)."""
    return np.asarray(shape)[..., mirror_indices(), :] * np.array([-1.0, 1.0, 1.0])


def fit_similarity(
    source: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted Umeyama: ``target ~ s R source + T``, batched.

    Parameters
    ----------
    source : (K, 3) or (B, K, 3)
    target : (B, K, 3) or (K, 3)
    weights : (K,) or (B, K) non-negative, or None

    Returns
    -------
    scale (B,), rotation (B, 3, 3) proper, translation (B, 3); without a batch axis if neither
    input had one.
    """
    src = np.asarray(source, dtype=np.float64)
    dst = np.asarray(target, dtype=np.float64)
    batched = src.ndim == 3 or dst.ndim == 3
    src, dst = np.broadcast_arrays(np.atleast_3d(src) if src.ndim == 3 else src[None], dst if dst.ndim == 3 else dst[None])
    n_batch, n_points = dst.shape[:2]
    w = np.ones((n_batch, n_points)) if weights is None else np.broadcast_to(np.asarray(weights, dtype=np.float64), (n_batch, n_points))
    w = w / w.sum(axis=1, keepdims=True)
    mu_src = np.einsum("bk,bkd->bd", w, src)
    mu_dst = np.einsum("bk,bkd->bd", w, dst)
    src_c = src - mu_src[:, None]
    dst_c = dst - mu_dst[:, None]
    cov = np.einsum("bk,bki,bkj->bij", w, dst_c, src_c)  # (B, 3, 3)
    u, sigma, vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(u @ vt))
    correction = np.ones((n_batch, 3))
    correction[:, 2] = d
    rotation = u @ (correction[:, :, None] * vt)
    var_src = np.einsum("bk,bk->b", w, (src_c**2).sum(-1))
    scale = (sigma * correction).sum(-1) / var_src
    translation = mu_dst - scale[:, None] * np.einsum("bij,bj->bi", rotation, mu_src)
    if not batched:
        return scale[0], rotation[0], translation[0]
    return scale, rotation, translation


def fit_pose(
    landmarks: np.ndarray,
    reference: np.ndarray | None = None,
    stable: np.ndarray | None = None,
    robust_iterations: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Head pose of image landmarks against a reference shape, on the stable points.

    A weighted fit repeated with Cauchy weights on the residuals, so that a stable point that an
    expression did move (a frown reaching the forehead) loses its pull.

    Parameters
    ----------
    landmarks : (T, 478, 3) pixels
    reference : (478, 3) canonical units; default: the shipped template

    Returns
    -------
    scale (T,), rotation (T, 3, 3), translation (T, 3) pixels
    """
    template = default_template()
    reference = template.points if reference is None else reference
    stable = template.stable if stable is None else np.asarray(stable)
    ref = np.asarray(reference, dtype=np.float64)[stable]
    pts = np.asarray(landmarks, dtype=np.float64)[:, stable]
    robust_iterations = ROBUST_ITERATIONS if robust_iterations is None else robust_iterations
    weights = np.ones(pts.shape[:2])
    for iteration in range(robust_iterations + 1):
        scale, rotation, translation = fit_similarity(ref, pts, weights)
        if iteration == robust_iterations:
            break
        fitted = scale[:, None, None] * np.einsum("bij,kj->bki", rotation, ref) + translation[:, None]
        residual = np.linalg.norm(fitted - pts, axis=-1)  # (T, K) pixels
        spread = np.median(residual, axis=1, keepdims=True) * ROBUST_SCALE + 1e-9
        weights = 1.0 / (1.0 + (residual / spread) ** 2)
    return scale, rotation, translation


# --- rotations -----------------------------------------------------------------------------


def rotation_to_angles(rotation: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation -> (..., 3) (yaw, pitch, roll) degrees, ``R = Ry(yaw) Rx(pitch) Rz(roll)``."""
    r = np.asarray(rotation, dtype=np.float64)
    pitch = np.arcsin(np.clip(-r[..., 1, 2], -1.0, 1.0))
    yaw = np.arctan2(r[..., 0, 2], r[..., 2, 2])
    roll = np.arctan2(r[..., 1, 0], r[..., 1, 1])
    # The camera looks along +z with y down: a positive rotation about y moves the nose toward -x
    # on the image; flip so that yaw > 0 is the face turning to the image's right, and pitch > 0
    # the chin lifting. Roll about +z with y down is clockwise on screen already.
    return np.degrees(np.stack([-yaw, -pitch, roll], axis=-1))


def angles_to_rotation(angles: np.ndarray) -> np.ndarray:
    """(..., 3) (yaw, pitch, roll) degrees -> (..., 3, 3); inverse of :func:`rotation_to_angles`."""
    a = np.radians(np.asarray(angles, dtype=np.float64))
    yaw, pitch, roll = -a[..., 0], -a[..., 1], a[..., 2]
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    one, zero = np.ones_like(yaw), np.zeros_like(yaw)
    ry = np.stack([np.stack([cy, zero, sy], -1), np.stack([zero, one, zero], -1), np.stack([-sy, zero, cy], -1)], -2)
    rx = np.stack([np.stack([one, zero, zero], -1), np.stack([zero, cp, -sp], -1), np.stack([zero, sp, cp], -1)], -2)
    rz = np.stack([np.stack([cr, -sr, zero], -1), np.stack([sr, cr, zero], -1), np.stack([zero, zero, one], -1)], -2)
    return ry @ rx @ rz


# --- normalize / relocate ------------------------------------------------------------------


def normalize(
    landmarks: np.ndarray,
    reference: np.ndarray | None = None,
    *,
    refine_identity: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Remove head pose from image landmarks.

    Parameters
    ----------
    landmarks : (T, 478, 3) or (478, 3) pixels
    reference : (478, 3) canonical shape to fit; default the shipped template
    refine_identity : after a first fit, refit against this sequence's own median normalized
        shape (rigidly re-aligned to the reference), so that the pose follows the person's own
        face instead of the average one. Only used with T > 1.

    Returns
    -------
    normalized (T, 478, 3) canonical units, scale (T,), rotation (T, 3, 3), translation (T, 3)
    (without the T axis for a single frame).
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    single = pts.ndim == 2
    if single:
        pts = pts[None]
    if pts.ndim != 3 or pts.shape[1:] != (N_LANDMARKS, 3):
        raise InputError(None, f"expected landmarks of shape (T, {N_LANDMARKS}, 3), got {pts.shape}")
    template = default_template()
    reference = template.points if reference is None else np.asarray(reference, dtype=np.float64)
    scale, rotation, translation = fit_pose(pts, reference)
    if refine_identity and len(pts) > 1:
        normalized = _apply_inverse(pts, scale, rotation, translation)
        own = np.median(normalized, axis=0)
        # Keep the template's frame: align the person's shape to the template rigidly first.
        s0, r0, t0 = fit_similarity(own[template.stable], reference[template.stable])
        own = s0 * own @ r0.T + t0
        scale, rotation, translation = fit_pose(pts, own)
    normalized = _apply_inverse(pts, scale, rotation, translation)
    out = (normalized.astype(np.float32), scale.astype(np.float32), rotation.astype(np.float32), translation.astype(np.float32))
    return tuple(a[0] for a in out) if single else out


def _apply_inverse(pts, scale, rotation, translation):
    return np.einsum("bji,bkj->bki", rotation, pts - translation[:, None]) / scale[:, None, None]


def relocate(
    normalized: np.ndarray,
    scale: np.ndarray,
    rotation: np.ndarray,
    translation: np.ndarray,
    gaze: np.ndarray | None = None,
) -> np.ndarray:
    """Reassemble image-space landmarks from normalized landmarks, head pose and (optionally) gaze.

    Parameters
    ----------
    normalized : (T, 478, 3) canonical units
    scale (T,), rotation (T, 3, 3), translation (T, 3) pixels
    gaze : (T, 2, 2) degrees per eye (right, left) x (yaw, pitch), or None to keep the iris where
        the normalized landmarks have it.

    Returns
    -------
    (T, 478, 3) float32 pixels
    """
    norm = np.asarray(normalized, dtype=np.float64)
    single = norm.ndim == 2
    if single:
        norm, scale, rotation, translation = norm[None], np.atleast_1d(scale), np.asarray(rotation)[None], np.asarray(translation)[None]
        gaze = None if gaze is None else np.asarray(gaze)[None]
    if gaze is not None:
        norm = place_iris(norm, gaze)
    scale = np.asarray(scale, dtype=np.float64)
    rotation = np.asarray(rotation, dtype=np.float64)
    translation = np.asarray(translation, dtype=np.float64)
    out = scale[:, None, None] * np.einsum("bij,bkj->bki", rotation, norm) + translation[:, None]
    out = out.astype(np.float32)
    return out[0] if single else out


# --- gaze ----------------------------------------------------------------------------------

_EYE_INDEX = {
    "right": (RIGHT_EYE_CORNERS, RIGHT_IRIS, RIGHT_EYELID_PAIRS),
    "left": (LEFT_EYE_CORNERS, LEFT_IRIS, LEFT_EYELID_PAIRS),
}


def _eye_frame(norm: np.ndarray, eye: str) -> tuple[np.ndarray, np.ndarray]:
    """Eye centre (..., 3) (corner midpoint) and eye width (...,) in the normalized frame."""
    corners = _EYE_INDEX[eye][0]
    a, b = norm[..., corners[0], :], norm[..., corners[1], :]
    return (a + b) / 2, np.linalg.norm((a - b)[..., :2], axis=-1)


def _iris_offset(norm: np.ndarray, eye: str) -> np.ndarray:
    """(..., 2) iris centre minus eye centre over eye width, x and y."""
    centre, width = _eye_frame(norm, eye)
    iris = norm[..., _EYE_INDEX[eye][1][0], :]
    return (iris - centre)[..., :2] / width[..., None]


@lru_cache(maxsize=1)
def _rest_offsets() -> np.ndarray:
    """(2, 2) iris offset of the template (looking at the camera) per eye."""
    points = default_template().points
    return np.stack([_iris_offset(points, eye) for eye in EYES]).astype(np.float64)


def gaze_from_normalized(normalized: np.ndarray) -> np.ndarray:
    """Per-eye gaze from normalized landmarks.

    Parameters
    ----------
    normalized : (..., 478, 3) canonical units

    Returns
    -------
    (..., 2, 2) float32 degrees: eye (right, left) x (yaw, pitch)
    """
    norm = np.asarray(normalized, dtype=np.float64)
    rest = _rest_offsets()
    out = []
    for i, eye in enumerate(EYES):
        delta = (_iris_offset(norm, eye) - rest[i]) / EYEBALL_RADIUS_OVER_EYE_WIDTH
        yaw = np.degrees(np.arcsin(np.clip(delta[..., 0], -1, 1)))
        pitch = np.degrees(np.arcsin(np.clip(-delta[..., 1], -1, 1)))
        out.append(np.stack([yaw, pitch], axis=-1))
    return np.stack(out, axis=-2).astype(np.float32)


def combined_gaze(gaze: np.ndarray, aperture: np.ndarray | None = None) -> np.ndarray:
    """(..., 2, 2) per-eye gaze -> (..., 2) (yaw, pitch) degrees, weighted by eye aperture."""
    gaze = np.asarray(gaze, dtype=np.float64)
    if aperture is None:
        return gaze.mean(axis=-2).astype(np.float32)
    w = np.asarray(aperture, dtype=np.float64)[..., None] + 1e-6
    return ((gaze * w).sum(axis=-2) / w.sum(axis=-2)).astype(np.float32)


def place_iris(normalized: np.ndarray, gaze: np.ndarray) -> np.ndarray:
    """Move each iris (5 points) so that :func:`gaze_from_normalized` returns ``gaze``.

    Parameters
    ----------
    normalized : (..., 478, 3) canonical units
    gaze : (..., 2, 2) degrees, or (..., 2) one gaze for both eyes

    Returns
    -------
    (..., 478, 3) a copy with the iris points translated in x and y.
    """
    norm = np.array(normalized, dtype=np.float64, copy=True)
    gaze = np.asarray(gaze, dtype=np.float64)
    if gaze.shape[-1] == 2 and (gaze.ndim < 2 or gaze.shape[-2] != 2 or gaze.ndim == norm.ndim - 1):
        gaze = np.stack([gaze, gaze], axis=-2)
    rest = _rest_offsets()
    for i, eye in enumerate(EYES):
        centre, width = _eye_frame(norm, eye)
        rad = np.radians(gaze[..., i, :])
        offset = rest[i] + EYEBALL_RADIUS_OVER_EYE_WIDTH * np.stack([np.sin(rad[..., 0]), -np.sin(rad[..., 1])], axis=-1)
        target = centre[..., :2] + offset * width[..., None]
        iris = list(_EYE_INDEX[eye][1])
        shift = target - norm[..., iris[0], :2]
        norm[..., iris, :2] += shift[..., None, :]
    return norm


@dataclass(frozen=True)
class GazeBins:
    """Discretization of (yaw, pitch) gaze into a grid of bins, predicted by classification.

    Bin ``k = pitch_bin * n_yaw + yaw_bin``; values outside the range fall in the edge bins.
    """

    yaw_range: tuple[float, float] = (-30.0, 30.0)
    pitch_range: tuple[float, float] = (-20.0, 20.0)
    n_yaw: int = 9
    n_pitch: int = 5

    def __post_init__(self) -> None:
        if self.n_yaw < 1 or self.n_pitch < 1:
            raise ValueError("GazeBins needs at least one bin per axis")
        if self.yaw_range[0] >= self.yaw_range[1] or self.pitch_range[0] >= self.pitch_range[1]:
            raise ValueError("GazeBins ranges must be (low, high) with low < high")

    @property
    def n_bins(self) -> int:
        return self.n_yaw * self.n_pitch

    def _edges(self, lo_hi, n):
        return np.linspace(lo_hi[0], lo_hi[1], n + 1)

    @property
    def centers(self) -> np.ndarray:
        """(n_bins, 2) (yaw, pitch) degrees of each bin's centre."""
        ye, pe = self._edges(self.yaw_range, self.n_yaw), self._edges(self.pitch_range, self.n_pitch)
        yc, pc = (ye[:-1] + ye[1:]) / 2, (pe[:-1] + pe[1:]) / 2
        grid = np.stack(np.meshgrid(yc, pc, indexing="xy"), axis=-1)  # (n_pitch, n_yaw, 2)
        return grid.reshape(-1, 2).astype(np.float32)

    def encode(self, gaze: np.ndarray) -> np.ndarray:
        """(..., 2) degrees -> (...,) int64 bin index."""
        gaze = np.asarray(gaze, dtype=np.float64)
        ye, pe = self._edges(self.yaw_range, self.n_yaw), self._edges(self.pitch_range, self.n_pitch)
        yb = np.clip(np.searchsorted(ye, gaze[..., 0], side="right") - 1, 0, self.n_yaw - 1)
        pb = np.clip(np.searchsorted(pe, gaze[..., 1], side="right") - 1, 0, self.n_pitch - 1)
        return (pb * self.n_yaw + yb).astype(np.int64)

    def decode(self, bins: np.ndarray) -> np.ndarray:
        """(...,) bin index -> (..., 2) degrees at the bin centres."""
        bins = np.asarray(bins, dtype=np.int64)
        if bins.size and (bins.min() < 0 or bins.max() >= self.n_bins):
            raise ValueError(f"gaze bin out of range 0..{self.n_bins - 1}")
        return self.centers[bins]

    def decode_probabilities(self, probabilities: np.ndarray) -> np.ndarray:
        """(..., n_bins) probabilities -> (..., 2) expected gaze (softmax-weighted centres)."""
        return np.asarray(probabilities, dtype=np.float64) @ self.centers.astype(np.float64)


# --- blinks --------------------------------------------------------------------------------


def eye_aperture(normalized: np.ndarray) -> np.ndarray:
    """(..., 478, 3) -> (..., 2) float32 lid gap over eye width per eye (right, left)."""
    norm = np.asarray(normalized, dtype=np.float64)
    out = []
    for eye in EYES:
        _, width = _eye_frame(norm, eye)
        pairs = np.array(_EYE_INDEX[eye][2])
        gap = np.linalg.norm(norm[..., pairs[:, 0], :2] - norm[..., pairs[:, 1], :2], axis=-1).mean(axis=-1)
        out.append(gap / width)
    return np.stack(out, axis=-1).astype(np.float32)


def detect_blinks(
    aperture: np.ndarray,
    fps: float = DEFAULT_FPS,
    *,
    closed_fraction: float = 0.55,
    max_duration_s: float = 0.8,
) -> list[tuple[int, int]]:
    """Blink events from per-eye aperture.

    A blink is a run of frames where the mean aperture of both eyes drops below
    ``closed_fraction`` of the open-eye level (the clip's 90th percentile), lasting at most
    ``max_duration_s`` (longer closures are not blinks).

    Parameters
    ----------
    aperture : (T, 2) or (T,)

    Returns
    -------
    list of (start, end) frame indices, end exclusive.
    """
    a = np.asarray(aperture, dtype=np.float64)
    a = a.mean(axis=-1) if a.ndim == 2 else a
    if a.size == 0:
        return []
    open_level = np.percentile(a, 90)
    closed = a < closed_fraction * open_level
    events = []
    t = 0
    while t < len(a):
        if closed[t]:
            start = t
            while t < len(a) and closed[t]:
                t += 1
            if (t - start) / fps <= max_duration_s:
                events.append((start, t))
        else:
            t += 1
    return events


# --- the container -------------------------------------------------------------------------


@dataclass(frozen=True)
class FaceCues:
    """Per-frame facial cues of one face, saved as a versioned ``.npz``.

    normalized : (T, 478, 3) float32 canonical units (expression, blinks; iris included)
    scale : (T,) float32 pixels per canonical unit
    rotation : (T, 3, 3) float32
    translation : (T, 3) float32 pixels
    gaze : (T, 2, 2) float32 degrees, eye (right, left) x (yaw, pitch)
    aperture : (T, 2) float32 lid gap over eye width
    valid : (T,) bool, False where the face was not seen (values held from neighbours)
    identity : (478, 3) float32 the person's neutral normalized shape
    fps : frames per second
    image_size : (width, height) pixels of the frames the landmarks live in
    meta : free-form JSON-able information (source file, model, settings)
    """

    normalized: np.ndarray
    scale: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    gaze: np.ndarray
    aperture: np.ndarray
    valid: np.ndarray
    identity: np.ndarray
    fps: float
    image_size: tuple[int, int]
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        t = self.normalized.shape[0]
        expected = {
            "normalized": (t, N_LANDMARKS, 3),
            "scale": (t,),
            "rotation": (t, 3, 3),
            "translation": (t, 3),
            "gaze": (t, 2, 2),
            "aperture": (t, 2),
            "valid": (t,),
            "identity": (N_LANDMARKS, 3),
        }
        for name, shape in expected.items():
            value = getattr(self, name)
            if tuple(value.shape) != shape:
                raise InputError(None, f"FaceCues.{name} has shape {tuple(value.shape)}, expected {shape}")
        if not self.fps > 0:
            raise InputError(None, f"FaceCues.fps must be positive, got {self.fps}")

    # derived views
    @property
    def n_frames(self) -> int:
        return int(self.normalized.shape[0])

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps

    @property
    def pose_angles(self) -> np.ndarray:
        """(T, 3) float32 (yaw, pitch, roll) degrees."""
        return rotation_to_angles(self.rotation).astype(np.float32)

    @property
    def combined_gaze(self) -> np.ndarray:
        """(T, 2) float32 (yaw, pitch) degrees, both eyes weighted by aperture."""
        return combined_gaze(self.gaze, self.aperture)

    @property
    def expression(self) -> np.ndarray:
        """(T, 478, 3) normalized landmarks minus the identity's neutral shape."""
        return self.normalized - self.identity[None]

    def blinks(self) -> list[tuple[int, int]]:
        return detect_blinks(self.aperture, self.fps)

    def landmarks(self, gaze: np.ndarray | None = None) -> np.ndarray:
        """Relocated image landmarks (T, 478, 3) pixels; ``gaze`` (T, 2, 2) overrides the iris."""
        return relocate(self.normalized, self.scale, self.rotation, self.translation, gaze)

    @classmethod
    def from_landmarks(
        cls,
        landmarks: np.ndarray,
        fps: float,
        image_size: tuple[int, int],
        valid: np.ndarray | None = None,
        identity: np.ndarray | None = None,
        meta: dict | None = None,
    ) -> FaceCues:
        """Decompose image landmarks ``(T, 478, 3)`` pixels into cues."""
        pts = np.asarray(landmarks, dtype=np.float32)
        if pts.ndim == 2:
            pts = pts[None]
        normalized, scale, rotation, translation = normalize(pts)
        valid = np.ones(len(pts), dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
        if identity is None:
            identity = np.median(normalized[valid] if valid.any() else normalized, axis=0)
        return cls(
            normalized=normalized,
            scale=scale,
            rotation=rotation,
            translation=translation,
            gaze=gaze_from_normalized(normalized),
            aperture=eye_aperture(normalized),
            valid=valid,
            identity=np.asarray(identity, dtype=np.float32),
            fps=float(fps),
            image_size=(int(image_size[0]), int(image_size[1])),
            meta=dict(meta or {}),
        )

    def slice(self, start: int, stop: int) -> FaceCues:
        """Frames ``start:stop`` as a new FaceCues."""
        sl = slice(start, stop)
        return FaceCues(
            self.normalized[sl], self.scale[sl], self.rotation[sl], self.translation[sl], self.gaze[sl],
            self.aperture[sl], self.valid[sl], self.identity, self.fps, self.image_size, dict(self.meta),
        )

    def save(self, path: str | Path) -> Path:
        """Write a versioned ``.npz`` atomically (temp file, then rename)."""
        from .io import atomic_path

        path = Path(path)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(
                    fh,
                    kind=CUES_FILE_KIND,
                    version=CUES_FORMAT_VERSION,
                    normalized=self.normalized.astype(np.float32),
                    scale=self.scale.astype(np.float32),
                    rotation=self.rotation.astype(np.float32),
                    translation=self.translation.astype(np.float32),
                    gaze=self.gaze.astype(np.float32),
                    aperture=self.aperture.astype(np.float32),
                    valid=self.valid.astype(bool),
                    identity=self.identity.astype(np.float32),
                    fps=np.float64(self.fps),
                    image_size=np.array(self.image_size, dtype=np.int64),
                    meta=json.dumps(self.meta),
                )
        return path

    @classmethod
    def load(cls, path: str | Path) -> FaceCues:
        """Read a cue file written by :meth:`save`; errors name the file and the problem."""
        path = Path(path)
        if not path.is_file():
            raise InputError(path, "cue file not found")
        try:
            with np.load(path, allow_pickle=False) as data:
                check_file_header(path, data, CUES_FILE_KIND, CUES_FORMAT_VERSION, "cue file")
                arrays = {k: data[k] for k in ("normalized", "scale", "rotation", "translation", "gaze", "aperture", "valid", "identity")}
                fps = float(data["fps"])
                size = tuple(int(v) for v in data["image_size"])
                meta = json.loads(str(data["meta"]))
        except CheckpointError:
            raise
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise CheckpointError(path, f"corrupt or incomplete cue file ({exc.__class__.__name__}: {exc})") from None
        if arrays["normalized"].ndim != 3 or arrays["normalized"].shape[1] != N_LANDMARKS:
            raise CheckpointError(path, f"cue file holds landmarks of shape {arrays['normalized'].shape[1:]}, expected ({N_LANDMARKS}, 3)")
        return cls(**arrays, fps=fps, image_size=size, meta=meta)


def extract_cues(
    source: str | Path | np.ndarray,
    *,
    fps: float | None = None,
    progress: bool = False,
) -> FaceCues:
    """Facial cues of the face in an image or video file (or an (H, W, 3) / (T, H, W, 3) array).

    A still image gives one frame (its ``fps`` is ``DEFAULT_FPS`` unless given). A video is read
    frame by frame (resampled to ``fps`` when given) and tracked.
    """
    from . import io
    from .landmarks import detect_landmarks, track_landmarks

    name = str(source) if not isinstance(source, np.ndarray) else "array"
    if isinstance(source, np.ndarray):
        if source.ndim == 3:
            pts = detect_landmarks(source, source=name)[None]
            valid = np.ones(1, bool)
        else:
            pts, valid = track_landmarks(list(source), source=name, progress=progress)
        height, width = source.shape[-3:-1]
        return FaceCues.from_landmarks(pts, fps or DEFAULT_FPS, (width, height), valid, meta={"source": name})
    path = Path(source)
    kind = io.media_kind(path)
    if kind == "image":
        image = io.read_image(path)
        pts = detect_landmarks(image, source=path)[None]
        height, width = image.shape[:2]
        return FaceCues.from_landmarks(pts, fps or DEFAULT_FPS, (width, height), meta={"source": str(path)})
    info = io.probe_video(path)
    out_fps = fps or info.fps
    total = None if fps else info.n_frames
    pts, valid = track_landmarks(io.iter_video_frames(path, fps=fps), source=path, progress=progress, total=total)
    return FaceCues.from_landmarks(pts, out_fps, (info.width, info.height), valid, meta={"source": str(path)})


def resample_cues(cues: FaceCues, fps: float, n_frames: int) -> FaceCues:
    """Cues at another frame rate, ``n_frames`` long (linear in time; rotations through their
    angles; past the last frame the last one holds)."""
    if n_frames == cues.n_frames and abs(fps - cues.fps) < 1e-9:
        return cues
    src = np.arange(cues.n_frames) / cues.fps
    dst = np.minimum(np.arange(n_frames) / fps, src[-1])

    def interp(values):
        flat = values.reshape(len(values), -1).astype(np.float64)
        out = np.stack([np.interp(dst, src, flat[:, k]) for k in range(flat.shape[1])], axis=1)
        return out.reshape(n_frames, *values.shape[1:])

    normalized = interp(cues.normalized)
    return FaceCues(
        normalized=normalized.astype(np.float32), scale=interp(cues.scale).astype(np.float32),
        rotation=angles_to_rotation(interp(rotation_to_angles(cues.rotation))).astype(np.float32),
        translation=interp(cues.translation).astype(np.float32), gaze=gaze_from_normalized(normalized),
        aperture=eye_aperture(normalized), valid=np.ones(n_frames, bool), identity=cues.identity, fps=float(fps),
        image_size=cues.image_size, meta=dict(cues.meta),
    )
