"""Speak with a real person's mouth: match how far their lips part while talking.

People differ about 2.5x in how far they open their mouths when they talk (median inner-lip gap
0.063 to 0.155 eye-corner distances over the 7 real talking videos of ``../shared/data``), some
rest with parted lips, and no audio feature tried predicts it (docs/MODEL_CARD.md). Given a video
of the person talking (any speech; no sound needed), :func:`measure_mouth_style` reads the
median and 90th percentile of their inner-lip gap with MediaPipe, and :func:`fit_mouth_controls`
chooses the phonetic model's mouth scale and rest gap so that facecue's video, read back the
same way, has those two figures:

1. the cues' own gap is linear in the two knobs, so one search over them matches the reference
   in cue units;
2. the renderer does not draw every face's opening at the cue's size (MediaPipe reads 0.64x to
   1.6x of the cue's gap plus an offset, depending on the portrait's lips: measured on the 8
   re-driven real clips), so :data:`PROBE_FRAMES` frames spanning the fitted gaps are rendered
   and read back, a line is fitted from cue gap to rendered gap, and the search is run again
   through that line.

Units: the inner-lip gap is the vertical distance of MediaPipe points 13 and 14 in the
normalized face (head pose removed), in outer-eye-corner distances; negative when the lips press
over each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .constants import DEFAULT_FPS, INNER_LIP_MID
from .errors import InputError
from .inputs import MOUTH_SCALE_RANGE

MIN_REFERENCE_S = 2.0  # of frames with a face: a shorter reference gives unstable percentiles
MIN_LIP_MOVEMENT = 0.02  # p90 - p10 of the gap; the 8 re-driven real clips: 0.077 (reagan) to 0.17 (feifeili)
MAX_REFERENCE_S = 60.0  # only the start of a longer reference is read (its two percentiles are settled by then)
PROBE_FRAMES = 24  # rendered and read back to learn how this portrait's mouth is drawn
SCALE_STEPS = np.arange(0.1, MOUTH_SCALE_RANGE[1] + 1e-9, 0.02)
REST_STEPS = np.arange(0.0, 0.15 + 1e-9, 0.0025)  # canonical units; real resting gaps measured 0 to 0.05
REST_PROBE = 0.05  # the rest gap used to measure the rest's effect (the cues are linear in it)
MIN_READBACK_SLOPE = 0.3  # a flatter line means the probes were not read (no face found): not used


@dataclass(frozen=True)
class MouthStyle:
    """How far a person's lips part while talking: inner-lip gap percentiles over the frames of a
    video with a face, in eye-corner distances."""

    p50: float
    p90: float
    frames: int  # frames measured
    source: str = ""

    def describe(self) -> str:
        return f"inner-lip gap p50 {self.p50:.3f}, p90 {self.p90:.3f} eye-corner distances over {self.frames} frames"


def inner_lip_gap(normalized: np.ndarray) -> np.ndarray:
    """(T,) float64 vertical inner-lip gap of (T, 478, 3) normalized landmarks (eye-corner
    distances; negative when the lips press over each other)."""
    upper, lower = INNER_LIP_MID
    normalized = np.asarray(normalized, np.float64)
    return normalized[:, lower, 1] - normalized[:, upper, 1]


def style_of_gaps(gaps: np.ndarray, source: str = "") -> MouthStyle:
    gaps = np.asarray(gaps, np.float64)
    return MouthStyle(float(np.percentile(gaps, 50)), float(np.percentile(gaps, 90)), len(gaps), source)


def measure_mouth_style(video: str | Path, *, fps: float = DEFAULT_FPS, progress: bool = False) -> MouthStyle:
    """The mouth style of the person talking in ``video`` (MediaPipe, every frame with a face, the
    first :data:`MAX_REFERENCE_S` seconds).

    Raises InputError when the file is not a video, or when it has fewer than
    :data:`MIN_REFERENCE_S` seconds with a face or the lips hardly move (not a talking face).
    """
    from itertools import islice

    from . import io
    from .cues import FaceCues
    from .landmarks import track_landmarks

    video = Path(video)
    if io.media_kind(video) != "video":
        raise InputError(video, "--mouth-from needs a video of the person talking")
    info = io.probe_video(video)
    limit = int(MAX_REFERENCE_S * fps)
    frames = islice(io.iter_video_frames(video, fps=fps), limit)
    points, valid = track_landmarks(frames, source=video, progress=progress,
                                    total=min(limit, round(info.n_frames * fps / info.fps)) if info.fps else None)
    cues = FaceCues.from_landmarks(points, fps, (info.width, info.height), valid)
    gaps = inner_lip_gap(cues.normalized[cues.valid])
    if len(gaps) < MIN_REFERENCE_S * fps:
        raise InputError(video, f"has a face in {len(gaps) / fps:.1f} s of video; --mouth-from needs at least "
                         f"{MIN_REFERENCE_S:.0f} s of the person talking")
    style = style_of_gaps(gaps, str(video))
    movement = float(np.percentile(gaps, 90) - np.percentile(gaps, 10))
    if movement < MIN_LIP_MOVEMENT:
        raise InputError(video, f"the lips hardly move in this video (their gap varies {movement:.3f} eye-corner "
                         "distances from the 10th to the 90th percentile); --mouth-from needs a video of the "
                         "person talking")
    return style


def fit_in_cue_units(gap_of: Callable[[float, float], np.ndarray], style: MouthStyle,
                     readback: tuple[float, float] = (1.0, 0.0)) -> tuple[float, float]:
    """(mouth scale, rest gap) whose gaps, drawn through ``readback`` (slope, offset: rendered
    gap = slope * cue gap + offset), have ``style``'s p50 and p90 (least squared log ratios over
    :data:`SCALE_STEPS` x :data:`REST_STEPS`).

    gap_of : (scale, rest) -> (T,) the cues' inner-lip gap with those knobs; called 3 times
    """
    base = gap_of(0.0, 0.0)
    per_scale = gap_of(1.0, 0.0) - base
    per_rest = (gap_of(0.0, REST_PROBE) - base) / REST_PROBE
    slope, offset = readback
    best, best_error = (1.0, 0.0), np.inf
    target = np.log([style.p50, style.p90])
    # one scale row at a time: (rests, T) arrays stay small for long audio
    for scale in SCALE_STEPS:
        gaps = slope * (base[None] + scale * per_scale[None] + REST_STEPS[:, None] * per_rest[None]) + offset
        p50, p90 = np.percentile(gaps, [50, 90], axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            error = ((np.log(np.maximum(np.stack([p50, p90], 1), 1e-4)) - target) ** 2).sum(1)
        j = int(np.argmin(error))
        if error[j] < best_error:
            best, best_error = (float(scale), float(REST_STEPS[j])), float(error[j])
    return best


def probe_frame_indices(gaps: np.ndarray, n: int = PROBE_FRAMES) -> np.ndarray:
    """Indices of ``n`` frames whose gaps span ``gaps``' range (evenly spaced in sorted order)."""
    order = np.argsort(gaps, kind="stable")
    picks = np.linspace(0, len(order) - 1, min(n, len(order))).round().astype(int)
    return np.unique(order[picks])


