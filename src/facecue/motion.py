"""Scripted cue edits and sequences: known head turns, gaze shifts, blinks and mouth openings.

Used by the demo (before a trained speech-to-cues model exists), by tests that need cues with
known answers, and to exercise renderers. Edits act on normalized landmarks (canonical units).
"""

from __future__ import annotations

import numpy as np

from .constants import (
    MOUTH_CORNERS,
    LEFT_LOWER_LID,
    LEFT_UPPER_LID,
    N_MESH_POINTS,
    RIGHT_LOWER_LID,
    RIGHT_UPPER_LID,
)
from .cues import FaceCues, angles_to_rotation, eye_aperture, gaze_from_normalized, place_iris, rotation_to_angles


CLOSED_LID_GAP = 0.15  # a shut eye's lid gap as MediaPipe reads it, x the open gap (the lashes' thickness)


def close_eyes(normalized: np.ndarray, amount: np.ndarray | float, reference: np.ndarray | None = None) -> np.ndarray:
    """Move the upper lids toward the lower lids.

    Parameters
    ----------
    normalized : (..., 478, 3) canonical units
    amount : (...,) or scalar in [0, 1]: 0 leaves the eye as it is, 1 closes it (lids meet at the
        lower lid's position plus :data:`CLOSED_LID_GAP` of the gap, like a real blink)
    reference : optional (478, 3) canonical shape of the same face with its eyes as they rest (the
        portrait's): a shut eye's gap is at most CLOSED_LID_GAP of the reference's, point by point,
        so that an eye opened wider (surprise, fear) shuts as far in a blink as the portrait's
        eye does; eyes no wider than the reference's close exactly as without it
    """
    norm = np.array(normalized, dtype=np.float64, copy=True)
    a = np.asarray(amount, dtype=np.float64)[..., None, None]
    for upper, lower in ((RIGHT_UPPER_LID, RIGHT_LOWER_LID), (LEFT_UPPER_LID, LEFT_LOWER_LID)):
        up, lo = list(upper), list(lower)
        gap = norm[..., lo, :] - norm[..., up, :]
        travel = 1.0 - CLOSED_LID_GAP
        if reference is not None:
            ref = np.asarray(reference, dtype=np.float64)
            rest = np.linalg.norm(ref[lo] - ref[up], axis=-1)
            length = np.linalg.norm(gap, axis=-1)
            # the part of the gap beyond the reference's closes fully
            wider = 1.0 - np.minimum(rest / np.maximum(length, 1e-12), 1.0)
            travel = travel + CLOSED_LID_GAP * wider[..., None]
        norm[..., up, :] += travel * a * gap
    return norm


# Lip contours (MediaPipe indices), corner to corner along x.
UPPER_LIP = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_LIP = (146, 91, 181, 84, 17, 314, 405, 321, 375, 95, 88, 178, 87, 14, 317, 402, 318, 324)
_CORNERS = (61, 291, 78, 308)


def _lip_line(ref: np.ndarray, lip: tuple[int, ...]) -> np.ndarray:
    """(468,) the y of a lip contour (``UPPER_LIP`` or ``LOWER_LIP``) at every mesh point's x."""
    idx = np.array(lip)
    order = np.argsort(ref[idx, 0])
    return np.interp(ref[:N_MESH_POINTS, 0], ref[idx, 0][order], ref[idx, 1][order])


