"""The training-free phonetic cue model: speech + emotion -> facial cues, with no network.

Mouth timing comes from a speaker-independent phonetic front-end (pocketsphinx phones ->
visemes) with co-articulation (Cohen & Massaro dominance functions); mouth *shapes*, emotion
expressions and the statistics of head motion, gaze and blinks per emotion come from real faces
(``assets/cue_priors.npz``, built by ``scripts/build_cue_priors.py`` from the real MEAD clips and
talking videos). It is facecue's ``--cue-model phonetic`` and the teacher that makes the training
data of the stage-1 network (see docs/MODEL_CARD.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .audio import VISEME_NAMES, Phone, loudness_envelope, n_video_frames, recognize_phones
from .assets import asset_path
from .constants import (
    DEFAULT_FPS,
    EMOTIONS,
    INNER_LIP_MID,
    LEFT_EYE_CORNERS,
    LEFT_LOWER_LID,
    LEFT_UPPER_LID,
    MOUTH_CORNERS,
    N_LANDMARKS,
    N_MESH_POINTS,
    RIGHT_EYE_CORNERS,
    RIGHT_LOWER_LID,
    RIGHT_UPPER_LID,
    SAMPLE_RATE,
)
from .cues import (
    FaceCues,
    GazeBins,
    angles_to_rotation,
    combined_gaze,
    eye_aperture,
    gaze_from_normalized,
    place_iris,
    rotation_to_angles,
)
from .errors import CheckpointError
from .inputs import (
    check_blink_rate,
    check_intensity,
    check_mouth_rest,
    check_mouth_scale,
    check_pose_scale,
    emotion_id,
    parse_emotion_schedule,
    parse_gaze,
)
from .motion import LOWER_LIP, UPPER_LIP, close_eyes, drop_lower_lip, lower_upper_lip, open_mouth

PRIORS_KIND = "facecue.cue_priors"
PRIORS_VERSION = 3

# Co-articulation: dominance (how strongly a viseme imposes its shape) and spread (how far, in
# units of the phone's half-duration, its influence reaches). Lips must close on bilabials, so
# PP dominates; tongue consonants barely constrain the lips and take the neighbouring vowels'.
VISEME_DOMINANCE = {
    "sil": 1.0, "PP": 8.0, "FF": 3.0, "TH": 0.6, "DD": 0.35, "kk": 0.3, "CH": 1.5, "SS": 0.6,
    "RR": 0.8, "aa": 1.0, "E": 1.0, "I": 1.0, "O": 1.5, "U": 2.0,
}
VISEME_SPREAD = {"sil": 1.2, "PP": 0.9, "FF": 1.0}
DEFAULT_SPREAD = 1.6
MIN_HALF_DURATION_S = 0.035
ANTICIPATION_S = 0.04  # lips move slightly before the sound they make

BLINK_RATE_RANGE = (14.0, 24.0)  # per minute, the default per emotion is clipped into this (people blink
# about 15-20 times a minute while talking; MEAD's 4-second clips under-count)
BLINK_CLOSE_S, BLINK_HOLD_S, BLINK_OPEN_S = 0.07, 0.04, 0.14
SACCADE_S = 0.06
MEAN_FIXATION_S = 1.6
POSE_SMOOTHING_S = 0.5  # head motion is low-frequency
POSE_MOTION_GAIN = 2.2  # MEAD's 4-second clips under-sample slow head motion

# Mouth amplitude, calibrated in a closed loop against real talking videos (inner-lip gap
# distributions; scripts/calibrate_expressiveness.py, docs/calibration/README.md): the viseme
# shapes are averages of real frames (averaging shrinks them), co-articulation mixes each vowel
# with its neighbours, and loudness modulates around a floor.
SPEECH_MOUTH_GAIN = 1.3
VISEME_SHARPNESS = 1.0
# Quiet syllables move the mouth this fraction of loud ones' (plus the held jaw). Tried and not
# taken: 0.15. On the calibration material the mouth bar gained Obama_clip3 (p50 / p90 ratio 1.09
# / 1.22 -> 1.05 / 1.15) and lip-sync r with loudness rose 0.684 -> 0.718 (7 recordings, bundled
# portrait; held out: LibriSpeech 3436 0.507 -> 0.564), but the recogniser's top-1 on the
# calibration portraits fell 33 -> 31 of 54 (fear 4 -> 3, sad 7 -> 6), DreamTalk's surprised case
# read neutral, and r with the real speakers' mouths stayed 0.34: the mouth followed loudness more
# closely than real ones do (docs/expressiveness/README.md) without moving more like them.
LOUDNESS_FLOOR = 0.3
SPEECH_JAW_OPENING = 0.05  # canonical units of inner-lip gap held open while speaking
SILENCE_DB = -32.0  # frames this far below the loud speech's level close the mouth
# A recording's background (hiss, hum, a room's reverberation, a crowd) can sit above SILENCE_DB:
# JFK's inaugural clip pauses at -28 to -30 dB, which the phone decoder reads as fricatives, and
# the mouth kept moving and held the jaw open through every pause. Frames within NOISE_MARGIN_DB
# of the recording's noise floor (the NOISE_FLOOR_PERCENTILE-th percentile of its frame levels)
# are silent too, though never above NOISE_GATE_MAX_DB: a recording without pauses has syllables
# for its quietest frames. With white noise added to the calibration speech (the 4 calibration
# talking videos and the bundled recording) at -30 / -25 dB, this closes 100 % / 97-100 % of the
# frames the clean recording has silent, and 0-8 % / 0-1 % of the others (those under -24 dB,
# then under the noise); a 3 dB margin closed 100 % of them in white noise but only part of
# JFK's pauses, whose level wanders more; at -20 dB noise the gate stays at NOISE_GATE_MAX_DB.
NOISE_FLOOR_PERCENTILE = 5.0
NOISE_MARGIN_DB = 6.0
NOISE_GATE_MAX_DB = -24.0
MIN_SPEECH_FRAMES = 3  # shorter bursts between silent frames are a click or a breath, not a syllable


_PAD_MODES = {"nearest": "edge", "reflect": "symmetric", "wrap": "wrap"}  # scipy.ndimage's names -> np.pad's


def gaussian_filter1d(values: np.ndarray, sigma: float, axis: int = -1, mode: str = "reflect") -> np.ndarray:
    """``scipy.ndimage.gaussian_filter1d`` (its kernel: radius ``int(4 * sigma + 0.5)``, weights
    normalised to 1; its edge ``mode`` "reflect", "nearest" or "wrap"), in float64 NumPy: the same
    values to rounding, without importing scipy.ndimage (0.45 s, most of ``facecue generate``'s
    start-up before its helpers can start)."""
    dtype = np.asarray(values).dtype
    x = np.asarray(values, np.float64)
    radius = int(4.0 * float(sigma) + 0.5)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    x = np.moveaxis(x, axis, -1)
    padded = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(radius, radius)], mode=_PAD_MODES[mode])
    out = np.zeros_like(x)
    for k, weight in enumerate(kernel):  # a few dozen taps: a weighted sum of shifted views
        out += weight * padded[..., k : k + x.shape[-1]]
    # scipy's output has the input's dtype (float32 in, float32 out)
    return np.moveaxis(out, -1, axis).astype(dtype if np.issubdtype(dtype, np.floating) else np.float64, copy=False)


@dataclass(frozen=True)
class CuePriors:
    """Real-data priors; arrays indexed by ``VISEME_NAMES`` and ``EMOTIONS``."""

    viseme_offsets: np.ndarray  # (14, 478, 3) canonical units, offsets from the rest shape
    emotion_offsets: np.ndarray  # (8, 478, 3)
    reference_mouth_width: float
    pose_mean: np.ndarray  # (8, 3) degrees (yaw, pitch, roll) relative to neutral
    pose_std: np.ndarray  # (8, 3)
    gaze_mean: np.ndarray  # (8, 2) degrees relative to neutral
    gaze_std: np.ndarray  # (8, 2)
    blink_rate: np.ndarray  # (8,) per minute, as measured
    lower_face_weight: np.ndarray  # (478,) 1 on the mouth and jaw, fading above the nose base
    emotion_jaw_opening: np.ndarray  # (8,) canonical units of lip gap the emotion holds open while speaking
    emotion_speech_gain: np.ndarray  # (8,) how much wider the emotion's speech movements are than neutral's
    emotion_opening: np.ndarray  # (8, 478, 3) per unit of lip gap: how the emotion's lips part unlike neutral's


@lru_cache(maxsize=1)
def load_priors() -> CuePriors:
    path = asset_path("cue_priors.npz")
    with np.load(path, allow_pickle=False) as data:
        if str(data["kind"]) != PRIORS_KIND:
            raise CheckpointError(path, "not a facecue cue-priors file")
        if int(data["version"]) != PRIORS_VERSION:
            raise CheckpointError(path, f"cue priors version {int(data['version'])}, expected {PRIORS_VERSION}; rebuild them")
        if tuple(data["viseme_names"]) != tuple(VISEME_NAMES) or tuple(data["emotion_names"]) != tuple(EMOTIONS):
            raise CheckpointError(path, "cue priors were built for other viseme/emotion sets; rebuild them")
        return CuePriors(
            viseme_offsets=data["viseme_offsets"].astype(np.float32),
            emotion_offsets=data["emotion_offsets"].astype(np.float32),
            reference_mouth_width=float(data["reference_mouth_width"]),
            pose_mean=data["pose_mean"].astype(np.float32),
            pose_std=data["pose_std"].astype(np.float32),
            gaze_mean=data["gaze_mean"].astype(np.float32),
            gaze_std=data["gaze_std"].astype(np.float32),
            blink_rate=data["blink_rate"].astype(np.float32),
            lower_face_weight=data["lower_face_weight"].astype(np.float32),
            emotion_jaw_opening=data["emotion_jaw_opening"].astype(np.float32),
            emotion_speech_gain=data["emotion_speech_gain"].astype(np.float32),
            emotion_opening=data["emotion_opening"].astype(np.float32),
        )


# --- emotion schedule ----------------------------------------------------------------------


def emotion_weights(schedule: list[tuple[float, str]] | str, n_frames: int, fps: float, blend_s: float = 0.6) -> np.ndarray:
    """(T, 8) per-frame emotion weights (rows sum to 1); changes are blended over ``blend_s``."""
    if isinstance(schedule, str):
        schedule = parse_emotion_schedule(schedule)
    weights = np.zeros((n_frames, len(EMOTIONS)), np.float32)
    starts = [int(round(s * fps)) for s, _ in schedule]
    for k, (_, name) in enumerate(schedule):
        stop = starts[k + 1] if k + 1 < len(schedule) else n_frames
        weights[max(0, starts[k]) : max(0, stop), emotion_id(name)] = 1.0
    sigma = blend_s * fps / 3
    if len(schedule) > 1 and sigma > 0 and n_frames > 1:
        weights = gaussian_filter1d(weights, sigma, axis=0, mode="nearest")
        weights /= weights.sum(axis=1, keepdims=True)
    return weights


def cue_emotion_weights(meta: dict, n_frames: int, fps: float) -> np.ndarray | None:
    """(T, 8) float32 emotion weights, intensity included, that cues made from speech carry in
    their ``meta`` (``emotion``: a name, a schedule or ``(seconds, name)`` pairs; ``intensity``,
    default 1), as :func:`facecue.generate.generate` gives them to the renderer; None for cues
    that say no emotion (a real video's, whose expression is all in its landmarks)."""
    emotion = meta.get("emotion")
    if emotion is None or (isinstance(emotion, (list, tuple)) and not emotion):
        return None
    intensity = check_intensity(meta.get("intensity", 1.0))
    return emotion_weights(parse_emotion_schedule(emotion), n_frames, fps) * intensity


# --- mouth ---------------------------------------------------------------------------------


def viseme_weights(phones: list[Phone], n_frames: int, fps: float) -> np.ndarray:
    """(T, 14) co-articulated viseme mixture per frame (rows sum to 1).

    Each phone's dominance decays exponentially from its centre, so neighbouring phones blend
    (co-articulation) while bilabials, which dominate strongly, still close the lips.
    """
    from .audio import phone_to_viseme

    times = np.arange(n_frames) / fps + ANTICIPATION_S
    weights = np.full((n_frames, len(VISEME_NAMES)), 1e-6, np.float64)
    weights[:, 0] += 1e-6  # rest shape where nothing is said
    for phone in phones:
        viseme = phone_to_viseme(phone.label)
        v = VISEME_NAMES.index(viseme)
        centre = 0.5 * (phone.start_s + phone.end_s)
        half = max(0.5 * (phone.end_s - phone.start_s), MIN_HALF_DURATION_S)
        tau = half * VISEME_SPREAD.get(viseme, DEFAULT_SPREAD)
        lo = np.searchsorted(times, centre - 6 * tau)
        hi = np.searchsorted(times, centre + 6 * tau)
        if hi <= lo:
            continue
        dominance = VISEME_DOMINANCE[viseme] * np.exp(-np.abs(times[lo:hi] - centre) / tau)
        weights[lo:hi, v] += dominance
    weights = weights ** VISEME_SHARPNESS  # > 1: each phone holds its own shape longer against its neighbours
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def silent_frames(rms: np.ndarray) -> np.ndarray:
    """(T,) bool, the pauses of a loudness envelope ``rms`` ((T,) linear RMS per video frame):
    frames ``SILENCE_DB`` below the loud speech's level (its 95th percentile), or within
    ``NOISE_MARGIN_DB`` of the recording's noise floor (at most ``NOISE_GATE_MAX_DB``), and bursts
    shorter than ``MIN_SPEECH_FRAMES`` between them."""
    rms = np.asarray(rms, np.float64)
    if not rms.any():
        return np.ones(rms.shape, bool)
    ref = np.percentile(rms[rms > 0], 95) + 1e-9
    level_db = 20 * np.log10(rms / ref + 1e-9)
    noise_floor_db = np.percentile(level_db, NOISE_FLOOR_PERCENTILE)
    threshold_db = min(max(SILENCE_DB, noise_floor_db + NOISE_MARGIN_DB), NOISE_GATE_MAX_DB)
    silent = level_db < threshold_db
    bounds = np.flatnonzero(np.diff(np.concatenate([[0], (~silent).astype(np.int8), [0]]))).reshape(-1, 2)
    lengths = bounds[:, 1] - bounds[:, 0]
    if len(lengths) and lengths.max() >= MIN_SPEECH_FRAMES:
        for start, end in bounds[lengths < MIN_SPEECH_FRAMES]:
            silent[start:end] = True
    return silent


def loudness_gain(audio: np.ndarray, n_frames: int, fps: float) -> np.ndarray:
    """(T,) multiplier of mouth movement from the loudness envelope: louder speech opens more,
    pauses (:func:`silent_frames`) close the mouth."""
    rms = loudness_envelope(audio, fps, n_frames).astype(np.float64)
    if not rms.any():
        return np.zeros(n_frames, np.float32)
    ref = np.percentile(rms[rms > 0], 95) + 1e-9
    level = np.clip(rms / ref, 0, 1.5)
    gain = LOUDNESS_FLOOR + (1.0 - LOUDNESS_FLOOR) * level
    gain[silent_frames(rms)] = 0.0
    return gaussian_filter1d(gain, 0.8, mode="nearest").astype(np.float32)


def speaking_weight(loudness: np.ndarray) -> np.ndarray:
    """(T,) float64 0..1, how far each frame is inside speech rather than a pause, from a
    :func:`loudness_gain` (T,): 1 in speech, 0 a few frames into a pause, smooth between. The
    jaw is held part-open while speaking, and the stage-1 network's speech movement is let go of
    in the pauses, by this weight."""
    return gaussian_filter1d((np.asarray(loudness) > 0).astype(np.float64), 1.0, mode="nearest")


def mouth_offsets(
    audio: np.ndarray,
    phones: list[Phone],
    n_frames: int,
    fps: float,
    mouth_scale: float = 1.0,
    *,
    speech_gain: np.ndarray | float = 1.0,
    jaw_opening: np.ndarray | float = 0.0,
    lip_share: np.ndarray | float = 0.0,
    mouth_rest: float = 0.0,
) -> np.ndarray:
    """(T, 478, 3) lower-face offsets in canonical units for the speech.

    speech_gain : (T,) or scalar, widens the speech movements (an emotion's, 1 = neutral speech)
    jaw_opening : (T,) or scalar, extra lip gap (canonical units) held open while speaking
    lip_share : (T,) or scalar 0..1, the part of ``jaw_opening`` held by the lips (upper lip up,
        lower lip down, the jaw and its teeth closed: :func:`lip_parting_shape`) instead of the jaw
    mouth_rest : inner-lip gap (canonical units) the lips hold apart between words and in pauses,
        closing only for bilabials and labiodentals; some people rest with parted lips (not
        multiplied by ``mouth_scale``)
    """
    priors = load_priors()
    mix = viseme_weights(phones, n_frames, fps)
    loudness = loudness_gain(audio, n_frames, fps)
    shapes = priors.viseme_offsets.reshape(len(VISEME_NAMES), -1)
    visemes = (mix @ shapes) * (loudness * SPEECH_MOUTH_GAIN * speech_gain)[:, None]
    # Running speech holds the jaw part-open between the visemes' peaks; lips still close where
    # bilabials, labiodentals or silence dominate.
    closing = lip_closing_weight(mix) + mix[:, 0]
    speaking = speaking_weight(loudness)
    held = speaking * np.clip(1.0 - closing, 0.0, 1.0)
    lips = np.asarray(jaw_opening * lip_share, np.float64) * held
    carrier = (SPEECH_JAW_OPENING + jaw_opening) * held - lips
    shapes = carrier[:, None] * jaw_shape().reshape(1, -1) + lips[:, None] * lip_parting_shape().reshape(1, -1)
    offsets = (visemes + shapes) * mouth_scale
    if mouth_rest:
        offsets = offsets + rest_parting(mix, mouth_rest)
    return offsets.reshape(n_frames, N_LANDMARKS, 3)


def lip_closing_weight(mix: np.ndarray) -> np.ndarray:
    """(T,) 0..1, how much the lips close for a bilabial or labiodental in each frame of a
    :func:`viseme_weights` mixture ``mix`` (T, 14)."""
    return mix[:, VISEME_NAMES.index("PP")] + 0.6 * mix[:, VISEME_NAMES.index("FF")]


def rest_parting(mix: np.ndarray, mouth_rest: float) -> np.ndarray:
    """(T, 478 * 3) offsets, canonical units: the lips held ``mouth_rest`` apart (inner-lip gap)
    except where they close for a bilabial or labiodental (``mix``: a :func:`viseme_weights`
    mixture (T, 14)); some people rest with parted lips."""
    parted = mouth_rest * np.clip(1.0 - lip_closing_weight(mix), 0.0, 1.0)
    return parted[:, None] * lip_parting_shape().reshape(1, -1)


@lru_cache(maxsize=1)
def jaw_shape() -> np.ndarray:
    """(478, 3) the real open-vowel mouth shape scaled to one canonical unit of inner-lip gap."""
    aa = load_priors().viseme_offsets[VISEME_NAMES.index("aa")].astype(np.float64)
    gap = aa[INNER_LIP_MID[1], 1] - aa[INNER_LIP_MID[0], 1]
    return (aa / max(gap, 1e-6)).astype(np.float32)


@lru_cache(maxsize=1)
def lip_parting_shape() -> np.ndarray:
    """(478, 3) one canonical unit of inner-lip gap made by the lips alone, on the template: the
    upper lip raised and the lower lip pulled down by half a unit each, the jaw where it is."""
    from .cues import default_template

    template = default_template().points.astype(np.float64)
    shape = drop_lower_lip(lower_upper_lip(template, -0.5), 0.5)
    return (shape - template).astype(np.float32)


# --- eyes, gaze, head ----------------------------------------------------------------------


def blink_closure(n_frames: int, fps: float, rate_per_min: float, rng: np.random.Generator) -> np.ndarray:
    """(T,) lid closure in [0, 1]: blinks at gamma-distributed intervals of mean 60/rate s."""
    closure = np.zeros(n_frames)
    if rate_per_min <= 0 or n_frames == 0:
        return closure
    duration = n_frames / fps
    mean_interval = 60.0 / rate_per_min
    t = rng.uniform(0.3, min(mean_interval, 2.5))
    times = np.arange(n_frames) / fps
    while t < duration:
        rise = np.clip((times - t) / BLINK_CLOSE_S, 0, 1)
        fall = np.clip(1 - (times - t - BLINK_CLOSE_S - BLINK_HOLD_S) / BLINK_OPEN_S, 0, 1)
        closure = np.maximum(closure, np.minimum(rise, fall) * (times >= t))
        t += max(0.5, rng.gamma(8.0, mean_interval / 8.0))  # fairly regular, as real blinks are
    return closure


def head_motion(
    n_frames: int, fps: float, weights: np.ndarray, intensity: float, audio_gain: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """(T, 3) head angle offsets (yaw, pitch, roll) degrees: the emotion's pose offset, slow
    filtered noise with the emotion's spread, and small nods with speech emphasis."""
    priors = load_priors()
    mean = weights @ priors.pose_mean * intensity
    std = weights @ (priors.pose_std * POSE_MOTION_GAIN)
    sigma = POSE_SMOOTHING_S * fps
    noise = gaussian_filter1d(rng.standard_normal((n_frames + int(6 * sigma), 3)), sigma, axis=0, mode="wrap")
    noise = noise[: n_frames] / (noise.std(axis=0, keepdims=True) + 1e-9)
    emphasis = gaussian_filter1d(np.clip(np.diff(audio_gain, prepend=audio_gain[:1]), 0, None), 2.0)
    nod = np.zeros((n_frames, 3))
    nod[:, 1] = -6.0 * emphasis  # chin dips on stressed syllables
    return (mean + std * noise + nod).astype(np.float32)


def gaze_track(
    n_frames: int, fps: float, weights: np.ndarray, intensity: float, rng: np.random.Generator, bins: GazeBins
) -> np.ndarray:
    """(T, 2) gaze (yaw, pitch) degrees relative to looking at the camera: fixations at
    discretized targets (``bins``' centres, as in the paper) joined by quick saccades."""
    priors = load_priors()
    mean = weights @ priors.gaze_mean * intensity
    std = weights @ priors.gaze_std
    out = np.zeros((n_frames, 2))
    t, current = 0, np.zeros(2)
    while t < n_frames:
        length = max(int(0.4 * fps), int(rng.exponential(MEAN_FIXATION_S) * fps))
        if rng.random() < 0.55:
            target = mean[t]
        else:
            target = mean[t] + rng.standard_normal(2) * std[t] * 2.0
        target = bins.decode(bins.encode(target))
        steps = max(1, int(round(SACCADE_S * fps)))
        ramp = np.linspace(0, 1, steps + 1)[1:, None]
        segment = np.concatenate([current + (target - current) * ramp, np.repeat(target[None], max(0, length - steps), 0)])
        out[t : t + len(segment)] = segment[: n_frames - t]
        t += len(segment)
        current = target
    return out.astype(np.float32)


# --- the model -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CueControls:
    """Per-cue knobs shared by every cue model.

    pose_scale : multiplies generated head motion around the portrait's pose (0 = still head)
    pose_angles : (T, 3) head angle offsets (yaw, pitch, roll) degrees to use instead of
        generated motion (e.g. copied from a reference video); pose_scale still applies
    gaze : "auto" (fixations and saccades), "camera" (keeps the portrait's gaze, eyes counter the
        head's motion) or (yaw, pitch) degrees relative to the camera
    blink_rate : blinks per minute; None = the emotion's typical rate
    mouth_scale : multiplies mouth movement
    mouth_rest : inner-lip gap (canonical units, about eye-corner distances) held between words
        and in pauses (0 = lips closed at rest)
    """

    pose_scale: float = 1.0
    pose_angles: np.ndarray | None = None
    gaze: str | tuple[float, float] = "auto"
    blink_rate: float | None = None
    mouth_scale: float = 1.0
    mouth_rest: float = 0.0

    def __post_init__(self) -> None:
        # the one set of input rules (facecue.inputs), so every front end refuses the same values
        check_pose_scale(self.pose_scale)
        check_blink_rate(self.blink_rate)
        check_mouth_scale(self.mouth_scale)
        check_mouth_rest(self.mouth_rest)
        parse_gaze(self.gaze)


def default_blink_rate(weights: np.ndarray) -> float:
    rate = float(np.mean(weights @ load_priors().blink_rate))
    return float(np.clip(rate, *BLINK_RATE_RANGE))


REST_LIP_GAP = 0.006  # canonical units: lips touching
# Intensity 1 is MEAD level 3. The expression offsets are applied with one gain per face region:
# brows and forehead, eyes and lids, and the lower face (mouth, cheeks, jaw). MediaPipe's mesh
# follows brows and lips only partly (real level-3 offsets re-rendered are read back smaller, and
# the recogniser reads them as neutral); the gains were chosen, with the renderer's DETAIL_GAIN,
# by the FER2013 recogniser's top-1 on calibration portraits and speech that are never reported
# (scripts/calibrate_expressiveness.py, docs/calibration/README.md).
EMOTION_REGION_GAINS = {"brows": 2.5, "eyes": 1.6, "lower": 2.2}
MAX_BROW_TRAVEL = 0.08  # canonical units (~7 mm): brows moved further saturate toward this
# Per emotion, extra factors on top of the region gains (``brows``, ``eyes``, ``lower``) and on
# the jaw opening the emotion holds while speaking (``jaw``); unlisted factors are 1. Chosen like
# the region gains, on calibration material only (scripts/calibrate_expressiveness.py). Surprise
# held its jaw open 2.5x (3.5x since: below) as far as MEAD's level-3 speech does on average: an open, dropped jaw is
# what makes real surprise readable (the real MEAD surprised clips read 3 of 3). The evidence on
# calibration portraits is weak: in an exploratory run with 4 s of speech the recogniser read
# surprise on 5 of 9 portraits with it (3 of 9 without, in a run made before other renderer
# changes); with the script's 6 s, 4 of 9 either way (docs/calibration/README.md at commit
# ffd82ad). Other factors tried (fear: jaw, lower face, eyes, brows, detail; disgust: lower face,
# brows, detail) changed no more than one reading and were left at 1. Disgust holds its lips 3x as far apart as its
# 10th-percentile statistic says, for geometry rather than the recogniser (which reads disgust as
# angry either way): re-read from rendered MEAD actors its median lip gap over neutral came out
# +0.021 canonical units at 1 and +0.044 at 3, against +0.062 in the real clips; its upper lip's
# rise -0.021 (real -0.018) and its chin's height -0.013 (real -0.006).
# Later, surprise's eyes were widened (1.6) and its jaw opened further (3.5), with its mouth
# corners drawn in (``EMOTION_ACTIONS``' lip pucker 0.06: a round "oh"): on the 9 calibration
# portraits with 6 s of calibration speech, p(surprised) 0.345 -> 0.436, top-1 4 -> 4 of 9. Drawing
# the corners in with a negative lip stretch instead (-0.06, which also lifts them by 0.05, about
# a full smile) read 0.425 and 5 of 9; eyes 1.6 alone 0.369, 4; the stretch alone 0.367, 4; both
# with the jaw at 2.5, 0.391, 5; a stretch of -0.10 with eyes 2.0, 0.388 and 6 of 9 but a pout.
EMOTION_EMPHASIS: dict[str, dict[str, float]] = {"surprised": {"jaw": 3.5, "eyes": 1.6}, "disgusted": {"jaw": 3.0}}
EMPHASIS_FACTORS = ("brows", "eyes", "lower", "jaw")
# Per emotion, FACS action shapes added to its measured offsets, in canonical units at intensity 1
# (:func:`action_shape`): ``lip_stretch`` (AU20: the mouth corners pulled sideways and down, the
# lips flattened), ``lip_pucker`` (AU18: the corners drawn in, level) and ``brow_knit`` (the inner
# brows drawn toward each other, as AU4 does; with the brows' rise this gives fear's oblique
# brows). MEAD's averaged fear offsets raise the brows and drop the jaw like surprise, and
# rendered fear looked and read like surprise; real fear (MEAD W009, M030 level 3) stretches the
# lips and knits the brows. Chosen on the calibration portraits
# and speech only (those of scripts/calibrate_expressiveness.py): the recogniser's mean p(fear)
# over the 9 portraits rose 0.203 -> 0.274 (0.04 / 0.025: 0.233; 0.10 / 0.05 with the corners
# dropping 0.4 of their travel: 0.266), its top-1 stayed 3 of 9. Tried after the report set was
# measured with these: 0.10 / 0.04 with the jaw's emphasis 0.5, 0.290 and 3; 0.07 / 0.04 with the eyes'
# emphasis 1.5, 0.282; with the jaw's 0.5, 0.274. Taken in the next session: 0.10 / 0.06, 0.289
# and 4 of 9 (re-measured: the same; with the jaw's emphasis 2.0, 0.285 and 4; with the eyes' 1.6,
# 0.305 and 3; a stretch of 0.13, 0.295 and 3: fear's reading levels off near 0.29).
# Then measured against real footage, that stretch was a caricature: each MEAD actor rendered from
# their neutral frame with M030's sad speech, MediaPipe on the rendered video, fear over neutral
# speech (median mouth width / eye distance; the corners' height over the lips' midpoint, + down):
# the real level-3 clips widen +0.069 / +0.035 / +0.012 (M030 / W009 / W011) and lift their corners
# (-0.032 / -0.030 / +0.004); 0.10 with the corners dropping 0.8 widened +0.109 / +0.132 / +0.123
# and dropped them (+0.032 / +0.004 / +0.033): a wide, everted "fish-lip" mouth. No stretch widened
# +0.018 / +0.041 / +0.035 (corners -0.027 / -0.030 / -0.012), 0.04 dropping 0.4 +0.062 / +0.076 /
# +0.077 (-0.013 / -0.018 / -0.001), a tense mouth that looks like fear. On the calibration set
# these read 3 of 9 (mean p(fear) 0.192 and 0.222; 0.05 or 0.08 level: 0.207, 0.209; no stretch
# with eyes 1.4, brow detail 2.2 or a knit of 0.10: 0.199, 0.193, 0.186) against 0.277 and 4 of 9:
# the recogniser prefers the caricature by one portrait; the look of real fear was preferred.
# An inner-brow raise (AU1: the brows' inner ends up, fading outward) moved fear's reading where
# nothing else had: 0.03 / 0.06 / 0.10 canonical units read 3 / 3 / 5 of 9 (mean p(fear) 0.245 ->
# 0.267 / 0.296 / 0.333), but re-read from the rendered MEAD actors the inner brows already rise
# 0.046 / 0.051 / 0.043 over neutral without it (real level 3: 0.037 / 0.030 / 0.037, M030 / W009
# / W011) and 0.061 / 0.072 / 0.061 with 0.10: a caricature, not taken (2026-12-04).
# Surprise's lip pucker was 0.06 until 2026-12-04; measured like fear's stretch (above), it
# narrowed the mouth -0.148 / -0.165 / -0.189 eye units where the real level-3 clips narrow it
# -0.024 / widen +0.029 / narrow -0.062 (M030 / W009 / W011): a pouted "oo". 0.03 narrows it
# -0.095 / -0.093 / -0.145 and reads 8 of 9 as 0.06 did (mean p(surprised) 0.524 -> 0.497);
# none (-0.051 / -0.048 / -0.091) read 6 of 9 (0.467).
# Anger knits its brows too (AU4);
# MEAD's average lowers them without drawing them together: p(angry) 0.403 -> 0.437 and top-1
# 6 -> 7 of 9 with 0.08 (0.03: 0.411, 6; 0.05: 0.414, 7).
# Anger's mouth is stretched (0.03, since 2026-12-06): real anger presses the lips when they close
# and widens them as they part, and with the lower face's gain the rendered angry mouth came out
# narrower than neutral speech's (-0.040 / -0.021 / -0.029 eye units for M030 / W009 / W011)
# where the real level-3 clips are wider (+0.056 / +0.002 / +0.040): a pursed, pouting mouth, the
# look the EDTalk comparison named. With 0.03 the rendered widths are +0.009 / +0.013 /
# +0.014 (mean |error| 0.062 -> 0.028; corners 0.025 -> 0.020); 0.05: +0.031 / +0.038 / +0.037
# (0.022). The calibration set reads anger 7 of 9 with either, as without (mean p(angry) 0.480 ->
# 0.456 / 0.444: to the recogniser a wider angry mouth is a little nearer a smile).
# Disgust: an upper-lip raise (AU10 with the nose wings' lift) of 0.04 or 0.08 left p(disgusted)
# at 0.101 and 0.091 (0.088 without) and 0 of 9 (all read angry); MEAD's disgust offsets already
# raise the rendered upper lip as far as the real one (see EMOTION_EMPHASIS), so none is added.
EMOTION_ACTIONS: dict[str, dict[str, float]] = {"fear": {"lip_stretch": 0.04, "brow_knit": 0.06},
                                                "angry": {"lip_stretch": 0.03, "brow_knit": 0.08},
                                                "surprised": {"lip_pucker": 0.03}}
ACTION_NAMES = ("lip_stretch", "brow_knit", "lip_pucker")
LIP_STRETCH_DROP = 0.4  # the corners move down this fraction of their sideways travel
LIP_STRETCH_SPREAD = 0.12  # canonical units: how far around the lips the skin follows them
BROW_KNIT_CENTRE = 0.14  # canonical units from the midline: where the brows move most (the inner ends)
BROW_KNIT_SPREAD = 0.1  # canonical units: how far along the brows the pull fades
# Per emotion, the share of its held lip gap (``emotion_jaw_opening``) that the lips make with the
# jaw closed (upper lip up, lower lip down: teeth together and bared) instead of the jaw; unlisted
# emotions use the jaw. In the real MEAD level-3 clips disgust parts the lips (median gap +0.062
# over neutral) with the chin no lower than in neutral speech (-0.006, mean of the 3 actors).
EMOTION_LIP_SHARE: dict[str, float] = {"disgusted": 1.0}
SMILE_UNIT = 0.05  # canonical units: corners this much higher than the template's are a full smile
MAX_SMILE_REMOVED = 1.6  # at most this many full smiles are taken off a smiling portrait
SMILE_SPREAD = 0.1  # canonical units: how far around the corners the skin follows them down
SMILE_NARROWING = 0.04  # canonical units per side: a full smile's widening (MEAD happy level 3, ~0.034-0.047)
# A mouth wider than this x the reference (MEAD neutral) width is read as smiling by its width;
# neutral mouths of the MEAD actors and calibration speakers measure 0.91-1.05 x the reference.
SMILE_FREE_WIDTH = 1.05
SMILE_UPPER_LIP_SHARE = 0.5  # of a smiling portrait's parted lips, the share closed by letting the upper lip down
# A portrait that smiles at least this much (full smiles, its lips closed: portrait_smile) keeps
# its smile's creases and raised cheeks in every emotion, as the rest shape takes the smile off the
# mouth and eyes only. The FER2013 recogniser read 10 of the 18 non-happy renderings (neutral,
# angry, disgusted, fear, sad, surprised; docs/expressiveness and docs/calibration, 2026-12-05) of
# the 3 test portraits that smile this broadly (0.93-1.6: NASA, Obama, M030's happy frame) as
# happy, and 4 of the 66 of the 11 others (0-0.46).
BROAD_SMILE = 0.7
# A smile narrows the eyes too: the cheeks push the lower lids up (AU6). A smiling portrait's eyes
# are opened by this many full smiles' worth of MEAD's level-3 happy offsets around the eyes, so
# that its angry or sad eyes start from un-smiling eyes (its happy eyes get them back from the
# happy offsets). The Obama portrait (a broad smile, eye opening 0.21 of the eye's width against
# 0.23-0.38 for the other portraits) read 0.56 of its opening in angry speech at the median
# without it (MediaPipe on the rendered 256 px video; 2.6 % of frames under half) and 0.76 with
# it (none under half): eyes that look shut in a scowl against a glare. On the 9 calibration
# portraits (2 of them MEAD happy frames) every reading of 7 emotions stayed what it was (35/54;
# mean p(target) within 0.002); more than one smile's worth was not tried, as MEAD's happy is the
# only measured smile. Only the lids and the skin around them move (fading over
# ``SMILE_EYES_SPREAD`` from the lids): taking off the happy offsets of the whole mid-face (the
# first version, the same readings) also narrowed the cheeks' contour and moved the nose, 0.6 %
# of the eye distance on the Obama portrait (its identity error 1.78 -> 1.99 %; the bar is 2 %).
SMILE_EYES_REMOVED = 1.0
SMILE_EYES_SPREAD = 0.08  # canonical units from the nearest lid point


def _region_weights() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(478,) weights of the lower face (``lower_face_weight``), the brows and forehead (above the
    eyes' upper lids) and the eyes (the rest); they sum to 1."""
    from .cues import default_template

    points = default_template().points
    lower = load_priors().lower_face_weight.astype(np.float64)
    lid_top = points[list(RIGHT_UPPER_LID + LEFT_UPPER_LID), 1].min()
    brow = np.clip((lid_top - points[:, 1] - 0.03) / 0.08, 0.0, 1.0) * (1.0 - lower)
    return lower, brow, 1.0 - lower - brow


def emphasis_factors(factor: str, emphasis: dict[str, dict[str, float]] | None = None) -> np.ndarray:
    """(8,) ``factor`` of ``emphasis`` (``EMOTION_EMPHASIS``' layout; default: it) for each
    emotion (in ``EMOTIONS`` order), 1 where unset."""
    table = EMOTION_EMPHASIS if emphasis is None else emphasis
    return np.array([table.get(name, {}).get(factor, 1.0) for name in EMOTIONS], np.float64)


def _gain_map(gains: dict[str, float], emphasis: dict[str, dict[str, float]]) -> np.ndarray:
    """(8, 478, 1) float32 :func:`emotion_gain_map` for these region gains and emphasis factors."""
    lower, brow, eyes = _region_weights()
    regions = {"lower": lower, "brows": brow, "eyes": eyes}
    total = sum(gains[name] * emphasis_factors(name, emphasis)[:, None] * weight[None]
                for name, weight in regions.items())
    return total[..., None].astype(np.float32)


@lru_cache(maxsize=1)
def emotion_gain_map() -> np.ndarray:
    """(8, 478, 1) per-emotion, per-landmark gain of the emotion offsets: ``EMOTION_REGION_GAINS``
    times the emotion's ``EMOTION_EMPHASIS`` per region."""
    return _gain_map(EMOTION_REGION_GAINS, EMOTION_EMPHASIS)


def _lip_sideways_shape(outward: float, drop: float) -> np.ndarray:
    """(478, 3) float64 canonical units: the mouth corners moved ``outward`` sideways (negative:
    inward) and ``drop`` x their sideways travel down, on the template; the lips between move in
    proportion to their distance from the midline, the lower face around them fading over
    ``LIP_STRETCH_SPREAD``."""
    from .cues import default_template

    points = default_template().points.astype(np.float64)
    lower, _, _ = _region_weights()
    x, y = points[:, 0], points[:, 1]
    corners = points[list(MOUTH_CORNERS), :2]
    centre, half_width = corners.mean(axis=0), abs(corners[1, 0] - corners[0, 0]) / 2
    dx = np.abs(x - centre[0])
    outside = dx - np.minimum(dx, half_width)  # 0 between the corners
    fall_off = np.exp(-(outside**2 + (y - centre[1]) ** 2) / (2 * LIP_STRETCH_SPREAD**2)) * lower
    reach = np.clip((x - centre[0]) / half_width, -1.3, 1.3)  # the cheeks beyond the corners move no faster
    shape = np.zeros_like(points)
    shape[:, 0] = outward * reach * fall_off
    shape[:, 1] = drop * abs(outward) * np.abs(reach) * fall_off
    return shape


@lru_cache(maxsize=None)
def action_shape(name: str) -> np.ndarray:
    """(478, 3) float64 canonical units: one unit of a FACS action shape (``ACTION_NAMES``) on the
    template face; points away from the moving part follow with a Gaussian fall-off.

    * ``lip_stretch``: the mouth corners move 1 sideways (outward) and ``LIP_STRETCH_DROP`` down,
      the lips between in proportion to their distance from the midline, the lower face around
      them fading over ``LIP_STRETCH_SPREAD``;
    * ``lip_pucker`` (AU18): the mouth corners move 1 inward, level, the rest as ``lip_stretch``;
    * ``brow_knit``: the brows and forehead move 1 toward the midline at ``BROW_KNIT_CENTRE``
      from it, fading along the brows over ``BROW_KNIT_SPREAD``.
    """
    from .cues import default_template

    points = default_template().points.astype(np.float64)
    _, brow, _ = _region_weights()
    shape = np.zeros_like(points)
    x = points[:, 0]
    if name in ("lip_stretch", "lip_pucker"):
        shape = _lip_sideways_shape(1.0 if name == "lip_stretch" else -1.0,
                                    LIP_STRETCH_DROP if name == "lip_stretch" else 0.0)
    elif name == "brow_knit":
        toward_midline = -np.tanh(x / 0.03)  # -1 / +1 on either side, 0 on the midline (no tear there)
        shape[:, 0] = toward_midline * np.exp(-(((np.abs(x) - BROW_KNIT_CENTRE) / BROW_KNIT_SPREAD) ** 2)) * brow
    else:
        raise ValueError(f"unknown action shape {name!r}; use one of {', '.join(ACTION_NAMES)}")
    return shape


@lru_cache(maxsize=1)
def emotion_offsets_applied() -> np.ndarray:
    """(8, 478, 3) the emotions' offsets at intensity 1 with the region gains; a brow moved
    further than ``MAX_BROW_TRAVEL`` saturates softly (tanh) toward it, so that emotions whose
    real brows already move far (contempt, surprise) are not stretched into caricature. Then
    each emotion's ``EMOTION_ACTIONS`` are added. :func:`expression_offsets` with the settings
    set now, float32."""
    return expression_offsets().astype(np.float32)


def expression_offsets(settings: dict | None = None) -> np.ndarray:
    """(8, 478, 3) float64 canonical units: :func:`emotion_offsets_applied` as another set of
    emotion settings draws it (``gains``, ``emphasis``, ``actions``: :func:`emotion_settings`'
    layout, e.g. those a network's teacher had); a setting missing or None is the one set now."""
    settings = settings or {}

    def chosen(name: str, current):
        value = settings.get(name)
        return current if value is None else value

    gains = chosen("gains", EMOTION_REGION_GAINS)
    emphasis = chosen("emphasis", EMOTION_EMPHASIS)
    gained = load_priors().emotion_offsets.astype(np.float64) * _gain_map(gains, emphasis)
    _, brow, _ = _region_weights()
    travel = np.linalg.norm(gained, axis=-1, keepdims=True)
    saturated = MAX_BROW_TRAVEL * np.tanh(travel / MAX_BROW_TRAVEL) / np.maximum(travel, 1e-9)
    factor = 1.0 + brow[None, :, None] * (saturated - 1.0)
    actions = chosen("actions", None)
    return gained * factor + (emotion_action_offsets() if actions is None else action_offsets(actions))


@lru_cache(maxsize=1)
def emotion_action_offsets() -> np.ndarray:
    """(8, 478, 3) float64 canonical units: the part of :func:`emotion_offsets_applied` made by
    each emotion's ``EMOTION_ACTIONS`` at intensity 1."""
    return action_offsets(EMOTION_ACTIONS)


def action_offsets(actions: dict[str, dict[str, float]]) -> np.ndarray:
    """(8, 478, 3) float64 canonical units: the offsets of a table of action amounts laid out as
    ``EMOTION_ACTIONS`` (emotion -> {action shape: canonical units}) at intensity 1."""
    offsets = np.zeros((len(EMOTIONS), N_LANDMARKS, 3))
    for emotion, amounts in actions.items():
        for name, amount in amounts.items():
            offsets[EMOTIONS.index(emotion)] += amount * action_shape(name)
    return offsets


# The opening shapes are applied at their measured size. Re-read from rendered MEAD actors (M030's
# sad speech, each actor from their neutral frame), the median mouth width, gap, upper-lip height,
# corner height and chin height of 7 emotions over neutral came out 0.0165 canonical units from the
# real clips' on average with gain 1, 0.0176 with gain 2 (width and corners overshoot) and 0.0197
# without opening shapes (0.0162 with disgust's lip parting added); the upper lip's rise in angry
# speech is about half the real one at gain 1.
EMOTION_OPENING_GAIN = 1.0


@lru_cache(maxsize=1)
def emotion_opening_applied() -> np.ndarray:
    """(8, 478, 3) how each emotion's lips part unlike neutral speech's, per canonical unit of lip
    gap, on the lower face only, times ``EMOTION_OPENING_GAIN`` and the emotion's ``lower`` emphasis."""
    lower, _, _ = _region_weights()
    gain = EMOTION_OPENING_GAIN * emphasis_factors("lower")
    opening = load_priors().emotion_opening.astype(np.float64)
    return (opening * gain[:, None, None] * lower[None, :, None]).astype(np.float32)


def emotion_opening(weights: np.ndarray, intensity: float) -> np.ndarray:
    """(T, 478, 3) per-frame opening shapes (canonical units per unit of lip gap) for emotion
    ``weights`` (T, 8) at ``intensity``; :func:`assemble_cues` scales them by each frame's gap."""
    return (intensity * np.einsum("te,ekd->tkd", weights, emotion_opening_applied())).astype(np.float32)


# An expression narrows an eye to at most this fraction of the portrait's opening. MediaPipe can
# read a rendered eye narrower than its cue: contempt (lids lowered, brows raised) on the
# narrow-eyed DreamTalk male read under half his opening in 37.5 % of frames at 0.6, 0.4 % at
# 0.65. On the calibration set 0.65 read as 0.6 did (angry 7, sad 9, disgusted 0, happy 9, fear 3
# of 9, mean p within 0.005); 0.7 lost an angry and a sad reading.
MIN_EYE_OPENING = 0.65


def limit_eye_narrowing(base: np.ndarray, shapes: np.ndarray, min_fraction: float = MIN_EYE_OPENING) -> np.ndarray:
    """(T, 478, 3) ``shapes`` whose eyes are narrowed (by an expression) below ``min_fraction`` of
    the eyes of ``base`` (478, 3), with that eye's region moved back toward ``base`` until the
    opening is ``min_fraction`` of it: narrow-eyed portraits keep open eyes (blinks, drawn later,
    still close them)."""
    from .cues import eye_aperture

    shapes = np.array(shapes, dtype=np.float64)
    base = np.asarray(base, np.float64)
    open_base = eye_aperture(base).astype(np.float64)  # (2,) right, left
    target = min_fraction * open_base
    _, _, eyes = _region_weights()
    side = (base[:, 0] > 0).astype(int)  # the subject's right eye is at negative x (MediaPipe's layout)
    # the opening is not linear in the displacement (the eye's corners move too): a few rounds
    for _ in range(6):
        open_now = eye_aperture(shapes).astype(np.float64)  # (T, 2)
        if (open_now >= target - 1e-4).all():
            break
        keep = np.clip((open_base - target) / np.maximum(open_base - open_now, 1e-9), 0.0, 1.0)
        keep = np.where(open_now < target, keep, 1.0)
        factor = 1.0 - eyes[None, :] * (1.0 - keep[:, side])  # (T, 478)
        shapes = base[None] + (shapes - base[None]) * factor[..., None]
    return shapes


# Lip contours (MediaPipe indices), corner to corner: the vermilion's outer and inner edges
# (motion.UPPER_LIP is the upper lip's two, corners included; motion.LOWER_LIP the lower's, without)
UPPER_LIP_OUTER, UPPER_LIP_INNER = UPPER_LIP[:11], UPPER_LIP[11:]
LOWER_LIP_OUTER = UPPER_LIP_OUTER[:1] + LOWER_LIP[:9] + UPPER_LIP_OUTER[-1:]
LOWER_LIP_INNER = UPPER_LIP_INNER[:1] + LOWER_LIP[9:] + UPPER_LIP_INNER[-1:]
# ... and every point of each lip: the edges and the two rows of the mesh between them
UPPER_LIP_POINTS = UPPER_LIP_OUTER + UPPER_LIP_INNER + (76, 184, 74, 73, 72, 11, 302, 303, 304, 408, 306,
                                                       62, 183, 42, 41, 38, 12, 268, 271, 272, 407, 292)
LOWER_LIP_POINTS = LOWER_LIP_OUTER + LOWER_LIP_INNER + (96, 89, 179, 86, 15, 316, 403, 319, 325,
                                                       77, 90, 180, 85, 16, 315, 404, 320, 307)
# A lip keeps at least this fraction of the portrait's height (outer to inner edge, at every point
# along the mouth). The expression offsets and speech shapes move the lips' edges by fixed amounts,
# measured on the MEAD actors' lips (an upper lip ~0.09 canonical units high): happiness, sadness
# and disgust thin the upper lip by 0.024-0.032 and wide vowels by ~0.1 of their gap, so on a
# thin-lipped portrait the upper lip went to nothing or turned inside out: at its 5th percentile,
# -0.14 / -0.19 of the portrait's (the Obama portrait's 0.051, happy / sad speech; inside out in
# 20 / 38 % of frames) and 0.23 / 0.20 (NASA's 0.066). Real level-3 speech thins it to 0.35-0.8
# of the same clip's closed frames at the 1st percentile (the 24 MEAD clips, MediaPipe; W011's
# fear the thinnest). The inner edges are not moved: the mouth opens as before.
MIN_LIP_HEIGHT = 0.4
LIP_SKIN_FOLLOW = 0.06  # canonical units: how far beyond a moved outer edge the skin follows it


def _contour_interpolation(contour_x: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(len(x), len(contour_x)) weights: linear interpolation of values given at ``contour_x``
    (ascending) at ``x`` (held constant beyond the ends), as a matrix."""
    return np.stack([np.interp(x, contour_x, unit) for unit in np.eye(len(contour_x))], axis=1)


LIP_LIMIT_CHUNK = 1024  # frames measured at a time (long speech: bounded temporary memory)


def lift_thin_lips(base: np.ndarray, shapes: np.ndarray, min_fraction: float = MIN_LIP_HEIGHT) -> None:
    """Change ``shapes`` ((T, 478, 3) float64) in place where its upper or lower lip is thinner
    (outer to inner edge, vertically, at any point between the mouth corners) than
    ``min_fraction`` of the lip of ``base`` (478, 3): that lip's outer edge is moved outward until
    it is that thick there; the lip between its edges follows in proportion, the skin beyond the
    outer edge fading over ``LIP_SKIN_FOLLOW``. The inner edges, and so the mouth's opening, stay
    where they are."""
    base = np.asarray(base, np.float64)
    x, y = base[:N_MESH_POINTS, 0], base[:N_MESH_POINTS, 1]
    for outer, inner, outward, other in ((UPPER_LIP_OUTER, UPPER_LIP_INNER, -1.0, LOWER_LIP_POINTS),
                                         (LOWER_LIP_OUTER, LOWER_LIP_INNER, 1.0, UPPER_LIP_POINTS)):
        lines = []
        for contour in (outer, inner):
            order = np.argsort(base[list(contour), 0], kind="stable")
            ids = np.array(contour)[order]
            matrix = _contour_interpolation(base[ids, 0], x)  # (468, 11)
            lines.append((ids, matrix))
        (outer_ids, outer_m), (inner_ids, inner_m) = lines
        line_o, line_i = outer_m @ base[outer_ids, 1], inner_m @ base[inner_ids, 1]
        height = outward * (line_o - line_i)  # (468,) the portrait's lip height above/below each x
        between = (x > base[list(outer), 0].min()) & (x < base[list(outer), 0].max()) & (height > 1e-6)
        fraction = np.where(between, (y - line_i) / np.where(between, line_o - line_i, 1.0), -1.0)
        beyond = outward * (y - line_o)
        weight = np.where((fraction >= 0) & (fraction <= 1), fraction,
                          np.where(beyond > 0, np.clip(1.0 - beyond / LIP_SKIN_FOLLOW, 0.0, 1.0), 0.0)) * between
        weight[list(other)] = 0.0  # closed lips touch: the other lip's inner edge can sit on this one's
        moved = np.flatnonzero(weight)
        floor, weight = min_fraction * height[moved], weight[moved]
        outer_m, inner_m = outer_m[moved], inner_m[moved]
        for start in range(0, len(shapes), LIP_LIMIT_CHUNK):
            part = shapes[start : start + LIP_LIMIT_CHUNK]
            now = outward * (part[:, outer_ids, 1] @ outer_m.T - part[:, inner_ids, 1] @ inner_m.T)  # (t, moved)
            lacking = np.clip(floor[None] - now, 0.0, None)
            if lacking.any():
                part[:, moved, 1] += outward * lacking * weight[None]


def set_emotion_region_gains(**gains: float) -> None:
    """Change ``EMOTION_REGION_GAINS`` (``brows``, ``eyes``, ``lower``) for this process, e.g. to
    try settings while calibrating (scripts/calibrate_expressiveness.py)."""
    unknown = set(gains) - set(EMOTION_REGION_GAINS)
    if unknown:
        raise ValueError(f"unknown face regions {sorted(unknown)}; use {sorted(EMOTION_REGION_GAINS)}")
    EMOTION_REGION_GAINS.update({k: float(v) for k, v in gains.items()})
    emotion_gain_map.cache_clear()
    emotion_offsets_applied.cache_clear()
    emotion_opening_applied.cache_clear()


def _update_emotion_table(table: dict[str, dict[str, float]], emotion: str, values: dict[str, float],
                         allowed: tuple[str, ...], what: str) -> None:
    """``table[emotion]`` updated with ``values`` (names in ``allowed``; a ValueError names ``what``)."""
    if emotion not in EMOTIONS:
        raise ValueError(f"unknown emotion {emotion!r}; use one of {', '.join(EMOTIONS)}")
    unknown = set(values) - set(allowed)
    if unknown:
        raise ValueError(f"unknown {what} {sorted(unknown)}; use {list(allowed)}")
    table[emotion] = {**table.get(emotion, {}), **{k: float(v) for k, v in values.items()}}


def set_emotion_emphasis(emotion: str, **factors: float) -> None:
    """Change ``EMOTION_EMPHASIS[emotion]`` (factors ``brows``, ``eyes``, ``lower``, ``jaw``) for
    this process, e.g. while calibrating (scripts/calibrate_expressiveness.py)."""
    _update_emotion_table(EMOTION_EMPHASIS, emotion, factors, EMPHASIS_FACTORS, "emphasis factors")
    emotion_gain_map.cache_clear()
    emotion_offsets_applied.cache_clear()
    emotion_opening_applied.cache_clear()


def set_emotion_actions(emotion: str, **amounts: float) -> None:
    """Change ``EMOTION_ACTIONS[emotion]`` (``ACTION_NAMES``, canonical units) for
    this process, e.g. while calibrating (scripts/calibrate_expressiveness.py)."""
    _update_emotion_table(EMOTION_ACTIONS, emotion, amounts, ACTION_NAMES, "action shapes")
    emotion_action_offsets.cache_clear()
    emotion_offsets_applied.cache_clear()


def emotion_settings() -> dict:
    """A copy of this process's ``EMOTION_REGION_GAINS``, ``EMOTION_EMPHASIS``,
    ``EMOTION_ACTIONS`` and ``SPEECH_WIDENING`` (``gains``, ``emphasis``, ``actions``,
    ``speech_widening``), for :func:`restore_emotion_settings` after trying others (and recorded
    as a network's teacher's settings)."""
    return {"gains": dict(EMOTION_REGION_GAINS), "emphasis": {k: dict(v) for k, v in EMOTION_EMPHASIS.items()},
            "actions": {k: dict(v) for k, v in EMOTION_ACTIONS.items()}, "speech_widening": SPEECH_WIDENING}


def restore_emotion_settings(settings: dict) -> None:
    """Put back what :func:`emotion_settings` returned (and clear the caches built from them)."""
    global SPEECH_WIDENING
    SPEECH_WIDENING = float(settings.get("speech_widening", SPEECH_WIDENING))
    EMOTION_REGION_GAINS.update(settings["gains"])
    EMOTION_EMPHASIS.clear()
    EMOTION_EMPHASIS.update({k: dict(v) for k, v in settings["emphasis"].items()})
    EMOTION_ACTIONS.clear()
    EMOTION_ACTIONS.update({k: dict(v) for k, v in settings.get("actions", {}).items()})
    emotion_action_offsets.cache_clear()
    emotion_gain_map.cache_clear()
    emotion_offsets_applied.cache_clear()
    emotion_opening_applied.cache_clear()


def emotion_expression(weights: np.ndarray, intensity: float, *, actions: bool = True) -> np.ndarray:
    """(T, 478, 3) the emotions' closed-lip expression offsets (canonical units) for per-frame
    emotion ``weights`` (T, 8) at ``intensity`` (1 = MEAD level 3); without their
    ``EMOTION_ACTIONS`` when ``actions`` is False (those alone: :func:`emotion_action_offsets`)."""
    offsets = emotion_offsets_applied() if actions else emotion_offsets_applied() - emotion_action_offsets()
    return intensity * np.einsum("te,ekd->tkd", weights, offsets)


def expression_scale(shape: np.ndarray) -> float:
    """The mouth width of ``shape`` ((478, 3) canonical units) over the priors' reference width:
    the factor the expression offsets are scaled by on this face."""
    shape = np.asarray(shape, np.float64)
    width = np.linalg.norm(shape[MOUTH_CORNERS[0]] - shape[MOUTH_CORNERS[1]])
    return float(width / load_priors().reference_mouth_width)


def emotion_mouth_dynamics(weights: np.ndarray, intensity: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame (speech gain, jaw opening) of the emotions: how much wider an emotion's speech
    movements are than neutral speech's and how much lip gap it holds open, at ``intensity``."""
    priors = load_priors()
    gain = 1.0 + intensity * (weights @ priors.emotion_speech_gain - 1.0)
    jaw = intensity * (weights @ (priors.emotion_jaw_opening * emphasis_factors("jaw")))
    return gain.astype(np.float32), jaw.astype(np.float32)


def corner_elevation(shape: np.ndarray) -> float:
    """How far the mouth corners sit above the lips' middle (canonical units; > 0 = smiling)."""
    mid = 0.5 * (shape[INNER_LIP_MID[0], 1] + shape[INNER_LIP_MID[1], 1])
    return float(mid - 0.5 * (shape[MOUTH_CORNERS[0], 1] + shape[MOUTH_CORNERS[1], 1]))


def _smile_excess(shape: np.ndarray) -> float:
    """How far the mouth corners sit higher than on facecue's template face (canonical units, >= 0)."""
    from .cues import default_template, fit_similarity

    template = default_template()
    s, r, t = fit_similarity(template.points[template.stable], shape[template.stable])
    reference = s * template.points @ r.T + t
    return max(corner_elevation(shape) - corner_elevation(reference), 0.0)


def _width_excess(shape: np.ndarray) -> float:
    """How much wider than ``SMILE_FREE_WIDTH`` x the reference width the mouth is (canonical units, >= 0)."""
    width = float(np.linalg.norm(shape[MOUTH_CORNERS[0], :2] - shape[MOUTH_CORNERS[1], :2]))
    return max(width - SMILE_FREE_WIDTH * float(load_priors().reference_mouth_width), 0.0)


def smile_amount(shape: np.ndarray) -> float:
    """How much a (478, 3) normalized shape smiles, in full smiles (0 = not at all), capped at
    ``MAX_SMILE_REMOVED``: the larger of the corners' elevation above the template's (a full
    smile: ``SMILE_UNIT``) and the mouth's width beyond a neutral mouth's (a full smile: twice
    ``SMILE_NARROWING``). A broad smile with parted lips shows in its width more than in its
    corners."""
    shape = np.asarray(shape, np.float64)
    amount = max(_smile_excess(shape) / SMILE_UNIT, _width_excess(shape) / (2 * SMILE_NARROWING))
    return float(min(amount, MAX_SMILE_REMOVED))


def portrait_smile(normalized: np.ndarray) -> float:
    """How broadly a portrait smiles, in full smiles (:func:`smile_amount`), measured on its
    normalized shape (478, 3) canonical units with the lips closed (:func:`closed_mouth`) as
    :func:`portrait_rest_shape` measures it: parted lips alone are not a smile."""
    return smile_amount(closed_mouth(np.asarray(normalized, np.float64)))


def neutralize_smile(shape: np.ndarray) -> np.ndarray:
    """(478, 3) the (closed-mouth) portrait with its own smile taken off, so that other emotions
    can show on a smiling photo: the mouth corners (and the skin around them, fading within ~0.1
    eye distance) are lowered to the template's corner height and drawn in to a neutral mouth's
    width (at most ``MAX_SMILE_REMOVED`` full smiles), and the smile's narrowing of the eyes is
    taken off (MEAD's happy offsets around the eyes, at most ``SMILE_EYES_REMOVED`` full smiles);
    the brows and the lips' middle stay."""
    shape = np.asarray(shape, np.float64)
    drop = min(_smile_excess(shape), MAX_SMILE_REMOVED * SMILE_UNIT)
    narrowing = min(_width_excess(shape) / 2, MAX_SMILE_REMOVED * SMILE_NARROWING)  # per side
    if drop <= 0 and narrowing <= 0:
        return shape.copy()
    eyes_removed = min(smile_amount(shape), SMILE_EYES_REMOVED)
    corners = shape[list(MOUTH_CORNERS)]
    distance2 = ((shape[:, None, :2] - corners[None, :, :2]) ** 2).sum(-1)  # (478, 2)
    weight = np.exp(-distance2.min(axis=1) / (2 * SMILE_SPREAD**2)) * load_priors().lower_face_weight
    out = shape.copy()
    out[:, 1] += drop * weight
    # drawn in toward the mouth's middle: each point follows its nearer corner
    inward = np.where(corners[distance2.argmin(axis=1), 0] > corners[:, 0].mean(), -1.0, 1.0)
    out[:, 0] += narrowing * inward * weight
    out = closed_mouth(out)
    # the eyes' part, sized like the expression offsets later added to this shape
    happy = load_priors().emotion_offsets[EMOTIONS.index("happy")].astype(np.float64)
    return out - eyes_removed * expression_scale(out) * happy * _smile_eye_weights()[:, None]


@lru_cache(maxsize=1)
def _smile_eye_weights() -> np.ndarray:
    """(478,) where a smile's narrowing of the eyes is taken off: 1 on the lids, fading with the
    distance from them (``SMILE_EYES_SPREAD``), within the eyes' region of :func:`_region_weights`."""
    from .cues import default_template

    points = default_template().points.astype(np.float64)
    lids = list(RIGHT_UPPER_LID + RIGHT_LOWER_LID + RIGHT_EYE_CORNERS + LEFT_UPPER_LID + LEFT_LOWER_LID
                + LEFT_EYE_CORNERS)
    distance = np.sqrt(((points[:, None, :2] - points[None, lids, :2]) ** 2).sum(-1)).min(axis=1)
    _, _, eyes = _region_weights()
    return eyes * np.exp(-(distance**2) / (2 * SMILE_EYES_SPREAD**2))


# A portrait is often a frame caught mid-word (the MEAD actors' neutral first frames part the
# lips 0.15-0.16 canonical units, andrew's 0.18), its mouth wider by that opening; speech then
# widened it again from there, and neutral speech came out wider than the same people's real
# speech (MEAD actors from their neutral frame with M030's sad speech, median width in canonical
# units, real / before: M030 0.556 / 0.584, W009 0.547 / 0.566, W011 0.547 / 0.587; now 0.555,
# 0.532, 0.557; docs/MODEL_CARD.md, *A portrait caught mid-word*).
def portrait_rest_shape(normalized: np.ndarray) -> np.ndarray:
    """(478, 3) the rest shape speech and emotions start from, for a portrait's normalized shape
    (478, 3): lips closed and its own smile taken off (:func:`neutralize_smile`).

    A smiling portrait's parted lips are closed partly by letting the raised upper lip down over
    the teeth (``SMILE_UPPER_LIP_SHARE`` of the gap for a full smile) and the rest by raising the
    jaw, so the chin keeps its place better than with the jaw alone. A portrait caught with its
    lips parted and not smiling is also narrowed by the widening that opening brought
    (``SPEECH_WIDENING`` per unit of gap, :func:`speech_widening_shape`; in proportion to how
    little it smiles, as a smile's width is :func:`neutralize_smile`'s to take off)."""
    normalized = np.asarray(normalized, np.float64)
    closed = closed_mouth(normalized)
    smile = min(smile_amount(closed), 1.0)
    share = SMILE_UPPER_LIP_SHARE * smile
    gap = normalized[INNER_LIP_MID[1], 1] - normalized[INNER_LIP_MID[0], 1] - REST_LIP_GAP
    if share > 0 and gap > 0:
        closed = closed_mouth(lower_upper_lip(normalized, share * gap))
    rest = neutralize_smile(closed)
    if gap > 0 and smile < 1.0:
        rest = rest - (SPEECH_WIDENING * gap * (1.0 - smile)) * speech_widening_shape()
    return rest


def closed_mouth(normalized: np.ndarray) -> np.ndarray:
    """(..., 478, 3) the shape(s) with the jaw moved until the inner lips just touch; the rest
    shape that mouth offsets start from (a portrait that smiles with parted lips would otherwise
    never close, and an emotion's own lip parting would keep the mouth open in silence)."""
    base = np.asarray(normalized, dtype=np.float64)
    gap = base[..., INNER_LIP_MID[1], 1] - base[..., INNER_LIP_MID[0], 1]
    return open_mouth(base, -(gap - REST_LIP_GAP))


# Real mouths widen as they open. The least-squares slope of mouth width on inner-lip gap (both
# over the outer-eye-corner distance, MediaPipe, frame by frame) is +0.20 / +0.47 / +0.21 / +0.32
# on the 4 calibration talking videos (KristiNoem, Obama clip 3, andrew, feifeili clip 2) and
# +0.00 / +0.30 / +0.53 on the MEAD actors' neutral clips (M030 / W009 / W011), where facecue's
# re-drives of the 4 videos widened +0.01 / +0.16 / +0.14 / +0.11: their open mouths were round,
# which the recogniser read less neutral the wider they opened while the real ones read the same
# (docs/expressiveness/by_opening.md). Each unit of gap beyond REST_LIP_GAP now widens neutral
# speech's mouth by this many units (corners level): the re-drives widen +0.20 / +0.32 / +0.28 /
# +0.30 (0.25: +0.17 / +0.29 / +0.27 / +0.27; 0.5: +0.35 / +0.43 / +0.40 / +0.42). Neutral
# speech only, in proportion to its share (:func:`speech_widening`): the real MEAD level-3 clips
# widen too (angry +0.33, disgusted +0.37, happy +0.35, fear +0.21, contempt +0.20, sad +0.05,
# surprised +0.08, mean of the 3 actors), but widening every emotion's speech cost the recogniser
# 2 of the calibration set's 54 readings (35 -> 33: W011's sad and surprised read happy; mean
# p(angry) 0.428 -> 0.394, p(surprised) 0.554 -> 0.514; to it a wider mouth is nearer a smile),
# so emotional speech keeps its narrower mouth.
SPEECH_WIDENING = 0.3


@lru_cache(maxsize=1)
def speech_widening_shape() -> np.ndarray:
    """(478, 3) float32 canonical units: the mouth one unit wider (each corner half a unit out,
    level), the lips between and the skin around following (:func:`_lip_sideways_shape`)."""
    return _lip_sideways_shape(0.5, 0.0).astype(np.float32)


def speech_widening(weights: np.ndarray, intensity: float, amount: float | None = None) -> np.ndarray:
    """(T,) how much the mouth widens per unit of lip gap in each frame: ``amount`` (default
    ``SPEECH_WIDENING``) x the frame's neutral share, emotion ``weights`` (T, 8) at ``intensity``
    (an emotion at intensity 0.25 keeps three quarters of it)."""
    amount = SPEECH_WIDENING if amount is None else amount
    emotional = intensity * (1.0 - np.asarray(weights, np.float64)[:, EMOTIONS.index("neutral")])
    return amount * (1.0 - emotional)


def widen_with_opening(normalized: np.ndarray, amount: np.ndarray | float) -> np.ndarray:
    """(T, 478, 3) ``normalized`` (canonical units) with each frame's mouth widened by ``amount``
    (scalar or (T,), :func:`speech_widening`) x its inner-lip gap beyond ``REST_LIP_GAP``: real
    mouths widen as they open."""
    amount = np.broadcast_to(np.asarray(amount, np.float64), (len(normalized),))
    if not amount.any():
        return normalized
    gap = normalized[:, INNER_LIP_MID[1], 1] - normalized[:, INNER_LIP_MID[0], 1] - REST_LIP_GAP
    return normalized + (amount * np.clip(gap, 0.0, None))[:, None, None] * speech_widening_shape()


def assemble_cues(
    portrait: FaceCues,
    expression: np.ndarray,
    emotion: np.ndarray,
    head_offsets: np.ndarray,
    gaze_offsets: np.ndarray,
    closure: np.ndarray,
    fps: float,
    controls: CueControls,
    meta: dict,
    opening: np.ndarray | None = None,
    widening: np.ndarray | None = None,
) -> FaceCues:
    """Build a FaceCues sequence anchored on the portrait.

    expression : (T, 478, 3) canonical offsets added to the portrait's normalized shape (speech)
    emotion : (T, 478, 3) canonical offsets of the emotion; the lips are re-closed after adding
        them (speech, not emotion, opens the mouth)
    head_offsets : (T, 3) generated head angle offsets, degrees
    gaze_offsets : (T, 2) gaze relative to the camera, degrees (used with controls.gaze 'auto')
    closure : (T,) blink lid closure 0..1
    opening : (T, 478, 3) the emotion's opening shapes (:func:`emotion_opening`), added in
        proportion to each frame's lip gap (closed lips stay closed)
    widening : (T,) how much wider the mouth gets per unit of lip gap (:func:`speech_widening`)
    """
    n_frames = len(expression)
    base = portrait_rest_shape(portrait.normalized[0])
    ratio = expression_scale(base)
    rest = limit_eye_narrowing(base, closed_mouth(base[None] + emotion * ratio))
    normalized = rest + expression * ratio
    if opening is not None:
        gap = normalized[:, INNER_LIP_MID[1], 1] - normalized[:, INNER_LIP_MID[0], 1] - REST_LIP_GAP
        normalized = normalized + np.clip(gap, 0.0, None)[:, None, None] * opening
    if widening is not None:
        normalized = widen_with_opening(normalized, widening)
    lift_thin_lips(base, normalized)  # normalized is this function's own float64 array
    normalized = close_eyes(normalized, closure, reference=base)
    head = head_offsets if controls.pose_angles is None else np.asarray(controls.pose_angles, np.float64)[:n_frames]
    if len(head) < n_frames:  # a shorter reference pose holds its last value
        head = np.concatenate([head, np.repeat(head[-1:], n_frames - len(head), 0)])
    head = head * controls.pose_scale
    angles0 = rotation_to_angles(portrait.rotation[0])
    rotation = angles_to_rotation(angles0[None] + head)
    # Gaze relative to the head: the portrait's own gaze (usually at the camera), minus the head's
    # extra rotation (the eyes keep their target while the head moves), plus any shift.
    gaze0 = combined_gaze(portrait.gaze[0], portrait.aperture[0]).astype(np.float64)
    if controls.gaze == "auto":
        shift = gaze_offsets
    elif controls.gaze == "camera":
        shift = np.zeros((n_frames, 2))
    else:
        shift = np.broadcast_to(np.asarray(controls.gaze, np.float64), (n_frames, 2))
    gaze = gaze0[None] + shift - head[:, :2]
    normalized = place_iris(normalized, gaze)
    return FaceCues(
        normalized=normalized.astype(np.float32),
        scale=np.full(n_frames, portrait.scale[0], np.float32),
        rotation=rotation.astype(np.float32),
        translation=np.repeat(portrait.translation[:1], n_frames, 0).astype(np.float32),
        gaze=gaze_from_normalized(normalized),
        aperture=eye_aperture(normalized),
        valid=np.ones(n_frames, bool),
        identity=base.astype(np.float32),  # the closed-mouth rest shape the expression starts from
        fps=float(fps),
        image_size=portrait.image_size,
        meta=meta,
    )


def phonetic_cues(
    audio: np.ndarray,
    portrait: FaceCues,
    emotion: str | list[tuple[float, str]] = "neutral",
    intensity: float = 1.0,
    *,
    fps: float = DEFAULT_FPS,
    seed: int = 0,
    controls: CueControls | None = None,
    text: str | None = None,
    phones: list[Phone] | None = None,
    gaze_bins: GazeBins | None = None,
) -> FaceCues:
    """Speech + emotion -> facial cues anchored on the portrait, without a trained network.

    Parameters
    ----------
    audio : (N,) float32 mono at SAMPLE_RATE
    portrait : cues of the portrait (one frame is used: its identity, pose and gaze)
    emotion : an emotion name, or a schedule [(start seconds, name), ...] or "neutral@0,happy@2.5"
    intensity : 0..1 strength of the emotion's expression, pose and gaze offsets
    text : optional transcript; forces phone alignment to it (better timing)
    phones : precomputed phones (skips recognition)

    Returns
    -------
    FaceCues of ``n_video_frames(len(audio), fps)`` frames in the portrait's image space.
    """
    controls = controls or CueControls()
    intensity = check_intensity(intensity)
    audio = np.asarray(audio, dtype=np.float32)
    n_frames = n_video_frames(len(audio), fps)
    weights = emotion_weights(emotion if not isinstance(emotion, str) else parse_emotion_schedule(emotion), n_frames, fps)
    rng = np.random.default_rng(seed)
    if phones is None:
        phones = recognize_phones(audio, text=text)
    speech_gain, jaw_opening = emotion_mouth_dynamics(weights, intensity)
    lip_share = weights @ np.array([EMOTION_LIP_SHARE.get(name, 0.0) for name in EMOTIONS])
    mouth = mouth_offsets(audio, phones, n_frames, fps, controls.mouth_scale, speech_gain=speech_gain,
                          jaw_opening=jaw_opening, lip_share=lip_share, mouth_rest=controls.mouth_rest)
    emotion_offsets = emotion_expression(weights, intensity)
    gain = loudness_gain(audio, n_frames, fps)
    head = head_motion(n_frames, fps, weights, intensity, gain, rng)
    gaze = gaze_track(n_frames, fps, weights, intensity, rng, gaze_bins or GazeBins())
    rate = controls.blink_rate if controls.blink_rate is not None else default_blink_rate(weights)
    closure = blink_closure(n_frames, fps, rate, rng)
    meta = {
        "cue_model": "phonetic",
        "emotion": emotion if isinstance(emotion, str) else [[s, e] for s, e in emotion],
        "intensity": float(intensity),
        "seed": int(seed),
        "blink_rate": float(rate),
        "sample_rate": SAMPLE_RATE,
    }
    return assemble_cues(portrait, mouth, emotion_offsets, head, gaze, closure, fps, controls, meta,
                         opening=emotion_opening(weights, intensity), widening=speech_widening(weights, intensity))


def apply_controls(cues: FaceCues, portrait: FaceCues, controls: CueControls, *, seed: int = 0) -> FaceCues:
    """Apply the per-cue knobs to cues made by another model (the stage-1 network).

    Head motion is rescaled (or replaced) around the portrait's pose; gaze is replaced unless
    "auto"; with an explicit blink rate the model's blinks are removed (lids held at their median
    opening) and blinks at that rate are drawn instead.
    """
    n_frames = cues.n_frames
    angles0 = rotation_to_angles(portrait.rotation[0])
    head = rotation_to_angles(cues.rotation) - angles0[None]
    if controls.pose_angles is not None:
        head = np.asarray(controls.pose_angles, np.float64)[:n_frames]
        if len(head) < n_frames:
            head = np.concatenate([head, np.repeat(head[-1:], n_frames - len(head), 0)])
    head = head * controls.pose_scale
    normalized = cues.normalized.astype(np.float64).copy()
    if controls.blink_rate is not None:
        lids = list(RIGHT_UPPER_LID + RIGHT_LOWER_LID + LEFT_UPPER_LID + LEFT_LOWER_LID)
        normalized[:, lids] = np.median(normalized[:, lids], axis=0)
        rng = np.random.default_rng(seed)
        normalized = close_eyes(normalized, blink_closure(n_frames, cues.fps, controls.blink_rate, rng),
                                reference=portrait_rest_shape(portrait.normalized[0]))
    gaze0 = combined_gaze(portrait.gaze[0], portrait.aperture[0]).astype(np.float64)
    if controls.gaze == "auto":
        gaze = cues.gaze.astype(np.float64)
        old_head = rotation_to_angles(cues.rotation) - angles0[None]
        gaze = gaze + (old_head - head)[:, None, :2]  # keep the eyes' target when the head is rescaled
    elif controls.gaze == "camera":
        gaze = np.repeat((gaze0[None] - head[:, :2])[:, None], 2, axis=1)
    else:
        gaze = np.repeat((gaze0[None] + np.asarray(controls.gaze, np.float64) - head[:, :2])[:, None], 2, axis=1)
    normalized = place_iris(normalized, gaze)
    return FaceCues(
        normalized=normalized.astype(np.float32),
        scale=cues.scale,
        rotation=angles_to_rotation(angles0[None] + head).astype(np.float32),
        translation=cues.translation,
        gaze=gaze_from_normalized(normalized),
        aperture=eye_aperture(normalized),
        valid=cues.valid,
        identity=cues.identity,
        fps=cues.fps,
        image_size=cues.image_size,
        meta={**cues.meta, "controls": {"pose_scale": controls.pose_scale, "gaze": controls.gaze,
                                        "blink_rate": controls.blink_rate}},
    )
