"""How open MediaPipe reads the mesh renderer's mouth, against how open it was drawn.

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/mouth_readback.py [--set talking|mead] [--frames 250] [--out FILE.md]

Self-reenactment of each real talking video in ``../shared/data/talking`` (``--set mead``: each
MEAD clip in ``../shared/data/mead_clips``, 256 px studio footage of 3 actors, 8 emotions: tune
renderer changes on these and keep the talking videos for checking): its first frame is the
portrait (landmarks from :func:`facecue.render.detect_portrait_landmarks`, as ``facecue render``
does), and the video's own MediaPipe landmarks (:func:`facecue.landmarks.track_landmarks`, first
``--frames`` frames) drive the mesh renderer (default mouth: synthesized interior; ``--mouth warp``
for the plain warp). The rendered frames are tracked again. Both landmark sets are normalized
(:class:`facecue.cues.FaceCues`) and the inner-lip gap (points 13-14, :func:`facecue.evaluate.mouth_opening`,
outer-eye-corner units) compared:

* drawn = the real video's own gap (what the renderer was asked to draw), read = the rendered video's;
* ratio = read / drawn percentile, p50 and p90; 1.00 = the renderer's mouth looks exactly as open as
  the real mouth at the same landmarks;
* upper / lower shift = mean (read - drawn) height of point 13 / 14 over frames, in eye units x 100
  (negative = read higher): where the excess opening comes from.

This isolates the renderer's appearance from stage 1: the same landmarks, real pixels vs mesh
pixels. A ratio above 1 means MediaPipe (and the mouth bar, which reads rendered videos with it)
sees a wider mouth than drawn.

The same frames also measure the mouth *interior* (the second table): inside the drawn inner-lip
polygon, the share of teeth-like pixels (HSV saturation < TEETH_MAX_SATURATION and value >
TEETH_MIN_VALUE x the cheeks' value) and of dark pixels (value < DARK_MAX_VALUE x the cheeks'), real
frame vs rendered frame, by tercile of the drawn gap (t0 = the most closed third). The summary is the
mean absolute real - rendered difference over clips and terciles. The third table compares the
teeth's colour (colour / luma ratio of the teeth-like pixels, real vs rendered, over the frames where
both show teeth). Needs the shared data.

A MEAD clip is rendered with its own emotion at its level (weight level / 3, as ``facecue generate``
passes an emotion and intensity to the renderer: the emotion's teeth and wrinkles); ``--no-emotion``
renders every clip without one, as the talking videos (neutral talk) always are.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

DATA = ROOT.parent / "shared" / "data"
INNER_UPPER, INNER_LOWER = 13, 14
CHEEK_POINTS = (50, 280)  # MediaPipe cheek points: the skin brightness the interior is compared with
TEETH_MAX_SATURATION = 0.3
TEETH_MIN_VALUE = 0.6
DARK_MAX_VALUE = 0.4
TEETH_MIN_PIXELS = 10  # teeth-like pixels a frame needs for its teeth colour to count
# Teeth in warm light are more saturated than TEETH_MAX_SATURATION allows (the talking videos' real
# teeth read this way: colour / luma 1.14-1.33 / 0.86-0.92 / 0.81-1.05), so their colour is read
# over this looser bound
TEETH_COLOUR_MAX_SATURATION = 0.45
# name -> (folder under --data, file pattern)
VIDEO_SETS = {"talking": ("talking", "*.mp4"), "mead": ("mead_clips", "*_level*_001.mp4")}


def _interior(frame: np.ndarray, points: np.ndarray, loop: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float] | None:
    """The pixels inside the inner-lip polygon ``points[loop]`` of one (H, W, 3) uint8 RGB frame
    (points: (478, 2+) pixels): their RGB (n, 3) and HSV value and saturation (n,) (0..255, 0..1) and
    the cheeks' median HSV value; None when the polygon holds fewer than 6 pixels."""
    import cv2

    mask = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(points[loop, :2]).astype(np.int32)], 1)
    inside = mask.astype(bool)
    if inside.sum() < 6:
        return None
    hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV).astype(np.float32)
    h, w = frame.shape[:2]
    probes = [hsv[max(int(y) - 3, 0) : min(int(y) + 4, h), max(int(x) - 3, 0) : min(int(x) + 4, w), 2].ravel()
              for x, y in points[list(CHEEK_POINTS), :2]]
    skin = float(np.median(np.concatenate(probes)))
    return frame[inside].astype(np.float32), hsv[..., 2][inside], hsv[..., 1][inside] / 255.0, skin


