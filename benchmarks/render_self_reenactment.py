"""Self-reenactment of the mesh renderer on the 24 MEAD clips, against "repeat the first frame".

For each clip (256x256, 25 fps): the first frame is the portrait (its landmarks from
:func:`facecue.render.detect_portrait_landmarks`, as ``facecue render`` does); the clip's own cues
(:func:`facecue.extract_cues`) drive it through their relocated landmarks (``cues.landmarks()``);
the rendered frames are compared with the real ones. The baseline repeats the first frame.

Metrics (per frame, then averaged over the clip's frames, then over clips):

* PSNR (dB, each frame capped at 100) and SSIM: :func:`facecue.evaluate.psnr` /
  :func:`facecue.evaluate.ssim` on the full 256x256 RGB frames.
* Landmark distances, landmarks re-detected by MediaPipe on rendered and real frames
  (:func:`facecue.landmarks.track_landmarks`), each frame's points centred on their own mean,
  mean Euclidean distance in pixels at 256 px:

  - F-LMD-MP / M-LMD-MP: :func:`facecue.evaluate.lmd` on the 68-point subset
    :data:`facecue.evaluate.MP68` (face: 68 points, mouth: points 48-67), the project's metric;
  - F-LMD-468 / M-LMD-lips: the same recipe over all 468 mesh points, and over the 40 points of
    MediaPipe's ``FACEMESH_LIPS``.

Run::

    PYTHONPATH=src .venv/bin/python benchmarks/render_self_reenactment.py [--strips out/reenact]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from facecue.constants import N_MESH_POINTS
from facecue.cues import extract_cues
from facecue.evaluate import lmd, mean_psnr, video_psnr, video_ssim
from facecue.io import iter_video_frames
from facecue.landmarks import track_landmarks
from facecue.render import detect_portrait_landmarks, render

REPO = Path(__file__).resolve().parents[1]
CLIPS = REPO.parent / "shared" / "data" / "mead_clips"


def lips_indices() -> np.ndarray:
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_LIPS

    return np.array(sorted({i for edge in FACEMESH_LIPS for i in edge}))


def centred_distance(pred: np.ndarray, real: np.ndarray, points: np.ndarray) -> float:
    """Mean over frames and ``points`` of the distance between per-frame-centred point sets
    (centred on the mean of all 468 mesh points, as LMD centres on all its points)."""
    p = pred[:, :N_MESH_POINTS, :2].astype(np.float64)
    g = real[:, :N_MESH_POINTS, :2].astype(np.float64)
    p = p - p.mean(axis=1, keepdims=True)
    g = g - g.mean(axis=1, keepdims=True)
    return float(np.linalg.norm(p[:, points] - g[:, points], axis=-1).mean())


def evaluate(pred: np.ndarray, real: np.ndarray, real_points: np.ndarray, lips: np.ndarray) -> dict[str, float]:
    pred_points, _ = track_landmarks(list(pred))
    size = (real.shape[2], real.shape[1])
    return {
        "psnr": mean_psnr(video_psnr(pred, real)),
        "ssim": float(video_ssim(pred, real).mean()),
        "flmd": lmd(pred_points, real_points, "face", pred_size=size, gt_size=size),
        "mlmd": lmd(pred_points, real_points, "mouth", pred_size=size, gt_size=size),
        "flmd468": centred_distance(pred_points, real_points, np.arange(N_MESH_POINTS)),
        "mlmdlips": centred_distance(pred_points, real_points, lips),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", default=str(CLIPS), help="folder of the MEAD clips")
    parser.add_argument("--limit", type=int, help="only the first N clips")
    parser.add_argument("--strips", help="also save, per clip, a PNG strip real / rendered at 5 moments here")
    args = parser.parse_args()
    clips = sorted(Path(args.clips).glob("*_level*_001.mp4"))[: args.limit]
    if not clips:
        raise SystemExit(f"no MEAD clips in {args.clips}")
    lips = lips_indices()
    keys = ("psnr", "ssim", "flmd", "mlmd", "flmd468", "mlmdlips")
    rows = []
    started = time.perf_counter()
    render_s = 0.0
    n_frames = 0
    for clip in clips:
        real = np.stack(list(iter_video_frames(clip)))
        cues = extract_cues(clip)
        driving = cues.landmarks()
        n = min(len(real), len(driving))
        real, driving = real[:n], driving[:n]
        t0 = time.perf_counter()
        portrait_points = detect_portrait_landmarks(real[0])
        pred = np.stack(list(render(real[0], portrait_points, driving)))
        render_s += time.perf_counter() - t0
        n_frames += n
        baseline = np.repeat(real[:1], n, axis=0)
        real_points, _ = track_landmarks(list(real))
        mesh = evaluate(pred, real, real_points, lips)
        base = evaluate(baseline, real, real_points, lips)
        rows.append((clip.stem, n, mesh, base))
        if args.strips:
            out = Path(args.strips)
            out.mkdir(parents=True, exist_ok=True)
            picks = np.linspace(0, n - 1, 5).round().astype(int)
            strip = np.vstack([np.hstack(list(real[picks])), np.hstack(list(pred[picks]))])
            cv2.imwrite(str(out / f"{clip.stem}.png"), strip[..., ::-1])
        print(f"{clip.stem}: F-LMD {mesh['flmd']:.2f} vs {base['flmd']:.2f}, "
              f"M-LMD {mesh['mlmd']:.2f} vs {base['mlmd']:.2f}", flush=True)

    print()
    print("Mesh renderer (self-reenactment, first frame as portrait) vs. baseline 'repeat the first frame'.")
    print("LMD in px at 256x256 (lower is better); -MP: 68-point MediaPipe subset (facecue.evaluate.lmd); "
          "-468 / -lips: all mesh points / FACEMESH_LIPS.")
    print()
    print("| clip | frames | PSNR mesh | PSNR base | SSIM mesh | SSIM base | F-LMD-MP mesh | F-LMD-MP base | "
          "M-LMD-MP mesh | M-LMD-MP base | F-LMD-468 mesh | F-LMD-468 base | M-LMD-lips mesh | M-LMD-lips base |")
    print("|---|---|" + "---|" * 12)

    def cells(mesh, base):
        out = []
        for key, fmt in zip(keys, ("{:.2f}", "{:.3f}", "{:.2f}", "{:.2f}", "{:.2f}", "{:.2f}")):
            out += [fmt.format(mesh[key]), fmt.format(base[key])]
        return " | ".join(out)

    for stem, n, mesh, base in rows:
        print(f"| {stem} | {n} | {cells(mesh, base)} |")
    mean_mesh = {k: float(np.mean([r[2][k] for r in rows])) for k in keys}
    mean_base = {k: float(np.mean([r[3][k] for r in rows])) for k in keys}
    print(f"| **mean of {len(rows)}** | {sum(r[1] for r in rows)} | {cells(mean_mesh, mean_base)} |")
    wins_f = sum(r[2]["flmd"] < r[3]["flmd"] for r in rows)
    wins_m = sum(r[2]["mlmd"] < r[3]["mlmd"] for r in rows)
    print()
    print(f"mesh beats the baseline on F-LMD-MP in {wins_f}/{len(rows)} clips, on M-LMD-MP in {wins_m}/{len(rows)}; "
          f"rendering {n_frames / render_s:.0f} frames/s; total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
