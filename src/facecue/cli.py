"""The ``facecue`` command line: one entry point, one subcommand per job.

This is one of the only places that parse user input; every subcommand validates its arguments,
then calls the plain function API. Errors the user can act on print one line and exit with 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from importlib import resources
from pathlib import Path

import numpy as np

from . import __version__
from .errors import FacecueError

log = logging.getLogger("facecue")

EPILOG = """examples:
  facecue demo                                   cues + preview of the bundled portrait
  facecue cues talk.mp4 -o talk.npz --preview talk_preview.mp4
  facecue cues portrait.jpg -o portrait.npz --preview portrait_preview.png

run 'facecue COMMAND --help' for the options of one command."""


def asset_path(name: str) -> Path:
    """Path of a file bundled in ``facecue/assets``."""
    return Path(str(resources.files("facecue") / "assets" / name))


# --- subcommands ---------------------------------------------------------------------------


def cmd_cues(args: argparse.Namespace) -> int:
    from . import io
    from .cues import extract_cues

    source = Path(args.input)
    kind = io.media_kind(source)  # validates existence, size and extension
    io.check_output_path(args.output, (".npz",))
    if args.preview:
        io.check_output_path(args.preview, (".mp4",) if kind == "video" else (".mp4", ".png", ".jpg"))
    started = time.perf_counter()
    cues = extract_cues(source, fps=args.fps, progress=not args.quiet)
    cues.save(args.output)
    valid = cues.valid.mean() * 100
    yaw, pitch, roll = np.ptp(cues.pose_angles, axis=0) if cues.n_frames > 1 else (0.0, 0.0, 0.0)
    summary = (
        f"{args.output}: {cues.n_frames} frame(s) at {cues.fps:g} fps, face in {valid:.0f}%, "
        f"{len(cues.blinks())} blink(s), pose range yaw {yaw:.1f} pitch {pitch:.1f} roll {roll:.1f} deg"
    )
    if args.preview:
        write_preview(source, cues, Path(args.preview), progress=not args.quiet)
        summary += f"; preview {args.preview}"
    print(f"{summary} ({time.perf_counter() - started:.1f} s)")
    return 0


def write_preview(source: Path, cues, output: Path, *, audio: np.ndarray | None = None, progress: bool = True) -> None:
    """Draw ``cues`` over the frames of ``source`` (an image or video) and write ``output``."""
    from . import io
    from .draw import cue_status, draw_cues

    landmarks = cues.landmarks()
    kind = io.media_kind(source)
    if kind == "image":
        image = io.read_image(source)
        if output.suffix.lower() in (".png", ".jpg"):
            frame = draw_cues(image, landmarks[0], cues.rotation[0], cues.scale[0], cues.gaze[0],
                              cue_status(cues.rotation[0], cues.gaze[0], cues.aperture[0]))
            io.write_image(output, frame)
            return
        frames = (image for _ in range(cues.n_frames))
    else:
        frames = io.iter_video_frames(source, fps=cues.fps)
        if audio is None and io.probe_video(source).has_audio:
            audio = io.read_audio(source)
    size = cues.image_size
    iterator = zip(range(cues.n_frames), frames)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, total=cues.n_frames, desc="preview", unit="frame", leave=False)
    with io.VideoWriter(output, cues.fps, size, audio=audio) as writer:
        for t, frame in iterator:
            text = cue_status(cues.rotation[t], cues.gaze[t], cues.aperture[t], t)
            writer.write(draw_cues(frame, landmarks[t], cues.rotation[t], cues.scale[t], cues.gaze[t], text))


def cmd_demo(args: argparse.Namespace) -> int:
    """The furthest pipeline step that exists, on the bundled portrait and speech."""
    from . import io
    from .audio import n_video_frames
    from .constants import DEFAULT_FPS
    from .cues import extract_cues
    from .motion import scripted_motion

    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    portrait = asset_path("portrait.png")
    speech = io.read_audio(asset_path("speech.wav"))
    started = time.perf_counter()
    portrait_cues = extract_cues(portrait)
    portrait_cues.save(out_dir / "portrait_cues.npz")
    n_frames = n_video_frames(len(speech), DEFAULT_FPS)
    motion = scripted_motion(portrait_cues, n_frames, DEFAULT_FPS)
    motion.save(out_dir / "demo_cues.npz")
    preview = out_dir / "demo_preview.mp4"
    write_preview(portrait, motion, preview, audio=speech, progress=not args.quiet)
    print(
        f"{preview}: {n_frames} frames ({n_frames / DEFAULT_FPS:.1f} s) of relocated landmarks on the bundled "
        f"portrait with the bundled speech; cues in {out_dir} ({time.perf_counter() - started:.1f} s)"
    )
    return 0


# --- parser --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facecue",
        description="Emotional talking faces from a portrait, speech and an emotion (offline, CPU).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"facecue {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details (and tracebacks on errors)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "cues",
        help="extract facial cues (landmarks, pose, gaze, blinks) from an image or video",
        description="Extract per-frame facial cues from an image or video: normalized 3D landmarks, head pose, "
        "gaze and eye aperture, saved as a versioned .npz (load with facecue.FaceCues.load).",
    )
    p.add_argument("input", help="image (png/jpg/...) or video (mp4/mov/avi/webm/mkv)")
    p.add_argument("-o", "--output", required=True, help="cue file to write (.npz)")
    p.add_argument("--preview", help="also write a preview with landmarks, iris, gaze arrows and pose axes "
                   "(.mp4 with the input's audio; .png for an image)")
    p.add_argument("--fps", type=_positive_float, help="resample a video to this frame rate (default: its own)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_cues)

    p = sub.add_parser(
        "demo",
        help="run the main job on the bundled portrait and speech",
        description="Run the furthest step of the pipeline that exists on the bundled portrait and speech clip.",
    )
    p.add_argument("-o", "--output-dir", default="out/demo", help="folder for the outputs (default: out/demo)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)
    return parser


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="facecue: %(message)s")
    if not args.command:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except FacecueError as exc:
        if args.verbose:
            log.exception("failed")
        print(f"facecue: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("facecue: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
