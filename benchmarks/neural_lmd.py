"""F-LMD-MP / M-LMD-MP of the neural renderer's generated held-out frames (needs MediaPipe: CPU machine).

The GPU run (``scripts/gpu_neural_renderer.sh``) writes ``heldout_detector.npz`` and
``heldout_mapper.npz`` (JPEG bytes of the generated held-out frames, their clip ids and frame
indices). This script tracks MediaPipe landmarks on them and on the real frames of the same cache,
clip by clip, and reports the landmark distances of :func:`facecue.evaluate.lmd` (pixels at
256 x 256), with the "copy the source frame" baseline (how far the faces move at all).

    PYTHONPATH=src .venv/bin/python benchmarks/neural_lmd.py RUN_OUT_DIR [--cache .gpu_cache] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from facecue.errors import NoFaceError  # noqa: E402
from facecue.evaluate import lmd  # noqa: E402
from facecue.landmarks import track_landmarks  # noqa: E402
from facecue.neural import _jpeg_decoder, load_frame_cache  # noqa: E402


def read_generated(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """clip id -> (indices (N,), frames (N, S, S, 3) uint8)."""
    decode = _jpeg_decoder()
    with np.load(path, allow_pickle=False) as data:
        blob, offsets, ids, idx = data["jpeg"], data["offsets"], data["clip_ids"], data["indices"]
        frames = [decode(blob[offsets[i] : offsets[i + 1]].tobytes()) for i in range(len(idx))]
    out: dict[str, tuple[list, list]] = {}
    for clip_id, i, f in zip(ids, idx, frames):
        out.setdefault(str(clip_id), ([], []))
        out[str(clip_id)][0].append(int(i))
        out[str(clip_id)][1].append(f)
    return {k: (np.array(v[0]), np.stack(v[1])) for k, v in out.items()}


def resize(frames: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if frames.shape[1] == size:
        return frames
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="folder with heldout_detector.npz / heldout_mapper.npz")
    ap.add_argument("--cache", default=str(REPO / ".gpu_cache"), help="the frame cache the run used")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    clips = {c.clip_id: c for c in load_frame_cache(args.cache)}
    runs = {name: read_generated(Path(args.run) / f"heldout_{name}.npz") for name in ("detector", "mapper")}
    results: dict[str, dict] = {}
    tracks: dict[str, list] = {"real": [], "detector": [], "mapper": [], "source": []}
    for clip_id, (idx, _) in runs["detector"].items():
        clip = clips[clip_id]
        size = runs["detector"][clip_id][1].shape[1]
        real = resize(clip.frames[idx], size)
        source = resize(clip.frames[clip.train_indices[:1]], size)
        # the source is tracked as the first frame of the real sequence (same tracker state as a video)
        real_lmk, real_ok = track_landmarks(np.concatenate([source, real]), source=clip_id)
        tracks["source"].append(np.repeat(real_lmk[:1], len(idx), axis=0))
        tracks["real"].append(real_lmk[1:])
        ok = real_ok[1:].copy()
        for name in ("detector", "mapper"):
            gen_idx, gen = runs[name][clip_id]
            assert np.array_equal(gen_idx, idx)
            try:
                lmk, found = track_landmarks(gen, source=f"{clip_id} ({name})")
            except NoFaceError:  # an untrained (smoke-test) generator
                lmk, found = np.zeros((len(gen), 478, 3), np.float32), np.zeros(len(gen), bool)
            tracks[name].append(lmk)
            ok &= found
        tracks.setdefault("ok", []).append(ok)
    ok = np.concatenate(tracks["ok"])
    if not ok.any():
        print("no generated frame has a face MediaPipe can find: nothing to measure")
        return 1
    real = np.concatenate(tracks["real"])[ok]
    for name in ("detector", "mapper", "source"):
        pred = np.concatenate(tracks[name])[ok]
        sizes = {"pred_size": (size, size), "gt_size": (size, size)}  # scaled to 256 x 256
        results[name] = {"F-LMD": lmd(pred, real, "face", **sizes), "M-LMD": lmd(pred, real, "mouth", **sizes),
                         "frames": int(ok.sum())}
    labels = {"detector": "generator, detector keypoints of the real frame",
              "mapper": "generator, mapper from landmarks (relative; the neural renderer)",
              "source": "copy the source frame (baseline)"}
    print(f"{'':62s} F-LMD-MP  M-LMD-MP  (px at 256, {int(ok.sum())} of {len(ok)} frames with a face in all three)")
    for name, r in results.items():
        print(f"{labels[name]:62s} {r['F-LMD']:8.3f}  {r['M-LMD']:8.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
