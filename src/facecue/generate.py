"""The end-to-end job: portrait + speech + emotion -> talking-face MP4 (and its cues).

``generate()`` validates every input before loading any model, then runs the stages with a
progress bar each: landmarks of the portrait -> speech-to-cues (stage 1) -> controls -> renderer
(stage 2) streaming into the H.264/AAC writer. Memory stays bounded in the audio length: cues are
a few KB per frame, and frames are rendered a few at a time (by worker processes, one per core,
while this process encodes them: :mod:`facecue.parallel`) and encoded one at a time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .assets import bundled_checkpoint  # noqa: F401  (re-exported: facecue.generate.bundled_checkpoint)
from .constants import DEFAULT_FPS, SAMPLE_RATE
from .errors import InputError, OutputError
from .inputs import DEFAULT_MAX_SECONDS, parse_gaze  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

CUE_MODELS = ("auto", "network", "phonetic")


@dataclass(frozen=True)
class GenerateConfig:
    """Everything that decides the output of :func:`generate`; saved next to every output."""

    emotion: str = "neutral"  # a name, or a schedule "neutral@0,happy@2.5,sad@6" (seconds)
    intensity: float = 1.0  # 0..1 strength of the emotion
    wrinkles: float = 1.0  # 0..1 strength of the emotion's wrinkles and folds (mesh renderer); 0: its shape only
    cue_model: str = "auto"  # "network" (stage-1 checkpoint), "phonetic" (no network); auto = phonetic unless a checkpoint is given
    checkpoint: str | None = None  # a stage-1 checkpoint instead of the bundled one
    seed: int = 0
    temperature: float = 1.0  # sampling temperature of the network's gaze and pose (0: the most likely)
    pose_scale: float = 1.0  # head-motion amplitude (0 = still head)
    mouth_scale: float = 1.0  # mouth-movement amplitude while speaking (real speakers differ ~2.5x)
    mouth_rest: float = 0.0  # lip gap held between words and in pauses, eye-corner distances (0 = closed)
    mouth_from: str | None = None  # video of the person talking: mouth scale and rest fitted to match their lips
    pose_from: str | None = None  # video whose head motion is copied
    gaze: str = "auto"  # "auto", "camera" or "yaw,pitch" degrees
    blink_rate: float | None = None  # per minute; None = the emotion's typical rate
    renderer: str = "mesh"
    renderer_checkpoint: str | None = None  # weights of a trained renderer (the neural one needs them)
    device: str = "auto"  # where the neural renderer runs: auto (a GPU if torch sees one), cpu, cuda
    size: int | None = None  # output height/width in px (crop) or longest side (full); None = portrait's, capped at 1024
    fps: float = DEFAULT_FPS
    full: bool = True  # paste back into the whole portrait; False = aligned square face crop
    max_seconds: float | None = None  # refuse longer audio (None = DEFAULT_MAX_SECONDS)
    text: str | None = None  # transcript of the speech (sharper phone timing for the phonetic model)

    def validate(self) -> GenerateConfig:
        """Check every setting with the shared rules of :mod:`facecue.inputs`; raises InputError."""
        from . import inputs

        inputs.parse_emotion_schedule(self.emotion)
        inputs.check_intensity(self.intensity)
        inputs.check_wrinkles(self.wrinkles)
        if self.cue_model not in CUE_MODELS:
            raise InputError(None, f"unknown cue model {self.cue_model!r}; choose one of: {', '.join(CUE_MODELS)}")
        inputs.check_fps(self.fps)
        inputs.check_size(self.size)
        inputs.check_temperature(self.temperature)
        inputs.check_max_seconds(self.max_seconds)
        inputs.check_pose_scale(self.pose_scale)
        inputs.check_mouth_scale(self.mouth_scale)
        inputs.check_mouth_rest(self.mouth_rest)
        if self.mouth_from is not None and (self.mouth_scale != 1.0 or self.mouth_rest != 0.0):
            raise InputError(None, "--mouth-from sets the mouth scale and rest itself; leave --mouth-scale and "
                             "--mouth-rest at their defaults")
        inputs.check_blink_rate(self.blink_rate)
        inputs.parse_gaze(self.gaze)
        from .render import renderer_options

        renderer_options(self.renderer, self.renderer_checkpoint, self.device)  # name, weights, device
        return self

    def to_dict(self) -> dict:
        """JSON-able view (paths as strings)."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items()}


