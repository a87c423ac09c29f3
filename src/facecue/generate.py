"""The end-to-end job: portrait + speech + emotion -> talking-face MP4 (and its cues).

``generate()`` validates every input before loading any model, then runs the stages with a
progress bar each: landmarks of the portrait -> speech-to-cues (stage 1) -> controls -> renderer
(stage 2) streaming into the H.264/AAC writer. Memory stays bounded in the audio length: cues are
a few KB per frame and frames are rendered and encoded one at a time.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .constants import DEFAULT_FPS, SAMPLE_RATE
from .errors import InputError

log = logging.getLogger(__name__)

CUE_MODELS = ("auto", "network", "phonetic")
NETWORK_MOUTH_GAIN = 1.5  # the network regresses toward the mean lip shape: restore the teacher's amplitude
DEFAULT_MAX_SECONDS = 900.0  # longer audio needs an explicit --max-seconds (a typo guard, not a limit)


@dataclass(frozen=True)
class GenerateConfig:
    """Everything that decides the output of :func:`generate`; saved next to every output."""

    emotion: str = "neutral"  # a name, or a schedule "neutral@0,happy@2.5,sad@6" (seconds)
    intensity: float = 1.0  # 0..1 strength of the emotion
    cue_model: str = "auto"  # "network" (stage-1 checkpoint), "phonetic" (no network); auto = phonetic unless a checkpoint is given
    checkpoint: str | None = None  # a stage-1 checkpoint instead of the bundled one
    seed: int = 0
    temperature: float = 1.0  # sampling temperature of the network's gaze and pose
    pose_scale: float = 1.0  # head-motion amplitude (0 = still head)
    pose_from: str | None = None  # video whose head motion is copied
    gaze: str = "auto"  # "auto", "camera" or "yaw,pitch" degrees
    blink_rate: float | None = None  # per minute; None = the emotion's typical rate
    renderer: str = "mesh"
    renderer_checkpoint: str | None = None  # weights of a trained renderer (the neural one needs them)
    device: str = "auto"  # where the neural renderer runs: auto (a GPU if torch sees one), cpu, cuda
    size: int | None = None  # output height/width in px (crop) or longest side (full); None = portrait's
    fps: float = DEFAULT_FPS
    full: bool = True  # paste back into the whole portrait; False = aligned square face crop
    max_seconds: float | None = None  # refuse longer audio (None = DEFAULT_MAX_SECONDS)
    text: str | None = None  # transcript of the speech (sharper phone timing for the phonetic model)

    def validate(self) -> GenerateConfig:
        from .phonetic import CueControls, parse_emotion_schedule

        parse_emotion_schedule(self.emotion)
        if not 0 <= self.intensity <= 1:
            raise InputError(None, f"intensity must be within 0..1, got {self.intensity}")
        if self.cue_model not in CUE_MODELS:
            raise InputError(None, f"unknown cue model {self.cue_model!r}; choose one of: {', '.join(CUE_MODELS)}")
        if not 1 <= self.fps <= 120:
            raise InputError(None, f"fps must be within 1..120, got {self.fps}")
        if self.size is not None and not 64 <= self.size <= 4096:
            raise InputError(None, f"size must be within 64..4096 px, got {self.size}")
        if not 0 < self.temperature <= 5:
            raise InputError(None, f"temperature must be within 0..5, got {self.temperature}")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise InputError(None, f"max seconds must be positive, got {self.max_seconds}")
        CueControls(pose_scale=self.pose_scale, gaze=parse_gaze(self.gaze), blink_rate=self.blink_rate)
        from .render import renderer_options

        renderer_options(self.renderer, self.renderer_checkpoint, self.device)  # name, weights, device
        return self

    def to_dict(self) -> dict:
        """JSON-able view (paths as strings)."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items()}


def parse_gaze(text: str | tuple) -> str | tuple[float, float]:
    """"auto", "camera" or "yaw,pitch" (degrees) -> the CueControls gaze value."""
    if isinstance(text, tuple):
        return (float(text[0]), float(text[1]))
    value = str(text).strip().lower()
    if value in ("auto", "camera"):
        return value
    parts = value.split(",")
    try:
        yaw, pitch = (float(p) for p in parts)
    except ValueError:
        raise InputError(None, f"gaze must be 'auto', 'camera' or 'yaw,pitch' in degrees, got {text!r}") from None
    if abs(yaw) > 40 or abs(pitch) > 30:
        raise InputError(None, f"gaze {yaw},{pitch} is outside the eye's range (|yaw| <= 40, |pitch| <= 30 degrees)")
    return (yaw, pitch)