def _teeth_like(value: np.ndarray, saturation: np.ndarray, skin: float, max_saturation: float = TEETH_MAX_SATURATION
                ) -> np.ndarray:
    return (saturation < max_saturation) & (value > TEETH_MIN_VALUE * skin)


def interior_fractions(frame: np.ndarray, points: np.ndarray, loop: np.ndarray) -> tuple[float, float]:
    """(teeth, dark) shares of the pixels inside the inner-lip polygon ``points[loop]`` of one (H, W, 3)
    uint8 RGB frame (points: (478, 2+) pixels); NaN when the polygon holds fewer than 6 pixels."""
    return _fractions(_interior(frame, points, loop))


def teeth_chroma(frame: np.ndarray, points: np.ndarray, loop: np.ndarray) -> np.ndarray | None:
    """(3,) colour / luma ratio (Rec. 601 luma) of the mean teeth-like pixel inside the inner-lip
    polygon (as :func:`interior_fractions` counts them, up to ``TEETH_COLOUR_MAX_SATURATION``): the
    colour of the teeth, whatever their lightness; None when fewer than ``TEETH_MIN_PIXELS`` show."""
    return _chroma(_interior(frame, points, loop))


def _fractions(interior) -> tuple[float, float]:
    """:func:`interior_fractions` of an :func:`_interior`."""
    if interior is None:
        return float("nan"), float("nan")
    _, value, saturation, skin = interior
    return float(_teeth_like(value, saturation, skin).mean()), float((value < DARK_MAX_VALUE * skin).mean())


def _chroma(interior) -> np.ndarray | None:
    """:func:`teeth_chroma` of an :func:`_interior`."""
    if interior is None:
        return None
    rgb, value, saturation, skin = interior
    teeth = rgb[_teeth_like(value, saturation, skin, TEETH_COLOUR_MAX_SATURATION)]
    if len(teeth) < TEETH_MIN_PIXELS:
        return None
    from facecue.render import LUMA_WEIGHTS

    mean = teeth.mean(axis=0)
    return mean / max(float(mean @ LUMA_WEIGHTS), 1e-6)


def clip_expression(stem: str, n_frames: int) -> np.ndarray | None:
    """(n_frames, 8) float32 emotion weights (``EMOTIONS`` order) of a MEAD clip's own emotion at
    its level (level / ``MEAD_LEVELS``), for the renderer; None for a stem that names no emotion."""
    from facecue.constants import EMOTIONS, MEAD_LEVELS
    from facecue.evaluate import emotion_from_name, level_from_name

    emotion, level = emotion_from_name(stem), level_from_name(stem)
    if emotion is None or level is None:
        return None
    weights = np.zeros(len(EMOTIONS), np.float32)
    weights[EMOTIONS.index(emotion)] = min(level / MEAD_LEVELS, 1.0)
    return np.repeat(weights[None], n_frames, axis=0)


