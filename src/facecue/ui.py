"""``facecue ui``: a local web page (Gradio) around :func:`facecue.generate.generate`.

A thin layer, like the CLI: it turns widget values into a :class:`GenerateConfig`
(:func:`config_from_widgets`), checks the upload against this server's limits and calls
``generate()``. Errors facecue raises (:class:`FacecueError`) are shown in the page as a
``gr.Error`` with their one-line message. One job runs at a time (a queue holds the rest).

Outputs go to a folder the server creates for itself (a new ``facecue-ui-*`` folder, inside
``--output-dir`` when given); only that folder is served (``allowed_paths``), and only the job
folders this server created are ever removed (those older than an hour). The page has no
authentication of its own: ``--auth user:password`` turns on Gradio's login, and serving beyond
this machine without it prints a warning.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported anywhere

import ipaddress
import logging
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from .constants import EMOTIONS
from .errors import FacecueError, InputError

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_MAX_UPLOAD_MB = 20.0
DEFAULT_MAX_SECONDS = 120.0
DEFAULT_QUEUE_SIZE = 16  # waiting jobs beyond this are refused ("queue is full")
JOB_MAX_AGE_S = 3600  # job folders (and Gradio's cached copies) older than this are deleted

GAZE_MODES = ("auto", "camera", "custom")
FRAMINGS = ("full portrait", "face crop")
SIZE_AUTO = "original"
SIZE_CHOICES = (SIZE_AUTO, "128", "192", "256", "384", "512")
LANDMARKS_LABEL = "Detected landmarks"

TITLE = "facecue: emotional talking faces"
INTRO = (
    "Upload a **portrait** (one face) and **speech** (a file or a microphone recording), pick an "
    "**emotion**, and generate a talking-face video. Everything runs on this machine's CPU."
)
CSS = """
#title { margin-bottom: 0; }
#status { min-height: 1.5em; }
/* keep the labels of media blocks above the picture, not over its top-left corner */
#portrait, #landmarks_png, #result, #landmarks_video { padding-top: 2.2em !important; }
footer { display: none !important; }
"""


# --- widget values -> config ---------------------------------------------------------------


def config_from_widgets(
    emotion: str,
    schedule: str | None,
    intensity: float,
    pose_scale: float,
    gaze_mode: str,
    gaze_yaw: float,
    gaze_pitch: float,
    blink_rate: str | float | None,
    seed: float | None,
    size: str | int | None,
    framing: str,
    cue_model: str,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    mouth_scale: float = 1.0,
    mouth_from: str | None = None,
    wrinkles: float = 1.0,
):
    """The :class:`GenerateConfig` the page's widgets describe; raises :class:`InputError`.

    ``schedule`` (e.g. ``"neutral@0,happy@2.5"``), when not blank, replaces ``emotion``. ``size`` is
    :data:`SIZE_AUTO` (the portrait's own size) or a number of pixels. ``blink_rate`` ``"auto"`` (or
    ``None``) is the emotion's typical rate. ``mouth_from``, a video of the person talking, sets the
    mouth's amplitude and rest itself (the mouth-scale slider is then not used). ``wrinkles`` is the
    strength of the emotion's wrinkles and folds, 0..1.
    """
    from .generate import GenerateConfig

    if gaze_mode not in GAZE_MODES:
        raise InputError(None, f"gaze must be one of {', '.join(GAZE_MODES)}, got {gaze_mode!r}")
    gaze = f"{float(gaze_yaw):g},{float(gaze_pitch):g}" if gaze_mode == "custom" else gaze_mode
    if framing not in FRAMINGS:
        raise InputError(None, f"framing must be one of {', '.join(FRAMINGS)}, got {framing!r}")
    config = GenerateConfig(
        emotion=(schedule or "").strip() or emotion,
        intensity=float(intensity),
        wrinkles=float(wrinkles),
        cue_model=cue_model,
        seed=_parse_seed(seed),
        pose_scale=float(pose_scale),
        mouth_scale=1.0 if mouth_from else float(mouth_scale),
        mouth_from=str(mouth_from) if mouth_from else None,
        gaze=gaze,
        blink_rate=_parse_blink_rate(blink_rate),
        size=_parse_size(size),
        full=framing == FRAMINGS[0],
        max_seconds=max_seconds,
    )
    return config.validate()


def _parse_blink_rate(rate: str | float | None) -> float | None:
    if rate is None or str(rate).strip().lower() in ("", "auto"):
        return None
    try:
        return float(str(rate).strip().lower().removesuffix("/min").strip())
    except ValueError:
        raise InputError(None, f"blink rate must be 'auto' or blinks per minute, got {rate!r}") from None


def _parse_seed(seed: float | None) -> int:
    if seed is None:
        return 0
    if float(seed) != int(seed) or seed < 0:
        raise InputError(None, f"seed must be a whole number >= 0, got {seed}")
    return int(seed)


def _parse_size(size: str | int | None) -> int | None:
    if size is None or str(size).strip() in ("", SIZE_AUTO):
        return None
    text = str(size).strip().lower().removesuffix("px").strip()
    try:
        return int(text)
    except ValueError:
        raise InputError(None, f"size must be a number of pixels or {SIZE_AUTO!r}, got {size!r}") from None


def user_message(exc: FacecueError) -> str:
    """One line for the page: like ``str(exc)``, but an uploaded file is named by its own name, not
    by the server's temp path."""
    path, problem = getattr(exc, "path", None), getattr(exc, "problem", None)
    if path is not None and problem is not None:
        return f"{Path(path).name}: {problem}"
    return str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__


