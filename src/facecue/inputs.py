"""The rules of every user-facing value, in one place.

The CLI, the web UI, the batch runner and :func:`facecue.generate.generate` all check their
settings here, so a value is accepted (or refused, with the same one-line message) everywhere or
nowhere: emotion names and their aliases, emotion schedules, intensity, sampling temperature,
output size, frame rate, audio-length limit, head-motion / blink / mouth scales and gaze.

Every ``check_*`` / ``parse_*`` function returns the value in its canonical form (a float, a
lower-case emotion name, ...) or raises :class:`~facecue.errors.InputError` (exit code 2 in the
CLI). Nothing here loads a model or touches a file.
"""

from __future__ import annotations

import math

from .constants import EMOTIONS
from .errors import InputError

#: other spellings of the emotions (MEAD's file names, the usual nouns) -> the names in EMOTIONS
EMOTION_ALIASES = {
    "anger": "angry", "disgust": "disgusted", "fearful": "fear", "happiness": "happy", "sadness": "sad",
    "surprise": "surprised",
}

INTENSITY_RANGE = (0.0, 1.0)  # strength of the emotion; MEAD level n is n / 3
TEMPERATURE_RANGE = (0.0, 5.0)  # sampling temperature of the stage-1 network; 0 = the most likely cues
SIZE_RANGE = (64, 4096)  # px, output side (crop) or longest side (full frame)
FPS_RANGE = (1.0, 120.0)  # frames per second of generated video
POSE_SCALE_RANGE = (0.0, 5.0)  # head-motion amplitude; 0 = still head
BLINK_RATE_RANGE = (0.0, 120.0)  # blinks per minute
MOUTH_SCALE_RANGE = (0.0, 3.0)  # multiplier of mouth movement
MOUTH_REST_RANGE = (0.0, 0.15)  # lip gap held at rest, eye-corner distances (real talkers: 0 to ~0.05)
WRINKLES_RANGE = (0.0, 1.0)  # strength of the emotion's wrinkles and folds, x the calibrated (0: none)
GAZE_LIMITS = (40.0, 30.0)  # degrees: |yaw|, |pitch| the eyes can turn
DEFAULT_MAX_SECONDS = 900.0  # longer audio needs an explicit --max-seconds (a typo guard, not a limit)
MIN_PORTRAIT_SIDE = 32  # px: smaller images cannot hold a detectable face
DEFAULT_MAX_SIDE = 1024  # px: the default full-frame output is the portrait's size, its longest side capped here



