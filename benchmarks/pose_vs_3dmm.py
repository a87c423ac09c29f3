"""Head pose of facecue vs. the independent 3DMM fit of the 24 real MEAD clips.

Usage: python benchmarks/pose_vs_3dmm.py [--data ../shared/data] [--min-range 3]

For each clip and axis whose 3DMM peak-to-peak exceeds --min-range degrees, prints the
Pearson r between facecue's angle and the 3DMM angle (``coeff[:, 224:227]`` = pitch, yaw, roll
in radians; signs conventions differ, so |r| is what counts), then the median |r| per axis.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

AXES = ("yaw", "pitch", "roll")


def compare(data: Path, min_range: float = 3.0, landmarks_cache: dict | None = None, **normalize_kwargs) -> dict:
    from facecue.cues import normalize, rotation_to_angles

    rows = []
    for clip in sorted((data / "mead_clips").glob("*_level*_001.mp4")):
        coeff = np.load(data / "mead_3dmm" / f"{clip.stem}.npy")
        ref = np.degrees(coeff[:, [225, 224, 226]])  # -> yaw, pitch, roll
        if landmarks_cache is not None and clip.stem in landmarks_cache:
            points = landmarks_cache[clip.stem]
        else:
            from facecue.io import iter_video_frames
            from facecue.landmarks import track_landmarks

            points, _ = track_landmarks(iter_video_frames(clip), source=clip)
            if landmarks_cache is not None:
                landmarks_cache[clip.stem] = points
        n = min(len(points), len(ref))
        _, _, rotation, _ = normalize(points[:n], **normalize_kwargs)
        ours = rotation_to_angles(rotation)
        row = {"clip": clip.stem, "frames": n}
        for i, axis in enumerate(AXES):
            p2p = float(np.ptp(ref[:n, i]))
            row[f"{axis}_p2p"] = p2p
            row[f"{axis}_r"] = float(np.corrcoef(ours[:, i], ref[:n, i])[0, 1]) if p2p > min_range else None
        rows.append(row)
    summary = {}
    for axis in AXES:
        values = [abs(r[f"{axis}_r"]) for r in rows if r[f"{axis}_r"] is not None]
        summary[axis] = (float(np.median(values)) if values else float("nan"), len(values))
    return {"rows": rows, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--min-range", type=float, default=3.0, help="degrees of 3DMM peak-to-peak to include an axis")
    args = parser.parse_args()
    if not (args.data / "mead_3dmm").is_dir():
        raise SystemExit(f"{args.data}: no mead_3dmm folder (the shared MEAD sample is needed)")
    result = compare(args.data, args.min_range)
    print("| clip | frames | yaw p2p | yaw r | pitch p2p | pitch r | roll p2p | roll r |")
    print("|---|---|---|---|---|---|---|---|")
    fmt = lambda v: "-" if v is None else f"{v:+.3f}"  # noqa: E731
    for r in result["rows"]:
        print(f"| {r['clip']} | {r['frames']} | " + " | ".join(f"{r[a + '_p2p']:.1f} | {fmt(r[a + '_r'])}" for a in AXES) + " |")
    print()
    for axis, (median, count) in result["summary"].items():
        print(f"median |r| {axis}: {median:.3f} over {count} clips")


if __name__ == "__main__":
    main()