def readback(video: Path, frames: int, mouth: str, emotion: bool = True) -> dict:
    from facecue.cues import FaceCues
    from facecue.evaluate import mouth_opening
    from facecue.io import iter_video_frames
    from facecue.landmarks import track_landmarks
    from facecue.render import detect_portrait_landmarks, mesh_topology, render

    real_frames = [frame for _, frame in zip(range(frames), iter_video_frames(video))]
    size = (real_frames[0].shape[1], real_frames[0].shape[0])
    drawn, _ = track_landmarks(real_frames)
    portrait_points = detect_portrait_landmarks(real_frames[0])
    expression = clip_expression(video.stem, len(drawn)) if emotion else None
    rendered = list(render(real_frames[0], portrait_points, drawn, mouth=mouth, expression=expression))
    read, _ = track_landmarks(rendered)
    drawn_cues = FaceCues.from_landmarks(drawn, 25.0, size)
    read_cues = FaceCues.from_landmarks(read, 25.0, size)
    gap_drawn, gap_read = mouth_opening(drawn_cues), mouth_opening(read_cues)
    shift = read_cues.normalized[:, :, 1] - drawn_cues.normalized[:, :, 1]
    row = {"clip": video.stem, "frames": len(real_frames)}
    for q in (50, 90):
        row[f"drawn_p{q}"] = float(np.percentile(gap_drawn, q))
        row[f"read_p{q}"] = float(np.percentile(gap_read, q))
        row[f"ratio_p{q}"] = row[f"read_p{q}"] / row[f"drawn_p{q}"]
    row["upper_shift"] = float(shift[:, INNER_UPPER].mean())
    row["lower_shift"] = float(shift[:, INNER_LOWER].mean())
    loop = mesh_topology().mouth_loop
    # each frame's interior read once, for its shares and its teeth colour
    real_inside = [_interior(f, p, loop) for f, p in zip(real_frames, drawn)]
    rendered_inside = [_interior(f, p, loop) for f, p in zip(rendered, drawn)]
    real = np.array([_fractions(i) for i in real_inside])
    synthetic = np.array([_fractions(i) for i in rendered_inside])
    tercile = np.searchsorted(np.quantile(gap_drawn, [1 / 3, 2 / 3]), gap_drawn)
    # teeth colour: over the frames where both the real and the rendered mouth show teeth
    pairs = [(_chroma(a), _chroma(b)) for a, b in zip(real_inside, rendered_inside)]
    pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
    row["teeth_colour_frames"] = len(pairs)
    if pairs:
        row["real_teeth_colour"] = np.median([a for a, _ in pairs], axis=0).tolist()
        row["rendered_teeth_colour"] = np.median([b for _, b in pairs], axis=0).tolist()
    for t in range(3):
        for k, name in enumerate(("teeth", "dark")):
            row[f"real_{name}_t{t}"] = float(np.nanmean(real[tercile == t, k]))
            row[f"rendered_{name}_t{t}"] = float(np.nanmean(synthetic[tercile == t, k]))
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder (its talking/ videos)")
    parser.add_argument("--frames", type=int, default=250, help="frames per video (default 250, 10 s)")
    parser.add_argument("--mouth", default="synthesize", choices=("synthesize", "warp"),
                        help="the mesh renderer's mouth interior (default: synthesize, as facecue generate)")
    parser.add_argument("--set", dest="video_set", default="talking", choices=sorted(VIDEO_SETS),
                        help="talking: the 7 real talking videos (default); mead: the 24 MEAD clips "
                             "(calibration material)")
    parser.add_argument("--no-emotion", action="store_true",
                        help="render MEAD clips without their own emotion (no emotion's teeth or wrinkles)")
    parser.add_argument("--out", type=Path, help="also write the markdown report here")
    args = parser.parse_args(argv)
    folder, pattern = VIDEO_SETS[args.video_set]
    videos = sorted((args.data / folder).glob(pattern))
    if not videos:
        print(f"no videos matching {args.data / folder / pattern}: nothing to measure", file=sys.stderr)
        return 2
    started = time.perf_counter()
    rows = []
    for video in videos:
        row = readback(video, args.frames, args.mouth, emotion=not args.no_emotion)
        rows.append(row)
        print(f"{row['clip']}: read/drawn p50 {row['ratio_p50']:.2f} p90 {row['ratio_p90']:.2f}", file=sys.stderr,
              flush=True)
    command = " ".join(["python benchmarks/mouth_readback.py", *(sys.argv[1:] if argv is None else argv)])
    lines = [
        "# Mouth read-back: drawn vs read inner-lip gap (mesh renderer)",
        "",
        f"Made by `{command}` ({time.strftime('%Y-%m-%d')}; mouth interior `{args.mouth}`; "
        f"videos: `{args.video_set}`; {'no emotion' if args.no_emotion else 'MEAD clips with their own emotion'}). "
        "Each real "
        "video's first frame is re-driven by the video's *own* landmarks; MediaPipe then reads the rendered "
        "frames. Gap = inner-lip gap / outer-eye-corner distance (normalized landmarks); ratio = read / drawn; "
        "shifts = mean read - drawn height of the inner-lip middle points, eye units x 100 (negative = higher). "
        "See the script's docstring.",
        "",
        "| clip | frames | drawn p50 | read p50 | ratio p50 | drawn p90 | read p90 | ratio p90 | upper lip shift | "
        "lower lip shift |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        lines.append(f"| {r['clip']} | {r['frames']} | {r['drawn_p50']:.3f} | {r['read_p50']:.3f} | "
                     f"{r['ratio_p50']:.2f} | {r['drawn_p90']:.3f} | {r['read_p90']:.3f} | {r['ratio_p90']:.2f} | "
                     f"{100 * r['upper_shift']:+.1f} | {100 * r['lower_shift']:+.1f} |")
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("ratio_p50", "ratio_p90", "upper_shift", "lower_shift")}
    lines += [f"| **mean of {len(rows)}** | | | | **{mean['ratio_p50']:.2f}** | | | **{mean['ratio_p90']:.2f}** | "
              f"{100 * mean['upper_shift']:+.1f} | {100 * mean['lower_shift']:+.1f} |", "",
              "## Mouth interior: real vs rendered pixels inside the inner lips", "",
              f"Share of teeth-like pixels (saturation < {TEETH_MAX_SATURATION}, value > {TEETH_MIN_VALUE} x the "
              f"cheeks') and dark pixels (value < {DARK_MAX_VALUE} x the cheeks') inside the drawn inner-lip polygon, "
              "real / rendered, by tercile of the drawn gap (t0 = the most closed third).", "",
              "| clip | teeth t0 | teeth t1 | teeth t2 | dark t0 | dark t1 | dark t2 |",
              "|---|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        cells = [f"{r[f'real_{name}_t{t}']:.2f} / {r[f'rendered_{name}_t{t}']:.2f}"
                 for name in ("teeth", "dark") for t in range(3)]
        lines.append(f"| {r['clip']} | " + " | ".join(cells) + " |")
    error = {name: [r[f"real_{name}_t{t}"] - r[f"rendered_{name}_t{t}"] for r in rows for t in range(3)]
             for name in ("teeth", "dark")}
    lines += ["", "Mean |real - rendered| over clips and terciles (signed mean; > 0 = the real mouth shows more): "
              + ", ".join(f"{name} **{np.mean(np.abs(d)):.3f}** ({np.mean(d):+.3f})" for name, d in error.items())
              + ".", "", "## Teeth colour: real vs rendered", "",
              "Colour / luma ratio (R, G, B; Rec. 601 luma) of the mean teeth-like pixel (saturation < "
              f"{TEETH_COLOUR_MAX_SATURATION}: teeth in warm light), median over the frames "
              f"where both the real and the rendered mouth show at least {TEETH_MIN_PIXELS} teeth-like pixels; "
              "error = the largest channel difference.", "",
              "| clip | frames | real | rendered | error |", "|---|--:|---|---|--:|"]
    errors = []
    for r in rows:
        if "real_teeth_colour" not in r:
            lines.append(f"| {r['clip']} | 0 | - | - | - |")
            continue
        real_c, rendered_c = np.array(r["real_teeth_colour"]), np.array(r["rendered_teeth_colour"])
        errors.append(float(np.abs(real_c - rendered_c).max()))
        lines.append(f"| {r['clip']} | {r['teeth_colour_frames']} | {' / '.join(f'{c:.3f}' for c in real_c)} | "
                     f"{' / '.join(f'{c:.3f}' for c in rendered_c)} | {errors[-1]:.3f} |")
    if errors:
        lines += ["", f"Mean error over {len(errors)} clips: **{np.mean(errors):.3f}**."]
    lines += ["", f"Measured in {(time.perf_counter() - started) / 60:.1f} minutes."]
    report = "\n".join(lines)
    print(report)
    if args.out:
        args.out.write_text(report + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