@dataclass
class GenerateResult:
    path: Path  # the MP4 written
    cues: object  # the FaceCues that drove it
    n_frames: int
    seconds: float  # media duration
    timings: dict[str, float] = field(default_factory=dict)  # compute seconds per stage
    notes: list[str] = field(default_factory=list)  # what the user should know (e.g. the output size was capped)

    @property
    def real_time_factor(self) -> float:
        return sum(self.timings.values()) / max(self.seconds, 1e-9)

    def summary(self) -> str:
        stages = ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items())
        return (
            f"{self.path}: {self.n_frames} frames, {self.seconds:.2f} s of video, "
            f"{sum(self.timings.values()):.1f} s compute (real-time factor {self.real_time_factor:.2f}; {stages})"
            + "".join(f"; {note}" for note in self.notes)
        )


def resolve_cue_model(config: GenerateConfig) -> tuple[str, Path | None]:
    """("network" | "phonetic", checkpoint). ``auto`` is the phonetic model unless a checkpoint is
    given: on held-out real speech it lip-syncs better than the bundled network (docs/MODEL_CARD.md)."""
    if config.cue_model == "phonetic" or (config.cue_model == "auto" and not config.checkpoint):
        return "phonetic", None
    from .stage1 import stage1_checkpoint

    return "network", stage1_checkpoint(config.checkpoint)


def sidecar_path(output: str | Path) -> Path:
    """Where the settings of ``output`` are saved: the same name with ``.json``."""
    return Path(output).with_suffix(".json")


def is_facecue_sidecar(path: Path) -> bool:
    """Whether ``path`` is a settings file facecue wrote (so it may be replaced)."""
    try:
        if path.stat().st_size > 1_000_000:
            return False
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and "facecue_config" in data


def check_sidecar(output: Path) -> Path:
    """The settings file of ``output``; :class:`OutputError` when a file of that name exists and
    facecue did not write it (it is never overwritten)."""
    sidecar = sidecar_path(output)
    if sidecar.is_dir() or (sidecar.exists() and not is_facecue_sidecar(sidecar)):
        raise OutputError(sidecar, f"exists and is not facecue's settings file (it would hold the settings of "
                          f"{output.name}); move it or choose another output name")
    return sidecar


def validate_inputs(portrait, audio, output, config: GenerateConfig) -> tuple[Path, Path, Path]:
    """Check files, sizes and options before anything heavy runs; raises FacecueError subclasses.

    The portrait's header (not its pixels) is read, the audio's duration is taken from its
    container or by decoding at most up to the limit, and a stage-1 checkpoint is loaded (a wrong,
    corrupt or malicious one is refused here)."""
    from . import io

    portrait = Path(portrait)
    audio = Path(audio)
    if io.media_kind(portrait) != "image":
        raise InputError(portrait, "the portrait must be an image (png, jpg, ...)")
    from .inputs import check_portrait_dimensions

    check_portrait_dimensions(portrait, *io.image_size(portrait))  # a readable image, neither huge nor tiny
    if io.media_kind(audio) == "image":
        raise InputError(audio, "is an image; give speech audio (wav, mp3, m4a, flac, ogg) or a video with sound")
    output = io.check_output_path(output, (".mp4",))
    check_sidecar(output)
    config.validate()
    from .inputs import check_max_seconds

    limit = check_max_seconds(config.max_seconds)
    duration = io.audio_duration(audio, limit=limit)
    if duration > limit:
        raise InputError(
            audio,
            f"audio is {duration:.0f} s long, over the {limit:.0f} s limit; pass --max-seconds {int(np.ceil(duration))} to render it all",
        )
    if duration * config.fps < 1:
        raise InputError(audio, f"audio is too short ({duration * 1000:.0f} ms) for one video frame")
    if config.pose_from is not None and io.media_kind(config.pose_from) != "video":
        raise InputError(config.pose_from, "--pose-from needs a video of a face")
    if config.mouth_from is not None and io.media_kind(config.mouth_from) != "video":
        raise InputError(config.mouth_from, "--mouth-from needs a video of the person talking")
    cue_model, checkpoint = resolve_cue_model(config)
    if cue_model == "network":
        from .stage1 import check_stage1_checkpoint

        check_stage1_checkpoint(checkpoint)
    return portrait, audio, output


