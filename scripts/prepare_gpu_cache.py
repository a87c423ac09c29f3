"""Build the compact frame cache that travels to the GPU machine (which has no MediaPipe / PyAV).

    PYTHONPATH=src .venv/bin/python scripts/prepare_gpu_cache.py            # -> .gpu_cache/ (~31 MB)

1. The 24 MEAD clips (``<shared>/mead_clips/*_level*_001.mp4``) are preprocessed here into a full
   frame cache (``cache/mead_frames``: 256 px aligned crops, MediaPipe landmarks, the last 1.0 s of
   every clip held out), unless it is there already.
2. Every clip is rewritten into ``.gpu_cache/`` with JPEG frames (quality 85) and float16
   landmarks, and the total is checked against the budget (the run tool carries at most 64 MiB).
3. ``.gpu_cache/`` is added to ``.git/info/exclude`` (not to .gitignore): it never gets committed.

Then: ``scripts/gpu_neural_renderer.sh`` on the GPU machine, with ``.gpu_cache`` carried.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from facecue.neural import load_frame_cache, preprocess_frames, save_frame_clip  # noqa: E402

BUDGET_MB = 40.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", default=str(REPO.parent / "shared" / "data" / "mead_clips"),
                        help="folder with the MEAD clips (default ../shared/data/mead_clips)")
    parser.add_argument("--pattern", default="*_level*_001.mp4")
    parser.add_argument("--full-cache", default=str(REPO / "cache" / "mead_frames"),
                        help="full-quality cache (built if missing)")
    parser.add_argument("--out", default=str(REPO / ".gpu_cache"))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--holdout-seconds", type=float, default=1.0)
    parser.add_argument("--jpeg-quality", type=int, default=85)
    args = parser.parse_args()

    started = time.perf_counter()
    videos = sorted(Path(args.videos).glob(args.pattern))
    if not videos:
        print(f"no videos matching {args.pattern} in {args.videos}", file=sys.stderr)
        return 2
    files = preprocess_frames(videos, args.full_cache, size=args.size, holdout_seconds=args.holdout_seconds,
                              progress=True)
    clips = load_frame_cache(files)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.npz"):
        old.unlink()
    for clip in clips:
        save_frame_clip(out / f"{clip.clip_id}.npz", clip, jpeg_quality=args.jpeg_quality, half_landmarks=True)
    total = sum(f.stat().st_size for f in out.glob("*.npz")) / 1e6
    n_frames = sum(c.n_frames for c in clips)
    held = sum(len(c.heldout_indices) for c in clips)
    print(f"{out}: {len(clips)} clips, {n_frames} frames ({held} held out), {total:.1f} MB "
          f"({time.perf_counter() - started:.1f} s)")

    exclude = REPO / ".git" / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    lines = exclude.read_text().splitlines() if exclude.exists() else []
    if ".gpu_cache/" not in lines:
        exclude.write_text("\n".join(lines + [".gpu_cache/"]) + "\n")
    if total > BUDGET_MB:
        print(f"the cache is {total:.1f} MB, over the {BUDGET_MB} MB budget: lower --jpeg-quality", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
