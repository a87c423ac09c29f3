"""Speak with a real person's mouth: match how far their lips part while talking.

People differ about 2.5x in how far they open their mouths when they talk (median inner-lip gap
0.063 to 0.155 eye-corner distances over the 7 real talking videos of ``../shared/data``), some
rest with parted lips, and no audio feature tried predicts it (docs/MODEL_CARD.md). Given a video
of the person talking (any speech; no sound needed), :func:`measure_mouth_style` reads the
10th, 50th and 90th percentiles of their inner-lip gap with MediaPipe, and
:func:`fit_mouth_controls` chooses the cue model's mouth scale and rest gap so that facecue's
video, read back the same way, has them (p50 and p90 first; the p10 chooses between the ways of
reaching them):

1. the cues' own gap is linear in the two knobs, so one search over them matches the reference
   in cue units;
2. the renderer does not draw every face's opening at the cue's size (MediaPipe reads 0.64x to
   1.6x of the cue's gap plus an offset, depending on the portrait's lips, and flattens out
   where lips barely part: measured on the 8 re-driven real clips), so frames at the fitted
   cues' p10, p50 and p90 are rendered and read back (:data:`PROBES_PER_PERCENTILE` each), the
   cue percentiles that should render to the reference's are estimated from all rounds'
   readings (:func:`next_cue_targets`), and the search is run again for those;
   :data:`READBACK_ROUNDS` times. A last probing tells what the chosen knobs reach.

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
from .inputs import MOUTH_REST_RANGE, MOUTH_SCALE_RANGE

MIN_REFERENCE_S = 2.0  # of frames with a face: a shorter reference gives unstable percentiles
MIN_LIP_MOVEMENT = 0.02  # p90 - p10 of the gap; the 8 re-driven real clips: 0.077 (reagan) to 0.17 (feifeili)
MAX_REFERENCE_S = 60.0  # only the start of a longer reference is read (its percentiles are settled by then)
PERCENTILES = (10, 50, 90)
PROBES_PER_PERCENTILE = 9  # frames rendered and read back around each percentile of the cue gaps
PROBE_SPREAD = 0.04  # those frames' ranks lie within +-this fraction of the frames around the percentile
READBACK_ROUNDS = 3
# a fit reaches the reference when its p50 / p90 are this close (the mouth bar), in
# eye-corner distances at least MATCH_FLOOR (MediaPipe's reading of barely parted lips is that noisy)
MATCH_TOLERANCE = (0.3, 0.2)
MATCH_FLOOR = 0.01
MIN_PROBES_READ = 5  # of a percentile's probes with a face; fewer: that percentile keeps its previous shift
SCALE_STEPS = np.arange(0.1, MOUTH_SCALE_RANGE[1] + 1e-9, 0.02)
REST_STEPS = np.arange(MOUTH_REST_RANGE[0], MOUTH_REST_RANGE[1] + 1e-9, 0.0025)  # real resting gaps: 0 to 0.05
P10_WEIGHT = 0.5  # of the p10's squared error (in p90s) beside the p50's and p90's squared log ratios
REST_PROBE = 0.05  # the rest gap used to measure the rest's effect (the cues are linear in it)


@dataclass(frozen=True)
class MouthStyle:
    """How far a person's lips part while talking: inner-lip gap percentiles over the frames of a
    video with a face, in eye-corner distances."""

    p10: float  # how far they close: near 0 for people who close their lips in pauses
    p50: float
    p90: float
    frames: int  # frames measured
    source: str = ""

    def describe(self) -> str:
        return (f"inner-lip gap p10 {self.p10:.3f}, p50 {self.p50:.3f}, p90 {self.p90:.3f} eye-corner distances "
                f"over {self.frames} frames")


def inner_lip_gap(normalized: np.ndarray) -> np.ndarray:
    """(T,) float64 vertical inner-lip gap of (T, 478, 3) normalized landmarks (eye-corner
    distances; negative when the lips press over each other)."""
    upper, lower = INNER_LIP_MID
    normalized = np.asarray(normalized, np.float64)
    return normalized[:, lower, 1] - normalized[:, upper, 1]


def style_of_gaps(gaps: np.ndarray, source: str = "") -> MouthStyle:
    """The :class:`MouthStyle` of (T,) inner-lip gaps."""
    p10, p50, p90 = np.percentile(np.asarray(gaps, np.float64), [10, 50, 90])
    return MouthStyle(float(p10), float(p50), float(p90), len(gaps), source)


def measure_mouth_style(video: str | Path, *, fps: float = DEFAULT_FPS, progress: bool = False) -> MouthStyle:
    """The mouth style of the person talking in ``video`` (MediaPipe, every frame with a face, the
    first :data:`MAX_REFERENCE_S` seconds). Remembered for the process's life (a batch of jobs
    with one reference reads it once) while the file's size and time stamp stay the same.

    Raises InputError when the file is not a video, or when it has fewer than
    :data:`MIN_REFERENCE_S` seconds with a face or the lips hardly move (not a talking face).
    """
    from . import io

    video = Path(video)
    if io.media_kind(video) != "video":
        raise InputError(video, "--mouth-from needs a video of the person talking")
    stat = video.stat()
    key = (str(video.resolve()), stat.st_size, stat.st_mtime_ns, float(fps))
    if key not in _MEASURED:
        _MEASURED[key] = _measure_mouth_style(video, fps, progress)
    return _MEASURED[key]


_MEASURED: dict[tuple, MouthStyle] = {}


def _measure_mouth_style(video: Path, fps: float, progress: bool) -> MouthStyle:
    from itertools import islice

    from . import io
    from .cues import FaceCues
    from .landmarks import track_landmarks

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
    movement = style.p90 - style.p10
    if movement < MIN_LIP_MOVEMENT:
        raise InputError(video, f"the lips hardly move in this video (their gap varies {movement:.3f} eye-corner "
                         "distances from the 10th to the 90th percentile); --mouth-from needs a video of the "
                         "person talking")
    return style


@dataclass(frozen=True)
class LinearGaps:
    """The cues' inner-lip gap, linear in the two knobs: ``base + scale * per_scale + rest *
    per_rest``, (T,) float64 each, eye-corner distances; measured once from three cue runs."""

    base: np.ndarray
    per_scale: np.ndarray
    per_rest: np.ndarray

    @classmethod
    def of(cls, gap_of: Callable[[float, float], np.ndarray], with_rest: bool = True) -> LinearGaps:
        """gap_of : (scale, rest) -> (T,) the cues' inner-lip gap with those knobs; called 3 times
        (twice without a rest gap)."""
        base = np.asarray(gap_of(0.0, 0.0), np.float64)
        per_scale = np.asarray(gap_of(1.0, 0.0), np.float64) - base
        per_rest = (np.asarray(gap_of(0.0, REST_PROBE), np.float64) - base) / REST_PROBE if with_rest \
            else np.zeros_like(base)
        return cls(base, per_scale, per_rest)


def fit_in_cue_units(gaps: LinearGaps, style: MouthStyle, rests: np.ndarray = REST_STEPS) -> tuple[float, float]:
    """(mouth scale, rest gap) whose gaps have ``style``'s p50 and p90: the least squared log ratios
    over :data:`SCALE_STEPS` x ``rests`` (default :data:`REST_STEPS`; ``(0,)``: a cue model
    without a rest gap), plus :data:`P10_WEIGHT` x the p10's error in
    p90s (two knobs reach p50 and p90 in more than one way; the p10 picks the speaker's: a
    large rest with small movements for people who never close, small for those who do).
    """
    rests = np.asarray(rests, np.float64)
    best, best_error = (1.0, 0.0), np.inf
    target = np.log([style.p50, style.p90])
    # one scale row at a time: (rests, T) arrays stay small for long audio
    for scale in SCALE_STEPS:
        candidates = gaps.base[None] + scale * gaps.per_scale[None] + rests[:, None] * gaps.per_rest[None]
        p10, p50, p90 = np.percentile(candidates, [10, 50, 90], axis=1)
        error = ((np.log(np.maximum(np.stack([p50, p90], 1), 1e-4)) - target) ** 2).sum(1)
        error = error + P10_WEIGHT * ((p10 - style.p10) / style.p90) ** 2
        j = int(np.argmin(error))
        if error[j] < best_error:
            best, best_error = (float(scale), float(rests[j])), float(error[j])
    return best


def probe_frame_indices(gaps: np.ndarray, percentiles=PERCENTILES, per_percentile: int = PROBES_PER_PERCENTILE,
                        spread: float = PROBE_SPREAD) -> list[np.ndarray]:
    """For each percentile, the indices of up to ``per_percentile`` frames whose gaps rank
    around it (within +-``spread`` of the frames), in time order."""
    order = np.argsort(gaps, kind="stable")
    last = len(order) - 1
    groups = []
    for q in percentiles:
        centre = q / 100 * last
        ranks = np.linspace(max(0.0, centre - spread * last), min(last, centre + spread * last), per_percentile)
        groups.append(np.unique(order[ranks.round().astype(int)]))
    return groups


def read_gaps(frames: np.ndarray) -> np.ndarray:
    """(N,) the inner-lip gap MediaPipe reads on (N, H, W, 3) uint8 RGB frames (tracked in order);
    NaN where no face is found."""
    from .cues import extract_cues
    from .errors import NoFaceError

    try:
        read = extract_cues(np.asarray(frames))
    except NoFaceError:
        return np.full(len(frames), np.nan)
    return np.where(read.valid, inner_lip_gap(read.normalized), np.nan)


@dataclass(frozen=True)
class MouthFit:
    """What :func:`fit_mouth_controls` chose and what it reached."""

    scale: float  # mouth scale
    rest: float  # rest gap, canonical units
    shifts: tuple[float, float, float]  # rendered minus cue p10, p50, p90 in the last fitting round
    # p10, p50, p90 of the rendered gap at the chosen knobs, read on probe frames (cue units when
    # the renderer was not probed)
    reached: tuple[float, float, float]

    def reaches(self, style: MouthStyle) -> bool:
        """Whether the reached p50 / p90 are within :data:`MATCH_TOLERANCE` of ``style``'s (or
        :data:`MATCH_FLOOR`, for mouths that hardly open)."""
        return all(abs(got - want) <= max(tolerance * want, MATCH_FLOOR) for got, want, tolerance in
                   zip(self.reached[1:], (style.p50, style.p90), MATCH_TOLERANCE))


def fit_mouth_controls(gap_of: Callable[[float, float], np.ndarray], style: MouthStyle,
                       read_probes: Callable[[float, float, np.ndarray], np.ndarray] | None = None,
                       rests: np.ndarray = REST_STEPS) -> MouthFit:
    """The mouth scale and rest gap that reproduce ``style`` in the rendered video.

    gap_of : (scale, rest) -> (T,) cue inner-lip gaps with those knobs
    read_probes : (scale, rest, frame indices) -> (N,) the gaps read back (MediaPipe) on those
        frames rendered with those knobs, NaN where unread (:func:`read_gaps`); None: fit in cue
        units only (for renderers that cannot be probed cheaply)
    rests : the rest gaps to choose from (:func:`fit_in_cue_units`)

    The cue gaps' linear model (:class:`LinearGaps`) is measured once and serves every round.

    :data:`READBACK_ROUNDS` rounds of probing and refitting, then one more probing of the chosen
    knobs: what they reach (a reference the mouth's range or this portrait cannot reach shows).
    """
    rests = np.asarray(rests, np.float64)
    linear = LinearGaps.of(gap_of, with_rest=bool(rests.any()))
    scale, rest = fit_in_cue_units(linear, style, rests)
    shift = np.zeros(len(PERCENTILES))
    if read_probes is None:
        reached = np.percentile(gap_of(scale, rest), PERCENTILES)
        return MouthFit(scale, rest, (0.0, 0.0, 0.0), tuple(float(x) for x in reached))
    target = np.array([style.p10, style.p50, style.p90])
    history: list[tuple[np.ndarray, np.ndarray]] = []  # (cue percentiles, rendered ones) per round
    for _ in range(READBACK_ROUNDS):
        cue, rendered = _rendered_percentiles(gap_of, read_probes, scale, rest, shift)
        shift = rendered - cue
        history.append((cue, rendered))
        wanted = next_cue_targets(target, history)
        wanted_style = MouthStyle(float(wanted[0]), float(max(wanted[1], 1e-3)), float(max(wanted[2], 1e-3)),
                                  style.frames, style.source)
        scale, rest = fit_in_cue_units(linear, wanted_style, rests)
    _, reached = _rendered_percentiles(gap_of, read_probes, scale, rest, shift)
    return MouthFit(scale, rest, tuple(float(x) for x in shift), tuple(float(x) for x in reached))


def _rendered_percentiles(gap_of, read_probes, scale: float, rest: float,
                          shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cue, rendered) p10, p50, p90 with these knobs: the rendered ones are the medians of the
    probes read around each cue percentile; a percentile with too few probes read keeps
    ``shift`` (rendered minus cue) from before."""
    gaps = gap_of(scale, rest)
    cue = np.percentile(gaps, PERCENTILES)
    groups = probe_frame_indices(gaps)
    picks = np.unique(np.concatenate(groups))
    read = dict(zip(picks.tolist(), read_probes(scale, rest, picks)))
    rendered = cue + shift
    for k, group in enumerate(groups):
        values = np.array([read[i] for i in group.tolist()])
        if np.isfinite(values).sum() >= min(MIN_PROBES_READ, len(group)):
            rendered[k] = float(np.nanmedian(values))
    return cue, rendered


def next_cue_targets(target: np.ndarray, history: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The cue percentiles to aim at next so that the rendered ones reach ``target``, from the
    (cue percentiles, rendered percentiles) of the rounds so far: per percentile, a line through
    all rounds' pairs (least squares: the readings are noisy) where they spread enough to give a
    slope within 0.3..3, else a proportional step from the last round (rendered gap taken as
    proportional to the cue's, the correction limited to 0.5x..2x)."""
    cues = np.array([c for c, _ in history])
    rendered = np.array([r for _, r in history])
    step = cues[-1] * np.clip(target / np.maximum(rendered[-1], 1e-3), 0.5, 2.0)
    for k in range(len(target)):
        if len(history) < 2 or np.ptp(cues[:, k]) <= 1e-3:
            continue
        slope, offset = np.polyfit(cues[:, k], rendered[:, k], 1)
        if 0.3 < slope < 3.0:
            step[k] = (target[k] - offset) / slope
    return step