def working_portrait(image: np.ndarray, config: GenerateConfig) -> tuple[np.ndarray, int | None, list[str]]:
    """The portrait the job works on, the renderer's output size and notes for the user.

    A full-frame output is as large as the portrait, its longest side capped at
    :data:`facecue.inputs.DEFAULT_MAX_SIDE` unless ``size`` is given; the portrait is scaled
    down to the output size first, so that landmarks, cues and rendering run at that size."""
    import cv2

    from .inputs import default_output_size

    height, width = image.shape[:2]
    size = default_output_size((width, height), config.size, config.full)
    notes = []
    if config.size is None and size is not None:
        notes.append(f"output capped at {size} px (the portrait is {width}x{height}; pass --size for another size)")
    if config.full and size is not None and max(width, height) > size:
        factor = size / max(width, height)
        new_size = (max(1, round(width * factor)), max(1, round(height * factor)))
        image = cv2.resize(image, new_size, interpolation=cv2.INTER_AREA)
        size = None  # the portrait now has the output size
    return image, size, notes


def smiling_portrait_note(normalized: np.ndarray, emotion: str) -> str | None:
    """What to tell the user when a broadly smiling portrait (``normalized`` (478, 3) canonical
    units; :data:`facecue.phonetic.BROAD_SMILE`) is asked for another emotion than happiness
    (``emotion``: a name or a schedule); None otherwise. Its smile comes off the mouth and eyes,
    but the creases and raised cheeks in its pixels stay."""
    from .inputs import parse_emotion_schedule
    from .phonetic import BROAD_SMILE, portrait_smile

    others = list(dict.fromkeys(name for _, name in parse_emotion_schedule(emotion) if name != "happy"))
    if not others or portrait_smile(normalized) < BROAD_SMILE:
        return None
    return (f"the portrait smiles broadly: its smile comes off the mouth and eyes, but its creases and raised cheeks "
            f"stay, so {', '.join(others)} may still look partly happy (a portrait with a neutral expression shows "
            f"other emotions more clearly)")


# The output enlarges the portrait's pixels more than this: it looks soft, and the user is told.
# The 512 px close-ups of 256 px portraits (1.7-1.9x, docs/expressiveness/closeup_512.png) still
# look sharp enough; a 64 px portrait's 256 px crop (11.5x) is a blur.
SOFT_ENLARGEMENT = 3.0
# A full-frame output whose face is smaller than this between the outer eye corners draws its
# mouth and eyes with a few pixels (a face in a group photograph): the user is pointed to --crop.
# Below it MediaPipe's landmarks also drift: 1.5-2.2 % of that distance at 32 px, 2-3 % at 24 px
# (11 portraits scaled down, against their full-size fit).
SMALL_OUTPUT_FACE = 32.0


def face_scale_note(image_size: tuple[int, int], landmarks: np.ndarray, output_size, full: bool) -> str | None:
    """What to tell the user when the output enlarges the portrait's pixels more than
    :data:`SOFT_ENLARGEMENT` times (a small face crop, or ``--size`` beyond a small portrait), or
    when a full-frame output's face is under :data:`SMALL_OUTPUT_FACE` px between the eye corners;
    None otherwise. ``image_size`` (W, H) and ``landmarks`` (478, 3) pixels of the working
    portrait, ``output_size`` and ``full`` as :func:`facecue.render.output_transform` takes them."""
    from .landmarks import eye_corner_distance
    from .render import output_transform

    matrix, out = output_transform(image_size, landmarks, output_size, full=full)
    enlargement = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    eyes = eye_corner_distance(landmarks)
    if enlargement > SOFT_ENLARGEMENT:
        what = (f"the {out[0]} px face crop enlarges the portrait's face ({eyes:.0f} px between the outer eye "
                "corners)" if not full
                else f"the {out[0]}x{out[1]} output enlarges the {image_size[0]}x{image_size[1]} portrait")
        return f"{what} {enlargement:.1f}x, so it will look soft (a larger portrait or a smaller --size keeps it sharp)"
    if full and eyes * enlargement < SMALL_OUTPUT_FACE:
        return (f"the face is small in the {out[0]}x{out[1]} output ({eyes * enlargement:.0f} px between the outer "
                "eye corners), so its mouth and eyes get few pixels (--crop makes a video of the face)")
    return None