@dataclass
class GenerateResult:
    path: Path  # the MP4 written
    cues: object  # the FaceCues that drove it
    n_frames: int
    seconds: float  # media duration
    timings: dict[str, float] = field(default_factory=dict)  # compute seconds per stage

    @property
    def real_time_factor(self) -> float:
        return sum(self.timings.values()) / max(self.seconds, 1e-9)

    def summary(self) -> str:
        stages = ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items())
        return (
            f"{self.path}: {self.n_frames} frames, {self.seconds:.2f} s of video, "
            f"{sum(self.timings.values()):.1f} s compute (real-time factor {self.real_time_factor:.2f}; {stages})"
        )


def bundled_checkpoint() -> Path | None:
    """The stage-1 checkpoint shipped in the package, if this build has one."""
    from importlib import resources

    path = Path(str(resources.files("facecue") / "assets" / "stage1.pt"))
    return path if path.is_file() else None


def resolve_cue_model(config: GenerateConfig) -> tuple[str, Path | None]:
    """("network" | "phonetic", checkpoint). ``auto`` is the phonetic model unless a checkpoint is
    given: on held-out real speech it lip-syncs better than the bundled network (docs/MODEL_CARD.md)."""
    if config.cue_model == "phonetic" or (config.cue_model == "auto" and not config.checkpoint):
        return "phonetic", None
    checkpoint = Path(config.checkpoint) if config.checkpoint else bundled_checkpoint()
    if checkpoint is None:
        raise InputError(None, "no stage-1 checkpoint is bundled with this build; pass --checkpoint or use --cue-model phonetic")
    if not checkpoint.is_file():
        raise InputError(checkpoint, "checkpoint not found")
    return "network", checkpoint


def validate_inputs(portrait, audio, output, config: GenerateConfig) -> tuple[Path, Path, Path]:
    """Check files, sizes and options before anything heavy runs; raises FacecueError subclasses."""
    from . import io

    portrait = Path(portrait)
    audio = Path(audio)
    if io.media_kind(portrait) != "image":
        raise InputError(portrait, "the portrait must be an image (png, jpg, ...)")
    if io.media_kind(audio) == "image":
        raise InputError(audio, "is an image; give speech audio (wav, mp3, m4a, flac, ogg) or a video with sound")
    output = io.check_output_path(output, (".mp4",))
    config.validate()
    limit = config.max_seconds or DEFAULT_MAX_SECONDS
    duration = io.audio_duration(audio)
    if duration > limit:
        raise InputError(
            audio,
            f"audio is {duration:.0f} s long, over the {limit:.0f} s limit; pass --max-seconds {int(np.ceil(duration))} to render it all",
        )
    if duration * config.fps < 1:
        raise InputError(audio, f"audio is too short ({duration * 1000:.0f} ms) for one video frame")
    if config.pose_from is not None and io.media_kind(config.pose_from) != "video":
        raise InputError(config.pose_from, "--pose-from needs a video of a face")
    resolve_cue_model(config)
    return portrait, audio, output


def network_portrait(portrait_cues):
    """The portrait as the network's anchor: mouth closed and its own smile taken off, as the
    identities of the network's training data were (facecue.phonetic's rest shape)."""
    from .cues import FaceCues
    from .phonetic import closed_mouth, neutralize_smile

    rest = neutralize_smile(closed_mouth(portrait_cues.normalized[0])).astype(np.float32)
    return dataclasses.replace(portrait_cues, normalized=rest[None], identity=rest)


MAX_SMILE_TEXTURE_REMOVED = 0.8  # of the real happy shading change: a smile's folds are softened, not inverted


def portrait_smile_texture(portrait_cues) -> float:
    """How much of the happy expression's shading (nasolabial folds, cheeks) to take off a smiling
    portrait, in units of MEAD level 3: as much as its smile (its geometry is neutralized too)."""
    from .phonetic import closed_mouth, smile_amount

    return min(smile_amount(closed_mouth(portrait_cues.normalized[0])), MAX_SMILE_TEXTURE_REMOVED)


