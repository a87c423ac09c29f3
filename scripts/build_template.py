"""Build facecue's canonical face template (src/facecue/assets/face_template.npz) from real faces.

Usage: python scripts/build_template.py [--data ../shared/data] [--out src/facecue/assets/face_template.npz]

Method: MediaPipe landmarks of every frame of the 24 real MEAD clips (3 actors x 8 emotions,
front view, actors facing the camera) -> generalized Procrustes alignment on the 468 mesh points
-> per-point median shape -> rotated to the frames' mean head orientation (so "facing the camera"
means the MEAD actors' average orientation) -> made left/right symmetric (mirror about the
midline, average), which zeroes yaw and roll -> centred on the stable points, scaled so the outer
eye corners are 1 unit apart.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from facecue.constants import LEFT_EYE_CORNERS, N_LANDMARKS, N_MESH_POINTS, RIGHT_EYE_CORNERS  # noqa: E402
from facecue.cues import STABLE_POINTS, FaceTemplate, fit_similarity  # noqa: E402

# Points on the face's midline in the MediaPipe topology (forehead to chin).
MIDLINE = (10, 151, 9, 8, 168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 164, 0, 11, 12, 13, 14, 15, 16, 17, 18, 200, 199, 175, 152)


def load_frames(data: Path) -> np.ndarray:
    from facecue.io import iter_video_frames
    from facecue.landmarks import track_landmarks

    clips = sorted((data / "mead_clips").glob("*_level*_001.mp4"))
    if not clips:
        raise SystemExit(f"no MEAD clips under {data / 'mead_clips'}")
    all_points = []
    for clip in clips:
        points, valid = track_landmarks(iter_video_frames(clip), source=clip)
        all_points.append(points[valid])
        print(f"{clip.name}: {valid.sum()} frames", flush=True)
    return np.concatenate(all_points).astype(np.float64)


def procrustes_mean(frames: np.ndarray, iterations: int = 5) -> np.ndarray:
    mesh = slice(0, N_MESH_POINTS)
    mean = frames[0].copy()
    for _ in range(iterations):
        s, r, t = fit_similarity(mean[mesh], frames[:, mesh])
        # bring every frame into the mean's frame: inverse similarity
        aligned = np.einsum("bji,bkj->bki", r, frames - t[:, None]) / s[:, None, None]
        new = np.median(aligned, axis=0)
        # keep the scale fixed to avoid shrinking
        new *= np.sqrt((mean[mesh] ** 2).sum() / (new[mesh] ** 2).sum())
        mean = new
    # rotate to the frames' mean head orientation (chordal mean of the rotations)
    _, r, _ = fit_similarity(mean[mesh], frames[:, mesh])
    u, _, vt = np.linalg.svd(r.mean(axis=0))
    mean_rotation = u @ np.diag([1, 1, np.linalg.det(u @ vt)]) @ vt
    centre = mean.mean(axis=0)
    return (mean - centre) @ mean_rotation.T


def mirror_pairs(points: np.ndarray, centre_x: float) -> np.ndarray:
    reflected = points.copy()
    reflected[:, 0] = 2 * centre_x - reflected[:, 0]
    pairs = np.empty(len(points), dtype=np.int64)
    for group in (np.arange(N_MESH_POINTS), np.arange(N_MESH_POINTS, N_LANDMARKS)):
        d = np.linalg.norm(reflected[group, None] - points[None, group], axis=-1)
        pairs[group] = group[d.argmin(axis=1)]
    return pairs


def symmetrize(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    for _ in range(3):
        centre_x = points[list(MIDLINE), 0].mean()
        pairs = mirror_pairs(points, centre_x)
        reflected = points[pairs].copy()
        reflected[:, 0] = 2 * centre_x - reflected[:, 0]
        points = 0.5 * (points + reflected)
    bad = np.flatnonzero(pairs[pairs] != np.arange(len(pairs)))
    if len(bad):
        print(f"warning: {len(bad)} points without a consistent mirror partner", flush=True)
    return points, pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "src" / "facecue" / "assets" / "face_template.npz")
    parser.add_argument("--cache", type=Path, default=None, help="npz of precomputed (N, 478, 3) frames (key 'frames')")
    args = parser.parse_args()
    if args.cache and args.cache.exists():
        frames = np.load(args.cache)["frames"]
    else:
        frames = load_frames(args.data)
        if args.cache:
            np.savez_compressed(args.cache, frames=frames.astype(np.float32))
    mean = procrustes_mean(frames)
    mean, pairs = symmetrize(mean)
    stable = np.array(STABLE_POINTS)
    mean -= mean[stable].mean(axis=0)
    mean /= np.linalg.norm(mean[RIGHT_EYE_CORNERS[0]] - mean[LEFT_EYE_CORNERS[0]])
    template = FaceTemplate(
        points=mean.astype(np.float32),
        stable=stable,
        mirror=pairs,
        description=f"median of {len(frames)} MediaPipe frames of 24 real MEAD clips (3 actors), Procrustes-aligned, symmetrized",
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    template.save(args.out)
    print(f"wrote {args.out} from {len(frames)} frames")


if __name__ == "__main__":
    main()