def cue_audio(samples: np.ndarray) -> np.ndarray:
    """The audio the cue models listen to: silent or near-silent audio (nothing louder than
    -50 dBFS, :func:`facecue.audio.is_silent`) is digital silence, so that the face listens
    (mouth closed; blinks, gaze shifts and slow head motion go on) instead of mouthing noise."""
    from .audio import is_silent

    return np.zeros_like(samples) if is_silent(samples) else samples


def speech_cues(audio_samples, portrait_cues, config: GenerateConfig, controls, cue_model: str, checkpoint: Path | None,
                *, progress: bool = False, phone_helpers: int | None = 0, recognition=None, network_runs=None):
    """Stage 1 with the chosen cue model, then the per-cue controls. ``phone_helpers``: processes
    that decode phones beside this one (:func:`facecue.audio.recognize_phones`' ``helpers``);
    ``recognition``: a :class:`facecue.audio.PhoneRecognition` of ``audio_samples`` already under
    way (the phonetic model; it replaces ``phone_helpers``); ``network_runs``: the network's own
    cues of these inputs, made before (:func:`facecue.stage1.network_runs`; not run again)."""
    from .inputs import parse_emotion_schedule

    schedule = parse_emotion_schedule(config.emotion)
    if cue_model == "phonetic":
        from .audio import recognize_phones
        from .phonetic import phonetic_cues

        if recognition is not None:
            phones = recognition.result()
        else:
            phones = recognize_phones(audio_samples, text=config.text, progress=progress, helpers=phone_helpers)
        return phonetic_cues(audio_samples, portrait_cues, schedule, config.intensity, fps=config.fps,
                             seed=config.seed, controls=controls, text=config.text, phones=phones)
    from .stage1 import network_cues

    phones = None
    if controls.mouth_rest:
        from .audio import recognize_phones

        phones = recognition.result() if recognition is not None else recognize_phones(
            audio_samples, text=config.text, progress=progress, helpers=phone_helpers)
    return network_cues(audio_samples, portrait_cues, schedule, config.intensity, checkpoint=checkpoint,
                        seed=config.seed, temperature=config.temperature, fps=config.fps, controls=controls,
                        progress=progress, runs=network_runs, phones=phones)