def _number(value, what: str) -> float:
    """``value`` as a finite float; :class:`InputError` naming ``what`` otherwise."""
    if isinstance(value, bool):
        raise InputError(None, f"{what} must be a number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(None, f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise InputError(None, f"{what} must be a finite number, got {value!r}")
    return x


def _in_range(value, what: str, bounds: tuple[float, float], unit: str = "") -> float:
    x = _number(value, what)
    low, high = bounds
    if not low <= x <= high:
        raise InputError(None, f"{what} must be within {low:g}..{high:g}{unit}, got {value!r}")
    return x


# --- emotions ------------------------------------------------------------------------------


def emotion_name(name: str) -> str:
    """The canonical name (one of :data:`~facecue.constants.EMOTIONS`) of an emotion name or alias,
    case- and space-insensitive: ``" Sadness "`` -> ``"sad"``."""
    key = str(name).strip().lower()
    key = EMOTION_ALIASES.get(key, key)
    if key not in EMOTIONS:
        raise InputError(None, f"unknown emotion {str(name).strip()!r}; choose one of: {', '.join(EMOTIONS)}")
    return key


def emotion_id(name: str) -> int:
    """Index of an emotion name or alias in :data:`~facecue.constants.EMOTIONS`."""
    return EMOTIONS.index(emotion_name(name))


def parse_emotion_schedule(text: str | list | tuple) -> list[tuple[float, str]]:
    """An emotion or a schedule -> ``[(start seconds, canonical name), ...]`` sorted by time.

    ``"happy"``, ``"neutral@0,happy@2.5,sad@6"`` (changes at those seconds), or an already parsed
    list of ``(seconds, name)`` pairs. The first entry always starts at 0 (the first emotion holds
    until the first change).
    """
    if isinstance(text, (list, tuple)):
        items = [f"{name}@{start}" for start, name in text]
    else:
        items = [part.strip() for part in str(text).split(",") if part.strip()]
    if not items:
        raise InputError(None, "empty emotion; give a name or a schedule like 'neutral@0,happy@2.5'")
    schedule = []
    for item in items:
        name, at_sign, at = item.partition("@")
        try:
            canonical = emotion_name(name)
        except InputError as exc:
            raise InputError(None, f"bad emotion schedule entry {item!r}: {exc}" if at_sign or len(items) > 1
                             else str(exc)) from None
        if at_sign and not at.strip():
            raise InputError(None, f"bad emotion schedule entry {item!r}: give the seconds after '@'")
        try:
            start = float(at) if at_sign else 0.0
        except ValueError:
            raise InputError(None, f"bad emotion schedule entry {item!r}: the time after '@' must be seconds") from None
        if not math.isfinite(start) or start < 0:
            raise InputError(None, f"bad emotion schedule entry {item!r}: the time must be seconds >= 0")
        schedule.append((start, canonical))
    schedule.sort(key=lambda entry: entry[0])
    starts = [s for s, _ in schedule]
    if len(set(starts)) != len(starts):
        raise InputError(None, f"emotion schedule {', '.join(items)!r} changes twice at the same second")
    if schedule[0][0] > 0:
        schedule.insert(0, (0.0, schedule[0][1]))
    return schedule


def schedule_text(schedule: list[tuple[float, str]]) -> str:
    """A parsed schedule written back as text: one emotion name, or ``"neutral@0,happy@2.5"``."""
    if len(schedule) == 1:
        return schedule[0][1]
    return ",".join(f"{name}@{start:g}" for start, name in schedule)


# --- numbers -------------------------------------------------------------------------------


def check_intensity(value) -> float:
    """Emotion intensity in 0..1."""
    return _in_range(value, "intensity", INTENSITY_RANGE)


def check_temperature(value) -> float:
    """Sampling temperature of the stage-1 network, 0..5 (0: the most likely gaze and pose)."""
    return _in_range(value, "temperature", TEMPERATURE_RANGE)


def check_size(value) -> int | None:
    """Output size in px (``None``: the default), a whole number within :data:`SIZE_RANGE`."""
    if value is None:
        return None
    x = _number(value, "size")
    if x != int(x):
        raise InputError(None, f"size must be a whole number of pixels, got {value!r}")
    return int(_in_range(int(x), "size", SIZE_RANGE, " px"))


def check_fps(value) -> float:
    """Frame rate of generated video, within :data:`FPS_RANGE`."""
    return _in_range(value, "fps", FPS_RANGE)


def check_max_seconds(value) -> float:
    """The audio-length limit in seconds (``None``: :data:`DEFAULT_MAX_SECONDS`)."""
    if value is None:
        return DEFAULT_MAX_SECONDS
    x = _number(value, "max seconds")
    if x <= 0:
        raise InputError(None, f"max seconds must be positive, got {value!r}")
    return x


def check_pose_scale(value) -> float:
    return _in_range(value, "pose scale", POSE_SCALE_RANGE)


def check_blink_rate(value) -> float | None:
    """Blinks per minute (``None``: the emotion's typical rate)."""
    if value is None:
        return None
    return _in_range(value, "blink rate", BLINK_RATE_RANGE, " per minute")


def check_mouth_scale(value) -> float:
    return _in_range(value, "mouth scale", MOUTH_SCALE_RANGE)


def check_wrinkles(value) -> float:
    """Strength of the emotion's wrinkles and folds, 0..1 (1: as calibrated on real MEAD faces)."""
    return _in_range(value, "wrinkles", WRINKLES_RANGE)


def check_mouth_rest(value) -> float:
    return _in_range(value, "mouth rest", MOUTH_REST_RANGE, " eye-corner distances")


def parse_gaze(value: str | tuple | list) -> str | tuple[float, float]:
    """``"auto"``, ``"camera"`` or ``"yaw,pitch"`` degrees (or a pair) -> the CueControls gaze value."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise InputError(None, f"gaze must be 'auto', 'camera' or 'yaw,pitch' in degrees, got {value!r}")
        yaw, pitch = (_number(v, "gaze") for v in value)
    else:
        text = str(value).strip().lower()
        if text in ("auto", "camera"):
            return text
        try:
            yaw, pitch = (float(p) for p in text.split(","))
        except ValueError:
            raise InputError(None, f"gaze must be 'auto', 'camera' or 'yaw,pitch' in degrees, got {value!r}") from None
    max_yaw, max_pitch = GAZE_LIMITS
    if not (math.isfinite(yaw) and math.isfinite(pitch)) or abs(yaw) > max_yaw or abs(pitch) > max_pitch:
        raise InputError(None, f"gaze {yaw:g},{pitch:g} is outside the eye's range (|yaw| <= {max_yaw:g}, "
                         f"|pitch| <= {max_pitch:g} degrees)")
    return (yaw, pitch)


def check_portrait_dimensions(path, width: int, height: int) -> tuple[int, int]:
    """A portrait of ``width`` x ``height`` px is large enough to hold a face (the upper limit is
    :data:`facecue.io.MAX_IMAGE_PIXELS`, checked when the header is read)."""
    if min(width, height) < MIN_PORTRAIT_SIDE:
        raise InputError(path, f"image is {width}x{height} px, too small for a face (at least {MIN_PORTRAIT_SIDE} px a side)")
    return width, height


def default_output_size(image_size: tuple[int, int], size: int | None, full: bool) -> int | None:
    """The longest side (full frame) the output gets when ``size`` is not given: the portrait's
    own, capped at :data:`DEFAULT_MAX_SIDE`. ``None`` means "the renderer's default" (the
    portrait's size for the full frame, the standard crop for ``full=False``)."""
    if size is not None or not full:
        return size
    return DEFAULT_MAX_SIDE if max(image_size) > DEFAULT_MAX_SIDE else None


__all__ = [
    "DEFAULT_MAX_SECONDS", "DEFAULT_MAX_SIDE", "EMOTION_ALIASES", "MIN_PORTRAIT_SIDE", "check_blink_rate",
    "check_fps", "check_intensity", "check_max_seconds", "check_mouth_rest", "check_mouth_scale",
    "check_portrait_dimensions", "check_pose_scale", "check_size",
    "check_temperature", "default_output_size", "emotion_id", "emotion_name", "parse_emotion_schedule", "parse_gaze",
    "schedule_text",
]