# --- the jobs ------------------------------------------------------------------------------


class Jobs:
    """Where a server's outputs go: one fresh folder per job under :attr:`root`, a folder this
    server creates for itself (inside ``parent`` when given, else in the system's temp folder).

    Only :attr:`root` is served to the page, and :meth:`prune` removes only the job folders this
    object created (once older than ``max_age_s``): nothing else in ``parent`` is ever read,
    served or deleted.
    """

    def __init__(self, parent: str | Path | None = None, max_age_s: float = JOB_MAX_AGE_S):
        if parent is not None:
            Path(parent).mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="facecue-ui-", dir=None if parent is None else str(parent)))
        self.max_age_s = max_age_s
        self._created: set[Path] = set()
        self._lock = threading.Lock()

    def new(self, prefix: str) -> Path:
        self.prune()
        folder = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=self.root))
        with self._lock:
            self._created.add(folder)
        return folder

    def prune(self) -> None:
        """Remove the job folders this server created that are older than ``max_age_s``."""
        cutoff = time.time() - self.max_age_s
        with self._lock:
            for folder in list(self._created):
                try:
                    old = folder.stat().st_mtime < cutoff
                except OSError:  # already gone
                    self._created.discard(folder)
                    continue
                if old:
                    shutil.rmtree(folder, ignore_errors=True)
                    self._created.discard(folder)


def portrait_landmarks_png(portrait: str | Path, jobs: Jobs, size: int = 384,
                           emotion: str = "neutral") -> tuple[Path, str | None]:
    """The portrait's face, cropped and scaled to ``size`` px, with its detected landmarks, iris,
    gaze arrows and pose axes drawn on it (a PNG in a new job folder), and what the user should
    know about the portrait for ``emotion`` (a broad smile: :func:`facecue.generate.smiling_portrait_note`)."""
    import cv2
    import numpy as np

    from . import io
    from .cues import extract_cues
    from .draw import draw_cues
    from .errors import NoFaceError

    image = io.read_image(portrait)
    try:
        cues = extract_cues(image)
    except NoFaceError as exc:  # name the upload, not "array"
        raise NoFaceError(portrait, exc.problem) from None
    points = cues.landmarks()[0]
    low, high = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
    centre, half = (low + high) / 2, (high - low).max() * 0.8  # the face plus a margin, square
    x0, y0 = np.floor(centre - half).astype(int)
    side = int(np.ceil(2 * half))
    padded = cv2.copyMakeBorder(image, side, side, side, side, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    crop = padded[y0 + side: y0 + 2 * side, x0 + side: x0 + 2 * side]
    factor = size / side
    crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC)
    moved = points.copy()
    moved[:, :2] = (points[:, :2] - (x0, y0)) * factor
    moved[:, 2] *= factor
    frame = draw_cues(crop, moved, cues.rotation[0], cues.scale[0] * factor, cues.gaze[0])
    out = jobs.new("landmarks") / "landmarks.png"
    io.write_image(out, frame)
    from .generate import smiling_portrait_note

    try:
        note = smiling_portrait_note(cues.normalized[0], emotion)
    except FacecueError:  # an emotion schedule being typed: the job checks it on Generate
        note = None
    return out, note


