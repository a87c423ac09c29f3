"""Face crops that reach past the portrait's edge: how streaky the fill outside the portrait is.

Usage::

    python benchmarks/crop_fill.py                      # this tree
    python benchmarks/crop_fill.py --old-ref 66c49b7    # ... beside an older commit's fill

Every shared portrait (``portraits/``, the peers' ``*portrait*`` files) and the bundled one is
cropped as ``facecue generate --crop`` crops it (``--sizes`` px); crops that stay inside the
portrait are skipped. Streaks are the edge pixels repeated outward: colour that changes *along*
the portrait's edge and stays the same away from it. The measure is the mean absolute greyscale
gradient (Sobel, 8-bit levels per pixel) along the iso-distance lines of the outside region
(perpendicular to the direction away from the portrait), over the outside pixels 2 px to 1/20
of the crop's side away from the edge (*near the edge*) and over all outside pixels from 2 px
(*whole fill*). A smooth continuation scores low; repeated stripes or hair strands score high.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

DATA = ROOT.parent / "shared" / "data"


def along_edge_gradient(frame: np.ndarray, inside: np.ndarray, side: int) -> tuple[float, float]:
    """Mean |greyscale gradient along the edge| of ``frame`` (H, W, 3) uint8 outside the portrait
    (``inside`` (H, W) uint8, 255 = portrait): near the edge, and over the whole fill."""
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gx, gy = cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)
    distance = cv2.distanceTransform((inside < 255).astype(np.uint8), cv2.DIST_L2, 5)
    nx, ny = cv2.Sobel(distance, cv2.CV_32F, 1, 0), cv2.Sobel(distance, cv2.CV_32F, 0, 1)
    norm = np.maximum(np.hypot(nx, ny), 1e-6)
    along = np.abs(gx * (-ny / norm) + gy * (nx / norm))
    fill = distance >= 2
    near = fill & (distance < side / 20)
    return float(along[near].mean()), float(along[fill].mean())


def portraits(data: Path) -> list[Path]:
    from facecue.assets import asset_path

    return (sorted((data / "portraits").glob("*")) + sorted((data / "peers").glob("*portrait*"))
            + [asset_path("portrait.png")])


def measure(render_module, data: Path, sizes: list[int]) -> dict[tuple[str, int], tuple[float, float, float]]:
    """(portrait name, side) -> (share of the crop outside the portrait, near-edge, whole-fill
    gradient) with ``render_module``'s ``output_transform`` and ``warp_portrait``."""
    from facecue.io import read_image
    from facecue.landmarks import detect_landmarks

    results = {}
    for path in portraits(data):
        image = read_image(path)
        landmarks = detect_landmarks(image, source=path)
        for side in sizes:
            matrix, size = render_module.output_transform((image.shape[1], image.shape[0]), landmarks, side, full=False)
            inside = cv2.warpAffine(np.full(image.shape[:2], 255, np.uint8), matrix, size, flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            if inside.min() == 255:
                continue
            frame = render_module.warp_portrait(image, matrix, size)
            results[path.stem, side] = (float(np.mean(inside < 255)), *along_edge_gradient(frame, inside, side))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="crop sides, px")
    parser.add_argument("--old-ref", help="also measure this commit's fill (its src/facecue/render.py)")
    args = parser.parse_args(argv)
    if not (args.data / "portraits").is_dir():
        raise SystemExit(f"{args.data}: the shared portraits are needed (portraits/, peers/)")
    import facecue.render as render

    new = measure(render, args.data, args.sizes)
    old = None
    if args.old_ref:
        from bench_render_ab import old_render_module

        with tempfile.TemporaryDirectory() as tmp:
            old = measure(old_render_module(args.old_ref, Path(tmp)), args.data, args.sizes)
    print("Along-edge gradient of the fill outside the portrait (8-bit levels per pixel; lower = smoother)")
    head = "| portrait | side | outside |" + (f" near edge, {args.old_ref} | whole fill, {args.old_ref} |" if old else "")
    print(head + " near edge | whole fill |")
    print("|---|--:|--:|" + ("--:|--:|" if old else "") + "--:|--:|")
    for (name, side), (share, near, whole) in new.items():
        before = f" {old[name, side][1]:.2f} | {old[name, side][2]:.2f} |" if old else ""
        print(f"| {name} | {side} | {share:.0%} |{before} {near:.2f} | {whole:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
