"""Mesh renderer per frame, in one process: the old code beside the new, frame by frame, and how
much their frames differ.

Usage::

    python benchmarks/bench_render_ab.py                                   # old = HEAD~1
    python benchmarks/bench_render_ab.py --old-ref c3f0323 --rounds 5 --png /tmp/ab
    python benchmarks/bench_render_ab.py --old-ref c3f0323 --out BENCHMARKS.md    # its section there

The inputs are made as ``facecue generate`` makes them (with the new code): the portrait (the
bundled one and ``--portraits``), scaled or cropped to the output (``--cases``: ``crop256``, a
256 px aligned face crop, and ``full512``, the whole portrait at 512 px), its landmarks, phonetic
cues from ``--seconds`` of the shared speech clips in each of ``--emotions``, and the emotion
weights of the expression detail. The old renderer is ``src/facecue`` of ``--old-ref`` exported
with ``git archive`` and imported as a package of another name, which reads its own bundled
assets (the expression-detail maps; commits up to e741fb2 found their assets through the name
``facecue`` and so read the working tree's: an asset change did not show); both renderers are
prepared on the same portrait and render ``--frames`` frames spread over the clip. Timing: each
frame is rendered by the old and the new renderer one after the other (which goes first alternates), so
that the load of a shared machine falls on both alike; a round is all the frames, and the table
gives the median of the rounds' mean milliseconds per frame and every round's value. OpenCV runs
on one thread (as in the render workers).

Pixel difference: every frame of both renderers, ``|old - new|`` over all pixels and channels (max
and mean, in 8-bit levels). ``--png DIR`` saves, per row, the frame with the largest mean
difference as ``old | new | 10 x |difference|``.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))  # bench_speed's inputs, tree export and section writer

from bench_speed import export_tree, speech_of_length, write_section  # noqa: E402
from run import machine_description  # noqa: E402  (benchmarks/run.py)

SECTION_START = "<!-- bench_render_ab: start -->"
SECTION_END = "<!-- bench_render_ab: end -->"
PORTRAITS_DIR = ROOT.parent / "shared" / "data" / "portraits"
CASES = {"crop256": (False, 256), "full512": (True, 512)}  # name -> (full, size)


def old_render_module(ref: str, folder: Path):
    """``facecue.render`` of commit ``ref``, imported as ``facecue_old.render``."""
    (export_tree(ref, folder) / "facecue").rename(folder / "facecue_old")
    sys.path.insert(0, str(folder))
    return importlib.import_module("facecue_old.render")


def render_inputs(portrait: Path, emotion: str, full: bool, size: int, speech: np.ndarray) -> dict[str, np.ndarray]:
    """What generate hands the renderer for ``speech`` ((n,) float32 at the sample rate): ``image``
    (H, W, 3) uint8, ``points`` (478, 3) float32 and ``sequence`` (T, 478, 3) float32 in output
    pixels, ``expression`` (T, 8) float32."""
    from facecue import io
    from facecue.cues import FaceCues
    from facecue.generate import GenerateConfig, cue_audio, landmark_frames, speech_cues, working_portrait
    from facecue.landmarks import detect_landmarks
    from facecue.phonetic import CueControls, emotion_weights
    from facecue.render import _transform_points, check_landmarks, output_transform, warp_portrait

    config = GenerateConfig(emotion=emotion, cue_model="phonetic", full=full, size=size)
    image, output_size, _ = working_portrait(io.read_image(portrait), config)
    landmarks = detect_landmarks(image)
    portrait_cues = FaceCues.from_landmarks(landmarks[None], config.fps, (image.shape[1], image.shape[0]))
    cues = speech_cues(cue_audio(speech), portrait_cues, config, CueControls(), "phonetic", None, phone_helpers=0)
    sequence = np.stack(list(landmark_frames(cues))).astype(np.float32)
    expression = (emotion_weights(emotion, len(sequence), config.fps) * config.intensity).astype(np.float32)
    points = check_landmarks(landmarks)
    matrix, out_size = output_transform((image.shape[1], image.shape[0]), points, output_size, full)
    if not (np.allclose(matrix, [[1, 0, 0], [0, 1, 0]]) and out_size == (image.shape[1], image.shape[0])):
        image = warp_portrait(image, matrix, out_size)
        points = _transform_points(points, matrix)
        sequence = np.stack([_transform_points(frame, matrix) for frame in sequence])
    return {"image": image, "points": points, "sequence": sequence, "expression": expression}


def compare(old_module, new_module, data: dict[str, np.ndarray], frames: int, rounds: int
            ) -> tuple[list[float], list[float], list[np.ndarray], list[np.ndarray]]:
    """(old ms/frame per round, new ms/frame per round, old frames, new frames)."""
    renderers = {}
    for name, module in (("old", old_module), ("new", new_module)):
        renderer = module.get_renderer("mesh", mouth="synthesize")  # as generate asks for it
        renderer.prepare(data["image"], data["points"])
        renderers[name] = renderer
    picks = np.linspace(0, len(data["sequence"]) - 1, frames).astype(int)
    outputs: dict[str, list[np.ndarray]] = {"old": [], "new": []}
    for name, renderer in renderers.items():  # warm-up, and the frames compared
        for i in picks:
            renderer.set_expression(data["expression"][i])
            outputs[name].append(renderer.render_frame(data["sequence"][i]))
    times: dict[str, list[float]] = {"old": [], "new": []}
    for round_ in range(rounds):
        total = {"old": 0.0, "new": 0.0}
        for j, i in enumerate(picks):
            for name in ("old", "new") if (j + round_) % 2 == 0 else ("new", "old"):
                renderer = renderers[name]
                renderer.set_expression(data["expression"][i])
                started = time.perf_counter()
                renderer.render_frame(data["sequence"][i])
                total[name] += time.perf_counter() - started
        for name in total:
            times[name].append(1e3 * total[name] / len(picks))
    return times["old"], times["new"], outputs["old"], outputs["new"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-ref", default="HEAD~1", help="git commit of the old renderer (default HEAD~1)")
    parser.add_argument("--portraits", default="styletalk_KristiNoem.png",
                        help="comma-separated portraits of ../shared/data/portraits besides the bundled one")
    parser.add_argument("--emotions", default="happy,angry,surprised")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of: {', '.join(CASES)}")
    parser.add_argument("--seconds", type=float, default=8.0, help="speech per clip (default 8)")
    parser.add_argument("--frames", type=int, default=60, help="frames per clip, spread over it (default 60)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--png", type=Path, help="save the most different frame of each row here")
    parser.add_argument("--out", type=Path,
                        help="write the table into this markdown file (its bench_render_ab section)")
    args = parser.parse_args(argv)
    command = shlex.join(["python", "benchmarks/bench_render_ab.py", *(sys.argv[1:] if argv is None else argv)])
    cv2.setNumThreads(1)
    import facecue.render as new_module
    from facecue import io
    from facecue.cli import asset_path

    portraits = [Path(asset_path("portrait.png"))]
    portraits += [PORTRAITS_DIR / name for name in args.portraits.split(",")
                  if name and (PORTRAITS_DIR / name).exists()]
    if args.png:
        args.png.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="facecue-render-ab-") as tmp:
        old_module = old_render_module(args.old_ref, Path(tmp))
        speech = io.read_audio(speech_of_length(args.seconds, Path(tmp) / "speech.wav"))
        lines = [f"Made by `{command}`: old = `{args.old_ref}`, new = this checkout (below); {args.frames} frames x "
                 f"{args.rounds} interleaved rounds in one process, OpenCV on 1 thread. Milliseconds per frame: median "
                 "of the rounds, then every round; pixel difference over every frame of both, in 8-bit levels.", "",
                 *machine_description(), "",
                 "| portrait | case | emotion | old ms/frame (median; rounds) | new ms/frame (median; rounds) "
                 "| new/old | max diff | mean diff |",
                 "|---|---|---|---|---|---|---|---|"]
        print("\n".join(lines), flush=True)
        for portrait in portraits:
            for case in args.cases.split(","):
                full, size = CASES[case]
                for emotion in args.emotions.split(","):
                    data = render_inputs(portrait, emotion, full, size, speech)
                    old_ms, new_ms, old_frames, new_frames = compare(old_module, new_module, data, args.frames,
                                                                     args.rounds)
                    diffs = [np.abs(a.astype(np.int16) - b.astype(np.int16)) for a, b in zip(old_frames, new_frames)]
                    means = [float(d.mean()) for d in diffs]
                    old_median, new_median = statistics.median(old_ms), statistics.median(new_ms)
                    lines.append(f"| {portrait.stem} | {case} | {emotion} | {old_median:.2f}; "
                                 f"{', '.join(f'{v:.2f}' for v in old_ms)} | {new_median:.2f}; "
                                 f"{', '.join(f'{v:.2f}' for v in new_ms)} | {new_median / old_median:.3f} | "
                                 f"{max(int(d.max()) for d in diffs)} | {statistics.fmean(means):.6f} |")
                    print(lines[-1], flush=True)
                    if args.png:
                        worst = int(np.argmax(means))
                        panel = np.hstack([old_frames[worst], new_frames[worst],
                                           np.clip(diffs[worst] * 10, 0, 255).astype(np.uint8)])
                        cv2.imwrite(str(args.png / f"{portrait.stem}_{case}_{emotion}.png"),
                                    cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))
    if args.out:
        heading = "## Mesh renderer per frame, old beside new (`benchmarks/bench_render_ab.py`)"
        write_section(args.out, "\n".join([heading, "", *lines]), SECTION_START, SECTION_END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