def check_audio_length(audio: str | Path, max_seconds: float) -> float:
    """Duration of ``audio`` in seconds; :class:`InputError` when over this server's limit."""
    from . import io

    duration = io.audio_duration(audio, limit=max_seconds)  # from the header; never decodes past the limit
    if duration > max_seconds:
        raise InputError(audio, f"audio is {duration:.0f} s long, over this server's {max_seconds:.0f} s limit; "
                         "upload a shorter clip")
    return duration


def run_job(portrait, audio, config, jobs: Jobs, *, progress: bool = False):
    """Validate the uploads, then ``generate()`` the video and its landmark preview into a new job
    folder. Returns ``(GenerateResult, preview_path)``; raises :class:`FacecueError`."""
    from .errors import NoFaceError
    from .generate import generate

    if not portrait:
        raise InputError(None, "upload a portrait (an image with one face)")
    if not audio:
        raise InputError(None, "give speech: upload an audio file or record with the microphone")
    check_audio_length(audio, config.max_seconds or DEFAULT_MAX_SECONDS)
    folder = jobs.new("job")
    preview = folder / "landmarks.mp4"
    try:
        result = generate(portrait, audio, folder / "facecue.mp4", config, preview_landmarks=preview,
                          progress=progress)
    except NoFaceError as exc:
        if exc.path is not None and exc.path.exists():
            raise
        raise NoFaceError(portrait, exc.problem) from None  # generate() detects on an array: name the upload
    return result, preview


# --- the page ------------------------------------------------------------------------------