def _mouth_layout(ref: np.ndarray, side_falloff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a (478, 3) shape: the upper lip's indices, the upper lip's line (y at every mesh
    point's x) and how much each mesh point is "across the mouth" (1 at the middle, 0.3 at the
    corners, fading over ``side_falloff`` half-widths past them)."""
    upper = np.array(UPPER_LIP)
    x = ref[:N_MESH_POINTS, 0]
    lip_line = _lip_line(ref, UPPER_LIP)
    left, right = ref[MOUTH_CORNERS[0], 0], ref[MOUTH_CORNERS[1], 0]
    rel = (x - (left + right) / 2) / (abs(right - left) / 2)
    across = np.where(np.abs(rel) <= 1, 0.3 + 0.7 * (1 - rel**2),
                      0.3 * np.exp(-(((np.abs(rel) - 1) / side_falloff) ** 2)))
    return upper, lip_line, across


def open_mouth(normalized: np.ndarray, amount: np.ndarray | float) -> np.ndarray:
    """Drop the jaw by ``amount`` canonical units (negative raises it).

    The lower lip and the chin move fully, the mouth corners by 30%, the upper lip not at all;
    the pull fades above the upper lip's line and sideways past the mouth corners (so faces whose
    mouth corners sit below the upper lip's middle keep their upper lip in place).

    Parameters
    ----------
    normalized : (..., 478, 3) canonical units
    amount : (...,) or scalar, canonical units (0.25 is a wide-open mouth)
    """
    norm = np.array(normalized, dtype=np.float64, copy=True)
    ref = norm.reshape(-1, *norm.shape[-2:])[0]
    upper, lip_line, across = _mouth_layout(ref, 0.8)
    weight = np.clip((ref[:N_MESH_POINTS, 1] - lip_line) / 0.12, 0, 1) * across
    weight[upper] = 0.0
    weight[list(LOWER_LIP)] = across[list(LOWER_LIP)]
    weight[list(_CORNERS)] = 0.3
    a = np.asarray(amount, dtype=np.float64)[..., None]
    norm[..., :N_MESH_POINTS, 1] += a * weight
    return norm


def _move_one_lip(normalized: np.ndarray, amount: np.ndarray | float, lip: tuple[int, ...],
                  other: tuple[int, ...], outward: float) -> np.ndarray:
    """Move ``lip`` down by ``amount`` canonical units, ``other`` lip and the jaw staying.

    The lip moves fully between the mouth corners (the corners themselves by 30 %); the skin on
    its outer side (``outward`` -1: above the lip's line, +1: below it) follows, fading to nothing
    ~0.08 canonical units from the line, and sideways past the corners."""
    norm = np.array(normalized, dtype=np.float64, copy=True)
    ref = norm.reshape(-1, *norm.shape[-2:])[0]
    _, _, across = _mouth_layout(ref, 0.5)
    away = outward * (ref[:N_MESH_POINTS, 1] - _lip_line(ref, lip))  # > 0 on the lip's outer side
    weight = np.where(away >= 0, np.clip(1.0 - away / 0.08, 0.0, 1.0), 0.0) * across
    weight[list(other)] = 0.0
    weight[list(lip)] = across[list(lip)]
    weight[list(_CORNERS)] = 0.3
    a = np.asarray(amount, dtype=np.float64)[..., None]
    norm[..., :N_MESH_POINTS, 1] += a * weight
    return norm


def lower_upper_lip(normalized: np.ndarray, amount: np.ndarray | float) -> np.ndarray:
    """Move the upper lip down by ``amount`` canonical units (a smile's raised upper lip, let down);
    negative raises it.

    The upper lip moves fully between the mouth corners (the corners themselves by 30 %); the
    skin above it follows, fading to nothing ~0.08 canonical units above the lip's line (below
    the nose), and sideways past the corners. Nothing else moves.

    Parameters
    ----------
    normalized : (..., 478, 3) canonical units
    amount : (...,) or scalar, canonical units
    """
    return _move_one_lip(normalized, amount, UPPER_LIP, LOWER_LIP, outward=-1.0)


def drop_lower_lip(normalized: np.ndarray, amount: np.ndarray | float) -> np.ndarray:
    """Move the lower lip down by ``amount`` canonical units without the jaw (the lip pulled down
    off the lower teeth, as in disgust); negative lifts it.

    The lower lip moves fully between the mouth corners (the corners themselves by 30 %); the
    skin below it follows, fading to nothing ~0.08 canonical units below the lip's line (above
    the chin), and sideways past the corners. Nothing else moves.

    Parameters
    ----------
    normalized : (..., 478, 3) canonical units
    amount : (...,) or scalar, canonical units
    """
    return _move_one_lip(normalized, amount, LOWER_LIP, UPPER_LIP, outward=1.0)


def scripted_motion(base: FaceCues, n_frames: int, fps: float, *, seed: int = 0) -> FaceCues:
    """A cue sequence built from one frame of ``base``: a slow head turn (+-12 deg yaw, a nod),
    gaze shifts, a blink every ~3 s and a mouth that opens and closes (~4 syllables a second).

    Returns a FaceCues of ``n_frames`` frames in ``base``'s image space.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) / fps
    norm0 = base.normalized[0].astype(np.float64)
    angles0 = rotation_to_angles(base.rotation[0])
    angles = np.tile(angles0, (n_frames, 1))
    angles[:, 0] += 12 * np.sin(2 * np.pi * t / 6.0)
    angles[:, 1] += 4 * np.sin(2 * np.pi * t / 4.3)
    angles[:, 2] += 3 * np.sin(2 * np.pi * t / 7.1)
    rotation = angles_to_rotation(angles)
    mouth = 0.12 * np.clip(np.sin(2 * np.pi * 4.0 * t) + 0.3 * rng.standard_normal(n_frames), 0, None)
    blink = np.zeros(n_frames)
    for start in np.arange(1.0, t[-1] if n_frames else 0, 3.0):
        blink = np.maximum(blink, np.exp(-(((t - start) / 0.06) ** 2)))
    gaze_yaw = 15 * np.sign(np.sin(2 * np.pi * t / 5.0)) * (np.abs(np.sin(2 * np.pi * t / 5.0)) > 0.5)
    gaze = np.zeros((n_frames, 2, 2))
    gaze[:, :, 0] = gaze_yaw[:, None]
    gaze[:, :, 1] = 5 * np.sin(2 * np.pi * t / 3.7)[:, None]
    norm = np.broadcast_to(norm0, (n_frames, *norm0.shape))
    norm = open_mouth(norm, mouth)
    norm = close_eyes(norm, blink)
    norm = place_iris(norm, gaze)
    # keep the face where it is in the image: rotate about the stable-point centroid (origin)
    return FaceCues(
        normalized=norm.astype(np.float32),
        scale=np.full(n_frames, base.scale[0], np.float32),
        rotation=rotation.astype(np.float32),
        translation=np.tile(base.translation[0], (n_frames, 1)).astype(np.float32),
        gaze=gaze_from_normalized(norm),
        aperture=eye_aperture(norm),
        valid=np.ones(n_frames, bool),
        identity=base.identity,
        fps=float(fps),
        image_size=base.image_size,
        meta={"source": "facecue.motion.scripted_motion", "seed": seed},
    )