def resample_cues(cues, fps: float, n_frames: int):
    """Cues at another frame rate (linear in time; rotations through their angles)."""
    from .cues import FaceCues, angles_to_rotation, eye_aperture, gaze_from_normalized, rotation_to_angles

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


def scale_mouth(cues, gain: float):
    """Scale the lower face's movement away from the rest shape (``cues.identity``) by ``gain``."""
    if gain == 1.0:
        return cues
    from .phonetic import load_priors

    weight = load_priors().lower_face_weight.astype(np.float64)[None, :, None]
    rest = cues.identity.astype(np.float64)[None]
    normalized = rest + (cues.normalized - rest) * (1.0 + (gain - 1.0) * weight)
    return dataclasses.replace(cues, normalized=normalized.astype(np.float32))


def network_cues(audio_samples, portrait_cues, config: GenerateConfig, checkpoint: Path):
    """The stage-1 network's cues; an emotion schedule runs the network once per emotion and
    blends the results frame by frame with the schedule's weights."""
    import torch

    from .audio import n_video_frames
    from .constants import EMOTIONS
    from .phonetic import emotion_weights, parse_emotion_schedule
    from .stage1 import speech_to_cues

    schedule = parse_emotion_schedule(config.emotion)
    anchor = network_portrait(portrait_cues)
    names = sorted({name for _, name in schedule}, key=EMOTIONS.index)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # frame-by-frame decoding of a small model: extra threads only add overhead
    try:
        runs = {name: speech_to_cues(audio_samples, name, config.intensity, anchor, seed=config.seed,
                                     checkpoint=checkpoint, temperature=config.temperature) for name in names}
    finally:
        torch.set_num_threads(threads)
    first = runs[names[0]]
    if len(names) > 1:
        weights = emotion_weights(schedule, first.n_frames, first.fps)[:, [EMOTIONS.index(n) for n in names]]
        weights = weights / weights.sum(axis=1, keepdims=True)
        blend = lambda field: sum(w.reshape(-1, *([1] * (getattr(first, field).ndim - 1))) * getattr(runs[n], field)  # noqa: E731
                                  for n, w in zip(names, weights.T))
        from .cues import FaceCues, angles_to_rotation, eye_aperture, gaze_from_normalized, rotation_to_angles

        normalized = blend("normalized")
        angles = sum(w[:, None] * rotation_to_angles(runs[n].rotation) for n, w in zip(names, weights.T))
        first = FaceCues(normalized=normalized.astype(np.float32), scale=blend("scale").astype(np.float32),
                         rotation=angles_to_rotation(angles).astype(np.float32),
                         translation=blend("translation").astype(np.float32), gaze=gaze_from_normalized(normalized),
                         aperture=eye_aperture(normalized), valid=first.valid, identity=first.identity, fps=first.fps,
                         image_size=first.image_size, meta={**first.meta, "emotion": config.emotion})
    return resample_cues(first, config.fps, n_video_frames(len(audio_samples), config.fps))


def speech_cues(audio_samples, portrait_cues, config: GenerateConfig, controls, cue_model: str, checkpoint: Path | None):
    """Stage 1 with the chosen cue model, then the per-cue controls."""
    from .phonetic import apply_controls, parse_emotion_schedule, phonetic_cues

    if cue_model == "phonetic":
        return phonetic_cues(
            audio_samples, portrait_cues, parse_emotion_schedule(config.emotion), config.intensity, fps=config.fps,
            seed=config.seed, controls=controls, text=config.text,
        )
    cues = network_cues(audio_samples, portrait_cues, config, checkpoint)
    cues = scale_mouth(cues, NETWORK_MOUTH_GAIN * controls.mouth_scale)
    if controls.blink_rate is None:
        # the network regresses eyelids and averages blinks away: draw them at the emotion's rate
        from .phonetic import default_blink_rate, emotion_weights

        weights = emotion_weights(parse_emotion_schedule(config.emotion), cues.n_frames, cues.fps)
        controls = dataclasses.replace(controls, blink_rate=default_blink_rate(weights))
    return apply_controls(cues, portrait_cues, controls, seed=config.seed)


