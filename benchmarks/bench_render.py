"""Speed of the mesh renderer (frames per second), full-frame output of a square portrait.

The bundled portrait is resized to each output size, driven by a few hundred frames of
:func:`facecue.motion.scripted_motion` (head turn, blinks, gaze shifts, mouth opening); only the
rendering is timed (landmarks are computed before). Also times a large, full-resolution portrait
(``--large``, default: the 910x1137 official portrait in ../shared/data when present).

Run::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_render.py [--frames 300] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np

from facecue.cli import asset_path
from facecue.cues import FaceCues
from facecue.io import read_image
from facecue.landmarks import detect_landmarks
from facecue.motion import scripted_motion
from facecue.render import get_renderer

REPO = Path(__file__).resolve().parents[1]
LARGE = REPO.parent / "shared" / "data" / "portraits" / "whitehouse_obama_official_2012_910x1137.jpg"


def time_renderer(image: np.ndarray, n_frames: int, repeats: int) -> dict[str, float]:
    points = detect_landmarks(image)
    height, width = image.shape[:2]
    cues = scripted_motion(FaceCues.from_landmarks(points[None], 25.0, (width, height)), n_frames, 25.0)
    sequence = cues.landmarks()
    renderer = get_renderer("mesh")
    started = time.perf_counter()
    renderer.prepare(image, points)
    prepare_s = time.perf_counter() - started
    for landmarks in sequence[:10]:  # warm-up
        renderer.render_frame(landmarks)
    best = np.inf
    for _ in range(repeats):
        started = time.perf_counter()
        for landmarks in sequence:
            renderer.render_frame(landmarks)
        best = min(best, time.perf_counter() - started)
    return {"fps": n_frames / best, "ms": 1e3 * best / n_frames, "prepare_ms": 1e3 * prepare_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300, help="frames per timing run")
    parser.add_argument("--repeats", type=int, default=3, help="timing runs (the best is reported)")
    parser.add_argument("--threads", type=int, default=None, help="cv2.setNumThreads (default: OpenCV's)")
    parser.add_argument("--sizes", default="256,512", help="square output sizes, comma separated")
    parser.add_argument("--large", default=str(LARGE), help="a large portrait rendered at its own size ('' to skip)")
    args = parser.parse_args()
    if args.threads is not None:
        cv2.setNumThreads(args.threads)
    portrait = read_image(asset_path("portrait.png"))
    print(f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, "
          f"cv2 threads {cv2.getNumThreads()}, {args.frames} frames x best of {args.repeats}")
    print("| portrait | output | frames/s | ms/frame | prepare ms |")
    print("|---|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        image = cv2.resize(portrait, (size, size), interpolation=cv2.INTER_AREA)
        result = time_renderer(image, args.frames, args.repeats)
        print(f"| bundled, resized | {size}x{size} | {result['fps']:.1f} | {result['ms']:.2f} | "
              f"{result['prepare_ms']:.0f} |")
    if args.large and Path(args.large).exists():
        image = read_image(args.large)
        result = time_renderer(image, max(args.frames // 3, 30), args.repeats)
        print(f"| {Path(args.large).name} | {image.shape[1]}x{image.shape[0]} (own size) | {result['fps']:.1f} | "
              f"{result['ms']:.2f} | {result['prepare_ms']:.0f} |")


if __name__ == "__main__":
    main()