def build_app(jobs: Jobs | None = None, *, max_seconds: float = DEFAULT_MAX_SECONDS,
              max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB):
    """The Gradio Blocks app (not launched). Components carry ``elem_id`` s for tests and styling."""
    import gradio as gr

    from .generate import CUE_MODELS

    jobs = jobs or Jobs()

    def show_landmarks(portrait, emotion, schedule):
        if not portrait:
            return None
        try:
            png, note = portrait_landmarks_png(portrait, jobs, emotion=(schedule or "").strip() or emotion)
        except FacecueError as exc:  # the same problem is reported again (as an error) on Generate
            gr.Warning(user_message(exc))
            return None
        if note:
            gr.Info(note[0].upper() + note[1:] + ".")
        return str(png)

    def toggle_gaze(mode):
        custom = mode == "custom"
        return gr.update(visible=custom), gr.update(visible=custom)

    def generate_video(portrait, audio, emotion, schedule, intensity, pose_scale, gaze_mode, gaze_yaw, gaze_pitch,
                       blink_rate, seed, size, framing, cue_model, mouth_scale, mouth_from, wrinkles,
                       progress=gr.Progress(track_tqdm=True)):
        try:
            config = config_from_widgets(emotion, schedule, intensity, pose_scale, gaze_mode, gaze_yaw, gaze_pitch,
                                         blink_rate, seed, size, framing, cue_model, max_seconds=max_seconds,
                                         mouth_scale=mouth_scale, mouth_from=mouth_from, wrinkles=wrinkles)
            result, preview = run_job(portrait, audio, config, jobs, progress=True)
        except FacecueError as exc:
            log.info("job refused: %s", exc)
            raise gr.Error(user_message(exc), print_exception=False) from None
        except Exception:
            log.exception("job failed")
            raise gr.Error("internal error while generating (details are in the server log)") from None
        compute = sum(result.timings.values())
        status = (f"**Done:** {result.n_frames} frames, {result.seconds:.1f} s of video in {compute:.1f} s "
                  f"(emotion `{config.emotion}`, cue model `{result.cues.meta.get('cue_model', '?')}`)."
                  + "".join(f"\n\n**Note:** {note}." for note in result.notes))
        return str(result.path), str(preview), status

    with gr.Blocks(title="facecue", delete_cache=(JOB_MAX_AGE_S // 2, JOB_MAX_AGE_S)) as demo:
        gr.Markdown(f"# {TITLE}", elem_id="title")
        gr.Markdown(INTRO, elem_id="intro")
        with gr.Row(equal_height=False):
            with gr.Column(scale=5, min_width=320):
                with gr.Row():
                    portrait = gr.Image(type="filepath", sources=["upload", "clipboard"], label="Portrait",
                                        height=220, elem_id="portrait")
                    landmarks_png = gr.Image(type="filepath", label=LANDMARKS_LABEL, interactive=False,
                                             height=220, elem_id="landmarks_png")
                audio = gr.Audio(sources=["upload", "microphone"], type="filepath",
                                 label=f"Speech (file or microphone, up to {max_seconds:.0f} s)", elem_id="audio")
                with gr.Row():
                    emotion = gr.Dropdown(list(EMOTIONS), value="neutral", label="Emotion", elem_id="emotion")
                    intensity = gr.Slider(0, 1, value=1.0, step=0.05, label="Intensity", elem_id="intensity")
                    wrinkles = gr.Slider(0, 1, value=1.0, step=0.05, label="Wrinkles",
                                         info="the emotion's creases and folds; lower on bright, smooth skin",
                                         elem_id="wrinkles")
                schedule = gr.Textbox(label="Emotion schedule (optional; replaces the emotion above)",
                                      placeholder="neutral@0,happy@2.5,sad@6   (emotion@seconds, blended)",
                                      elem_id="schedule")
                with gr.Accordion("Motion and output", open=True, elem_id="controls"):
                    with gr.Row():
                        pose_scale = gr.Slider(0, 2, value=1.0, step=0.05, label="Head motion (pose scale)",
                                               scale=2, elem_id="pose_scale")
                        mouth_scale = gr.Slider(0, 2, value=1.0, step=0.05, label="Mouth movement (mouth scale)",
                                                info="people differ; 1 = facecue's default", scale=2,
                                                elem_id="mouth_scale")
                        blink_rate = gr.Textbox(value="auto", label="Blinks per minute", max_lines=1,
                                                info="auto: the emotion's typical rate", min_width=120,
                                                elem_id="blink_rate")
                        seed = gr.Number(value=0, precision=0, minimum=0, label="Seed", min_width=100, elem_id="seed")
                    with gr.Row():
                        gaze_mode = gr.Radio(list(GAZE_MODES), value="auto", label="Gaze", elem_id="gaze_mode")
                        gaze_yaw = gr.Slider(-40, 40, value=0, step=1, label="Gaze yaw (deg, + = subject's left)",
                                             visible=False, elem_id="gaze_yaw")
                        gaze_pitch = gr.Slider(-30, 30, value=0, step=1, label="Gaze pitch (deg, + = up)",
                                               visible=False, elem_id="gaze_pitch")
                    with gr.Row():
                        framing = gr.Radio(list(FRAMINGS), value=FRAMINGS[0], label="Framing", scale=2,
                                           elem_id="framing")
                        size = gr.Dropdown(list(SIZE_CHOICES), value=SIZE_AUTO, allow_custom_value=True,
                                           label="Size (px)", min_width=120, elem_id="size")
                        cue_model = gr.Dropdown(list(CUE_MODELS), value="auto", label="Cue model", min_width=120,
                                                elem_id="cue_model")
                    mouth_from = gr.Video(sources=["upload"], label="Mouth like this person (optional): a video of "
                                          "them talking; replaces the mouth scale", height=160,
                                          elem_id="mouth_from")
                generate_button = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column(scale=4, min_width=320):
                result = gr.Video(label="Result", interactive=False, elem_id="result")
                status = gr.Markdown("", elem_id="status")
                landmarks_video = gr.Video(label="Landmark preview (generated cues over the portrait)",
                                           interactive=False, elem_id="landmarks_video")
                gr.Markdown(f"Limits of this server: uploads up to {max_upload_mb:g} MB, speech up to "
                            f"{max_seconds:g} s, one job at a time (others wait in a queue).", elem_id="limits")

        portrait.upload(show_landmarks, [portrait, emotion, schedule], landmarks_png, concurrency_limit=1,
                        concurrency_id="landmarks")
        portrait.clear(lambda: None, None, landmarks_png, queue=False)
        gaze_mode.change(toggle_gaze, gaze_mode, [gaze_yaw, gaze_pitch], queue=False)
        generate_button.click(
            generate_video,
            [portrait, audio, emotion, schedule, intensity, pose_scale, gaze_mode, gaze_yaw, gaze_pitch, blink_rate,
             seed, size, framing, cue_model, mouth_scale, mouth_from, wrinkles],
            [result, landmarks_video, status],
            concurrency_limit=1, concurrency_id="generate", api_name="generate",
        )
    return demo


def parse_auth(text: str | None) -> tuple[str, str] | None:
    """``"user:password"`` -> ``(user, password)`` for Gradio's login; None stays None."""
    if text is None:
        return None
    user, colon, password = str(text).partition(":")
    if not colon or not user or not password:
        raise InputError(None, "--auth must be USER:PASSWORD (both non-empty)")
    return user, password


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine (127.x.x.x, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def exposure_warning(host: str, port: int, auth: tuple[str, str] | None) -> str | None:
    """The warning to print when the page is served beyond this machine, or None."""
    if is_loopback(host):
        return None
    if auth is None:
        return (f"facecue: warning: the page on {host}:{port} has no authentication: anyone who can reach it can "
                "upload files and use this machine's CPU; add --auth USER:PASSWORD, or serve on 127.0.0.1")
    return (f"facecue: warning: the page on {host}:{port} is plain HTTP: the password and uploads cross the network "
            "unencrypted (put it behind an HTTPS proxy)")


def launch(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    queue_size: int = DEFAULT_QUEUE_SIZE,
    output_dir: str | Path | None = None,
    auth: tuple[str, str] | None = None,
    block: bool = True,
):
    """Build and serve the page on ``host:port`` (127.0.0.1: this machine only). ``auth``
    ``(user, password)`` turns on Gradio's login page. Returns the app (after the server stops
    when ``block``)."""
    if max_upload_mb <= 0 or max_seconds <= 0 or queue_size < 1:
        raise InputError(None, "max upload size, max seconds and queue size must be positive")
    warning = exposure_warning(host, port, auth)
    if warning:
        print(warning, file=sys.stderr)
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise FacecueError("the web page needs gradio (pip install -r requirements.txt)") from None
    jobs = Jobs(output_dir)
    demo = build_app(jobs, max_seconds=max_seconds, max_upload_mb=max_upload_mb)
    demo.queue(default_concurrency_limit=1, max_size=queue_size)
    try:
        demo.launch(
            server_name=host, server_port=port, allowed_paths=[str(jobs.root)], auth=auth,
            max_file_size=int(max_upload_mb * 1024**2),
            prevent_thread_lock=not block, show_error=True, quiet=False, footer_links=[], css=CSS, ssr_mode=False,
        )
    except OSError as exc:  # port taken, host not resolvable
        reason = str(exc).split(". ")[0]  # Gradio adds advice about its own launch() arguments
        raise FacecueError(f"cannot serve the page on {host}:{port}: {reason}") from None
    return demo