def generate(
    portrait: str | Path,
    audio: str | Path,
    output: str | Path,
    config: GenerateConfig | None = None,
    *,
    save_cues: str | Path | None = None,
    preview_landmarks: str | Path | None = None,
    progress: bool = False,
    **overrides,
) -> GenerateResult:
    """Portrait + speech + emotion -> talking-face MP4 with the speech muxed in.

    Parameters
    ----------
    portrait : image file with one face (the largest is used if several)
    audio : speech (wav/mp3/m4a/flac/ogg, or a video's audio track)
    output : .mp4 to write (atomically)
    config : a GenerateConfig; keyword ``overrides`` replace its fields (e.g. ``emotion="happy"``)
    save_cues : also write the cue sequence (.npz)
    preview_landmarks : also write a video of the relocated landmarks over the portrait (.mp4)

    Returns
    -------
    GenerateResult with the path, the cues and per-stage compute times.
    """
    from . import io
    from .cues import FaceCues, extract_cues
    from .landmarks import detect_landmarks
    from .phonetic import CueControls

    config = dataclasses.replace(config or GenerateConfig(), **overrides)
    portrait, audio, output = validate_inputs(portrait, audio, output, config)
    if save_cues is not None:
        io.check_output_path(save_cues, (".npz",))
    if preview_landmarks is not None:
        io.check_output_path(preview_landmarks, (".mp4",))
    timings: dict[str, float] = {}

    start = time.perf_counter()
    image = io.read_image(portrait)
    portrait_cues = FaceCues.from_landmarks(detect_landmarks(image, source=portrait)[None], config.fps,
                                            (image.shape[1], image.shape[0]), meta={"source": str(portrait)})
    samples = io.read_audio(audio)
    from .audio import is_silent, n_video_frames

    if is_silent(samples):
        raise InputError(audio, "the audio is silent (nothing louder than -50 dBFS); give speech")
    pose_angles = None
    if config.pose_from is not None:
        reference = extract_cues(config.pose_from, fps=config.fps, progress=progress)
        pose_angles = reference.pose_angles - reference.pose_angles[:1]
    timings["landmarks"] = time.perf_counter() - start

    start = time.perf_counter()
    cue_model, checkpoint = resolve_cue_model(config)
    controls = CueControls(pose_scale=config.pose_scale, pose_angles=pose_angles, gaze=parse_gaze(config.gaze),
                           blink_rate=config.blink_rate)
    cues = speech_cues(samples, portrait_cues, config, controls, cue_model, checkpoint)
    n_frames = n_video_frames(len(samples), config.fps)
    assert cues.n_frames == n_frames, (cues.n_frames, n_frames)
    cues = dataclasses.replace(cues, meta={**cues.meta, "config": config.to_dict(), "portrait": str(portrait),
                                             "audio": str(audio), "cue_model": cue_model})
    timings["cues"] = time.perf_counter() - start

    start = time.perf_counter()
    from .render import render, renderer_options

    options = renderer_options(config.renderer, config.renderer_checkpoint, config.device)
    from .constants import EMOTIONS
    from .phonetic import emotion_weights, parse_emotion_schedule

    expression = emotion_weights(parse_emotion_schedule(config.emotion), n_frames, config.fps) * config.intensity
    expression[:, EMOTIONS.index("happy")] -= portrait_smile_texture(portrait_cues)
    frames = render(image, portrait_cues.landmarks()[0], cues.landmarks(), renderer=config.renderer,
                    output_size=config.size, full=config.full, progress=progress, expression=expression, **options)
    with io.VideoWriter(output, config.fps, audio=samples, audio_sample_rate=SAMPLE_RATE) as writer:
        for frame in frames:
            writer.write(frame)
    timings["render+encode"] = time.perf_counter() - start

    if save_cues is not None:
        cues.save(save_cues)
    if preview_landmarks is not None:
        from .cli import write_preview

        write_preview(portrait, cues, Path(preview_landmarks), audio=samples, progress=progress)
    config_path = output.with_suffix(".json")
    with io.atomic_path(config_path) as tmp:
        tmp.write_text(json.dumps({"facecue_config": config.to_dict(), "cue_model": cue_model,
                                   "checkpoint": None if checkpoint is None else str(checkpoint)}, indent=2))
    return GenerateResult(path=output, cues=cues, n_frames=n_frames, seconds=n_frames / config.fps, timings=timings)