def readback_line(probe_frames: np.ndarray, cue_gaps: np.ndarray) -> tuple[float, float]:
    """(slope, offset) of the gap MediaPipe reads on rendered frames against the cues' gap.

    probe_frames : (N, H, W, 3) uint8 RGB frames rendered from cues whose gaps were ``cue_gaps`` (N,)
    Returns (1, 0) when fewer than half the probes show a face or the read gaps do not follow the
    cues (slope under :data:`MIN_READBACK_SLOPE`).
    """
    from .cues import extract_cues
    from .errors import NoFaceError

    try:
        read = extract_cues(np.asarray(probe_frames))
    except NoFaceError:
        return 1.0, 0.0
    valid = np.asarray(read.valid, bool)
    if valid.sum() < max(3, len(cue_gaps) // 2) or np.ptp(cue_gaps[valid]) <= 1e-6:
        return 1.0, 0.0
    measured = inner_lip_gap(read.normalized)[valid]
    slope, offset = np.polyfit(np.asarray(cue_gaps, np.float64)[valid], measured, 1)
    if not np.isfinite(slope) or slope < MIN_READBACK_SLOPE:
        return 1.0, 0.0
    return float(slope), float(offset)


def fit_mouth_controls(gap_of: Callable[[float, float], np.ndarray], style: MouthStyle,
                       render_probes: Callable[[float, float, np.ndarray], np.ndarray] | None = None,
                       ) -> tuple[float, float, tuple[float, float]]:
    """(mouth scale, rest gap, readback line) that reproduce ``style`` in the rendered video.

    gap_of : (scale, rest) -> (T,) cue inner-lip gaps with those knobs
    render_probes : (scale, rest, frame indices) -> (N, H, W, 3) frames rendered with those knobs;
        None: fit in cue units only (for renderers that cannot be probed cheaply)
    """
    scale, rest = fit_in_cue_units(gap_of, style)
    if render_probes is None:
        return scale, rest, (1.0, 0.0)
    gaps = gap_of(scale, rest)
    picks = probe_frame_indices(gaps)
    line = readback_line(render_probes(scale, rest, picks), gaps[picks])
    scale, rest = fit_in_cue_units(gap_of, style, line)
    return scale, rest, line
