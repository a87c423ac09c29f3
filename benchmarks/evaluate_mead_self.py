"""Sanity of `facecue evaluate` on the 24 real MEAD clips: self vs "repeat first frame".

Usage: python benchmarks/evaluate_mead_self.py [--data ../shared/data] [--out DIR] [--limit N]

Two runs of :func:`facecue.evaluate.evaluate_videos` with the real clips as ground truth:

* **self**: each clip against itself; expected PSNR capped (100 dB, identical frames), SSIM 1,
  M-/F-LMD-MP 0, pose and gaze errors 0;
* **repeat first frame**: each clip against a video made of its first frame repeated (written
  with facecue.io, H.264 at facecue.io.VIDEO_CRF, into a temporary folder); expected worse on every metric.

Lip sync uses ``mead_clips/<stem>.wav`` where it exists (only M030_sad_level3_001). Prints the
mean table of both runs, the number of clips where "repeat" is worse metric by metric, the
mean liveliness of gt vs "repeat", and the wall time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

METRICS = (  # key, label, True if higher is better
    ("psnr", "PSNR dB", True),
    ("ssim", "SSIM", True),
    ("m_lmd_mp", "M-LMD-MP px", False),
    ("f_lmd_mp", "F-LMD-MP px", False),
    ("pose_err_yaw", "pose err yaw", False),
    ("pose_err_pitch", "pose err pitch", False),
    ("pose_err_roll", "pose err roll", False),
    ("gaze_err_yaw", "gaze err yaw", False),
    ("gaze_err_pitch", "gaze err pitch", False),
)
LIVELY = ("blinks_per_min", "head_std_yaw", "head_std_pitch", "head_std_roll", "gaze_std_yaw", "jitter")


def write_repeat_first_frame(clips: list[Path], folder: Path) -> None:
    from facecue import io

    for clip in clips:
        video = io.read_video(clip, with_audio=False)
        io.write_video(folder / clip.name, np.repeat(video.frames[:1], len(video.frames), axis=0), video.fps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, help="keep the two reports here (default: a temporary folder)")
    parser.add_argument("--limit", type=int, help="only the first N clips")
    args = parser.parse_args()

    from facecue.evaluate import evaluate_videos

    mead = args.data / "mead_clips"
    clips = sorted(mead.glob("*_level*_001.mp4"))[: args.limit]
    if not clips:
        print(f"no MEAD clips under {mead}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        gt_dir, repeat_dir = tmp / "gt", tmp / "repeat"
        gt_dir.mkdir()
        repeat_dir.mkdir()
        for clip in clips:
            (gt_dir / clip.name).symlink_to(clip)
        write_repeat_first_frame(clips, repeat_dir)
        out = args.out or tmp / "reports"
        runs, seconds = {}, {}
        for name, pred_dir in (("self", gt_dir), ("repeat first frame", repeat_dir)):
            started = time.perf_counter()
            runs[name] = evaluate_videos(pred_dir, gt_dir, out / name.replace(" ", "_"), audio_dir=mead, progress=False)
            seconds[name] = time.perf_counter() - started

    print(f"{len(clips)} MEAD clips (real, 256x256, 25 fps); lip sync audio where mead_clips/<stem>.wav exists\n")
    header = "| run | " + " | ".join(label for _, label, _ in METRICS) + " | Sync-r | s/clip |"
    print(header)
    print("|" + "---|" * (len(METRICS) + 3))
    for name, report in runs.items():
        cells = [f"{report.mean.get(key, float('nan')):.4f}" if key == "ssim" else f"{report.mean.get(key, float('nan')):.3f}"
                 for key, _, _ in METRICS]
        sync = report.mean.get("sync_r")
        print(f"| {name} | " + " | ".join(cells) + f" | {'n/a' if sync is None else f'{sync:.3f}'} | "
              f"{seconds[name] / len(report.results):.1f} |")

    self_by = {r["stem"]: r for r in runs["self"].results}
    rep_by = {r["stem"]: r for r in runs["repeat first frame"].results}
    print("\nclips where 'repeat first frame' is worse than 'self' (strictly):")
    all_ok = True
    for key, label, higher in METRICS:
        stems = [s for s in self_by if key in self_by[s] and key in rep_by.get(s, {})]
        worse = sum((rep_by[s][key] < self_by[s][key]) if higher else (rep_by[s][key] > self_by[s][key]) for s in stems)
        all_ok &= worse == len(stems) == len(clips)
        print(f"  {label:16s} {worse}/{len(stems)}")
    sad = "M030_sad_level3_001"
    if sad in rep_by and "sync_r" in rep_by[sad]:
        print(f"\nlip sync on {sad} with its real audio: gt/self Sync-r {self_by[sad]['sync_r']:.3f} "
              f"(lag {self_by[sad]['sync_lag']}), repeat first frame {rep_by[sad]['sync_r']:.3f} (lag {rep_by[sad]['sync_lag']})")

    print("\nmean liveliness, real clips (gt) vs repeat first frame:")
    gt_l = runs["self"].mean.get("gt_liveliness", {})
    rep_l = runs["repeat first frame"].mean.get("pred_liveliness", {})
    print("| clip set | " + " | ".join(LIVELY) + " |")
    print("|" + "---|" * (len(LIVELY) + 1))
    for name, stats in (("real (gt)", gt_l), ("repeat first frame", rep_l)):
        print(f"| {name} | " + " | ".join(f"{stats.get(k, float('nan')):.4f}" if k == "jitter" else f"{stats.get(k, float('nan')):.2f}"
                                          for k in LIVELY) + " |")
    print(f"\nexpected ordering on every metric and clip: {'yes' if all_ok else 'NO'}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