def matched_mouth_controls(style, controls, audio_samples, portrait_cues, image, output_size, config: GenerateConfig,
                           cue_model: str, checkpoint: Path | None, *, recognition=None, network_runs=None):
    """``controls`` with the mouth scale and rest gap that make the rendered video's inner-lip gap
    match ``style`` (a :class:`facecue.mouth_style.MouthStyle`), and a record of the fit for the
    settings file. The mesh renderer's frames are probed and read back
    (:func:`facecue.mouth_style.fit_mouth_controls`); other renderers are fitted in cue units. For
    the network only its mouth scale is fitted, on ``network_runs`` (the network runs once)."""
    from .cues import relocate
    from .mouth_style import REST_STEPS, fit_mouth_controls, inner_lip_gap, read_gaps

    def cues_with(scale: float, rest: float):
        knobs = dataclasses.replace(controls, mouth_scale=scale, mouth_rest=rest)
        return speech_cues(audio_samples, portrait_cues, config, knobs, cue_model, checkpoint, recognition=recognition,
                           network_runs=network_runs)

    def gap_of(scale: float, rest: float) -> np.ndarray:
        return inner_lip_gap(cues_with(scale, rest).normalized)

    def read_probes(scale: float, rest: float, picks: np.ndarray) -> np.ndarray:
        from .inputs import parse_emotion_schedule
        from .phonetic import emotion_weights
        from .render import render, renderer_options, rest_face_landmarks

        cues = cues_with(scale, rest)
        points = relocate(cues.normalized[picks], cues.scale[picks], cues.rotation[picks], cues.translation[picks])
        expression = emotion_weights(parse_emotion_schedule(config.emotion), cues.n_frames, config.fps)[picks]
        options = renderer_options(config.renderer, config.renderer_checkpoint, config.device, mouth="synthesize",
                                   wrinkles=config.wrinkles)
        frames = render(image, portrait_cues.landmarks()[0], points, renderer=config.renderer,
                        output_size=output_size, full=config.full, expression=expression * config.intensity,
                        rest_landmarks=rest_face_landmarks(portrait_cues, cues), **options)
        return read_gaps(np.stack(list(frames)))

    probes = read_probes if config.renderer == "mesh" else None
    # the network's rest gap is not fitted: fitted, it held feifeili's lips open by the largest
    # gap and all but stilled them (mouth scale 0.2, lip sync r 0.75 -> 0.22), for the bar's
    # percentiles (benchmarks/mouth_from.py --cue-model network, 2026-12-06: 5 of 8 either way)
    fit = fit_mouth_controls(gap_of, style, probes, REST_STEPS if cue_model == "phonetic" else np.zeros(1))
    record = {"reference": style.source, "reference_p10": round(style.p10, 4), "reference_p50": round(style.p50, 4),
              "reference_p90": round(style.p90, 4), "reference_frames": style.frames,
              "mouth_scale": round(fit.scale, 3), "mouth_rest": round(fit.rest, 4),
              "readback_shift_p10_p50_p90": [round(x, 4) for x in fit.shifts],
              "reached_p10_p50_p90": [round(x, 4) for x in fit.reached], "reached": fit.reaches(style)}
    log.info("mouth matched to %s: %s -> mouth scale %.2f, rest %.3f, reaching p50 %.3f, p90 %.3f",
             style.source, style.describe(), fit.scale, fit.rest, fit.reached[1], fit.reached[2])
    return dataclasses.replace(controls, mouth_scale=fit.scale, mouth_rest=fit.rest), record


def render_worker_count(config: GenerateConfig, seconds: float, workers: int | None) -> int:
    """How many render workers render ``seconds`` of video: ``workers`` when given, else
    :func:`facecue.parallel.default_workers`; 0 for another renderer than the mesh."""
    if config.renderer != "mesh":
        return 0
    from .parallel import default_workers

    return default_workers(seconds) if workers is None else int(workers)


def start_render_workers(config: GenerateConfig, seconds: float, workers: int | None, stack: contextlib.ExitStack):
    """The :class:`facecue.parallel.RenderWorkers` that render ``seconds`` of video (closed with
    ``stack``), converting frames for the encoder too; None when frames are rendered here
    (:func:`render_worker_count` is 0)."""
    n_workers = render_worker_count(config, seconds, workers)
    if n_workers <= 0:
        return None
    from .io import Yuv420p
    from .parallel import RenderWorkers

    return stack.enter_context(RenderWorkers(n_workers, finish=Yuv420p()))


def landmark_frames(cues, chunk: int = 250):
    """``cues.landmarks()`` frame by frame, relocated ``chunk`` frames at a time: no
    ``(T, 478, 3)`` array of the whole video (86 MB for 10 minutes, more while relocating)."""
    for start in range(0, cues.n_frames, chunk):
        yield from cues.slice(start, start + chunk).landmarks()


