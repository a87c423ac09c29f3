"""Scripted cue edits and sequences: known head turns, gaze shifts, blinks and mouth openings.

Used by the demo (before a trained speech-to-cues model exists), by tests that need cues with
known answers, and to exercise renderers. Edits act on normalized landmarks (canonical units).
"""

from __future__ import annotations

import numpy as np

from .constants import (
    INNER_LIP_MID,
    LEFT_LOWER_LID,
    LEFT_UPPER_LID,
    N_MESH_POINTS,
    RIGHT_LOWER_LID,
    RIGHT_UPPER_LID,
)
from .cues import FaceCues, angles_to_rotation, eye_aperture, gaze_from_normalized, place_iris, rotation_to_angles

# Lower-face points that follow the jaw when the mouth opens: everything below the upper lip's
# inner edge, weighted by how far below it they sit (computed on the face itself).
_JAW_FALLOFF = 0.35  # canonical units over which the jaw's pull fades above the lip line


def close_eyes(normalized: np.ndarray, amount: np.ndarray | float) -> np.ndarray:
    """Move the upper lids toward the lower lids.

    Parameters
    ----------
    normalized : (..., 478, 3) canonical units
    amount : (...,) or scalar in [0, 1]: 0 leaves the eye as it is, 1 closes it (lids meet at the
        lower lid's position plus 15% of the gap, like a real blink)
    """
    norm = np.array(normalized, dtype=np.float64, copy=True)
    a = np.asarray(amount, dtype=np.float64)[..., None, None]
    for upper, lower in ((RIGHT_UPPER_LID, RIGHT_LOWER_LID), (LEFT_UPPER_LID, LEFT_LOWER_LID)):
        up, lo = list(upper), list(lower)
        gap = norm[..., lo, :] - norm[..., up, :]
        norm[..., up, :] += 0.85 * a * gap
    return norm


def open_mouth(normalized: np.ndarray, amount: np.ndarray | float) -> np.ndarray:
    """Drop the jaw: points below the inner upper lip move down by ``amount`` canonical units,
    fully at the lower lip and chin, fading to zero at the upper lip line.

    Parameters
    ----------
    normalized : (..., 478, 3) canonical units
    amount : (...,) or scalar, canonical units (0.25 is a wide-open mouth)
    """
    norm = np.array(normalized, dtype=np.float64, copy=True)
    ref = norm.reshape(-1, *norm.shape[-2:])[0]
    upper_y, lower_y = ref[INNER_LIP_MID[0], 1], ref[INNER_LIP_MID[1], 1]
    below = ref[:N_MESH_POINTS, 1] - upper_y
    weight = np.clip(below / max(lower_y - upper_y, 1e-6), 0, 1)
    # points below the upper lip but on the cheeks move less the further they are from the midline
    weight *= np.exp(-((ref[:N_MESH_POINTS, 0] / 0.9) ** 4))
    weight[below <= 0] = 0
    a = np.asarray(amount, dtype=np.float64)[..., None]
    norm[..., :N_MESH_POINTS, 1] += a * weight
    return norm


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