def generate(
    portrait: str | Path,
    audio: str | Path,
    output: str | Path,
    config: GenerateConfig | None = None,
    *,
    save_cues: str | Path | None = None,
    preview_landmarks: str | Path | None = None,
    progress: bool = False,
    workers: int | None = None,
    **overrides,
) -> GenerateResult:
    """Portrait + speech + emotion -> talking-face MP4 with the speech muxed in.

    Parameters
    ----------
    portrait : image file with one face (the largest is used if several)
    audio : speech (wav/mp3/m4a/flac/ogg, or a video's audio track); silence gives a listening face
    output : .mp4 to write (atomically); its settings go to ``<output stem>.json`` beside it, also
        atomically (an existing .json facecue did not write is never replaced: the job is refused)
    config : a GenerateConfig; keyword ``overrides`` replace its fields (e.g. ``emotion="happy"``)
    save_cues : also write the cue sequence (.npz)
    preview_landmarks : also write a video of the relocated landmarks over the portrait (.mp4)
    workers : processes that render frames while this one encodes (:mod:`facecue.parallel`;
        mesh renderer only); None = :func:`facecue.parallel.default_workers` (one per core for
        clips of 10 s and more), 0 = render here. The same video either way. Unless 0, audio
        longer than one phone-recognition piece (30 s) also has its phones decoded by helper
        processes (:func:`facecue.audio.phone_helpers`; the same phones either way), started
        before the portrait's landmarks are found, so that the two overlap.

    Returns
    -------
    GenerateResult with the path, the cues and per-stage compute times.
    """
    from . import io
    from .cues import FaceCues, extract_cues
    from .inputs import check_max_seconds
    from .landmarks import detect_landmarks
    from .parallel import start_process_server
    from .phonetic import CueControls
    from .progress import progress_bar

    config = dataclasses.replace(config or GenerateConfig(), **overrides)
    portrait, audio, output = validate_inputs(portrait, audio, output, config)
    if save_cues is not None:
        io.check_output_path(save_cues, (".npz",))
    if preview_landmarks is not None:
        io.check_output_path(preview_landmarks, (".mp4",))
    timings: dict[str, float] = {}

    start = time.perf_counter()
    image, output_size, notes = working_portrait(io.read_image(portrait), config)
    samples = io.read_audio(audio, max_seconds=check_max_seconds(config.max_seconds))
    if render_worker_count(config, len(samples) / SAMPLE_RATE, workers) > 0:
        # render workers (and phone helpers) are forked from it: its imports run while this
        # process finds the landmarks, not when the first helper is wanted
        start_process_server()
    cue_model, checkpoint = resolve_cue_model(config)
    listened = cue_audio(samples)
    with contextlib.ExitStack() as phone_stack:
        recognition = None
        # the network needs the phones only for a rest gap: its lips still close on m/b/p
        if cue_model == "phonetic" or config.mouth_rest:
            from .audio import PhoneRecognition

            # the helpers decode phones while this process finds the landmarks
            recognition = phone_stack.enter_context(PhoneRecognition(
                listened, config.text, progress=progress, helpers=0 if workers == 0 else None))
        portrait_cues = FaceCues.from_landmarks(detect_landmarks(image, source=portrait)[None], config.fps,
                                                (image.shape[1], image.shape[0]), meta={"source": str(portrait)})
        smiling = smiling_portrait_note(portrait_cues.normalized[0], config.emotion)
        if smiling:
            notes.append(smiling)
        scale_note = face_scale_note((image.shape[1], image.shape[0]), portrait_cues.landmarks()[0], output_size,
                                     config.full)
        if scale_note:
            notes.append(scale_note)
        pose_angles = None
        if config.pose_from is not None:
            reference = extract_cues(config.pose_from, fps=config.fps, progress=progress)
            pose_angles = reference.pose_angles - reference.pose_angles[:1]
        style = None
        if config.mouth_from is not None:
            from .mouth_style import measure_mouth_style

            style = measure_mouth_style(config.mouth_from, fps=config.fps, progress=progress)
        timings["landmarks"] = time.perf_counter() - start

        start = time.perf_counter()
        controls = CueControls(pose_scale=config.pose_scale, mouth_scale=config.mouth_scale,
                               mouth_rest=config.mouth_rest, pose_angles=pose_angles,
                               gaze=parse_gaze(config.gaze), blink_rate=config.blink_rate)
        mouth_match = runs = None
        if style is not None and not listened.any():
            notes.append("--mouth-from not applied: the audio is silent, so the mouth stays closed")
        elif style is not None:
            # the reference is taken as the person's everyday talk: the knobs are fitted on neutral
            # speech, and the emotion's own mouth (a wider jaw, parted lips) comes on top of them
            talk = dataclasses.replace(config, emotion="neutral")
            talk_runs = None
            if cue_model == "network":
                from .inputs import parse_emotion_schedule
                from .stage1 import network_runs

                def run_network(emotion: str):
                    return network_runs(listened, portrait_cues, emotion, config.intensity, checkpoint=checkpoint,
                                        seed=config.seed, temperature=config.temperature, fps=config.fps,
                                        progress=progress)

                talk_runs = run_network("neutral")
                runs = talk_runs if parse_emotion_schedule(config.emotion) == [(0.0, "neutral")] else \
                    run_network(config.emotion)
            controls, mouth_match = matched_mouth_controls(
                style, controls, listened, portrait_cues, image, output_size, talk, cue_model, checkpoint,
                recognition=recognition, network_runs=talk_runs)
            notes.append(f"mouth matched to {Path(config.mouth_from).name} (mouth scale {controls.mouth_scale:.2f}, "
                         f"rest {controls.mouth_rest:.3f})")
            if not mouth_match["reached"]:
                _, p50, p90 = mouth_match["reached_p10_p50_p90"]
                notes.append(f"the mouth reaches only part of the reference's opening: inner-lip gap p50 {p50:.3f}, "
                             f"p90 {p90:.3f} against its {style.p50:.3f}, {style.p90:.3f} (the {cue_model} cue "
                             "model's range on this portrait)")
        cues = speech_cues(listened, portrait_cues, config, controls, cue_model, checkpoint,
                           progress=progress, recognition=recognition, network_runs=runs)
    from .audio import n_video_frames

    n_frames = n_video_frames(len(samples), config.fps)
    assert cues.n_frames == n_frames, (cues.n_frames, n_frames)
    cues = dataclasses.replace(cues, meta={**cues.meta, "config": config.to_dict(), "portrait": str(portrait),
                                             "audio": str(audio), "cue_model": cue_model,
                                             **({"mouth_match": mouth_match} if mouth_match else {})})
    timings["cues"] = time.perf_counter() - start

    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        # started now, not earlier: they would compete with the landmarks and the cues for the cores
        # and add to the memory peak of the cues; their start-up overlaps the portrait's preparation
        render_workers = start_render_workers(config, n_frames / config.fps, workers, stack)
        from .render import render, renderer_options, rest_face_landmarks

        # the mouth starts closed here: an open portrait's own teeth would be stretched between lip
        # positions they were never seen at (render's module doc)
        options = renderer_options(config.renderer, config.renderer_checkpoint, config.device, mouth="synthesize",
                                   wrinkles=config.wrinkles)
        from .constants import EMOTIONS
        from .inputs import parse_emotion_schedule
        from .phonetic import emotion_weights

        expression = emotion_weights(parse_emotion_schedule(config.emotion), n_frames, config.fps) * config.intensity
        frames = render(image, portrait_cues.landmarks()[0], landmark_frames(cues), renderer=config.renderer,
                        output_size=output_size, full=config.full, progress=False, expression=expression,
                        workers=render_workers, rest_landmarks=rest_face_landmarks(portrait_cues, cues), **options)
        frames = progress_bar(frames, enabled=progress, total=n_frames, desc="render", unit="frame", leave=False)
        with io.VideoWriter(output, config.fps, audio=samples, audio_sample_rate=SAMPLE_RATE) as writer:
            for frame in frames:
                writer.write(frame)
    timings["render+encode"] = time.perf_counter() - start

    if save_cues is not None:
        cues.save(save_cues)
    if preview_landmarks is not None:
        from .preview import preview_on_still

        preview_on_still(image, cues, Path(preview_landmarks), samples, progress=progress)
    with io.atomic_path(check_sidecar(output)) as tmp:
        tmp.write_text(json.dumps({"facecue_config": config.to_dict(), "cue_model": cue_model,
                                   "checkpoint": None if checkpoint is None else str(checkpoint),
                                   "video": output.name, **({"mouth_match": mouth_match} if mouth_match else {}),
                                   **({"notes": notes} if notes else {})},
                                  indent=2))
    return GenerateResult(path=output, cues=cues, n_frames=n_frames, seconds=n_frames / config.fps, timings=timings,
                          notes=notes)
