"""Neural vs. mesh renderer on the same held-out frames: PSNR, SSIM, F-LMD-MP, M-LMD-MP (CPU machine).

The GPU run (``scripts/gpu_neural_renderer.sh``) writes ``heldout_detector.npz`` and
``heldout_mapper.npz`` (JPEG bytes of the generated held-out frames, their clip ids and frame
indices). This script

* renders the same held-out frames with the mesh renderer (:func:`facecue.render.render`): the
  same source frame (the clip's first training frame; its landmarks found by
  :func:`facecue.render.detect_portrait_landmarks`, as ``facecue render`` does), driven by the
  same tracked landmarks the mapper reads; its frames go through the same JPEG round trip
  (``neural_gpu_run.jpeg_bytes``) as the neural ones, so that every row is measured alike;
* measures PSNR / SSIM (:mod:`facecue.evaluate`) of every row against the real cache frames, and
  tracks MediaPipe landmarks on all of them for :func:`facecue.evaluate.lmd` (pixels at 256 x 256);
* adds the "copy the source frame" baseline (how far the faces move at all).

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
from facecue.evaluate import lmd, mean_psnr, video_psnr, video_ssim  # noqa: E402
from facecue.landmarks import track_landmarks  # noqa: E402
from facecue.neural import _jpeg_decoder, load_frame_cache  # noqa: E402
from facecue.render import detect_portrait_landmarks, render  # noqa: E402
from neural_gpu_run import jpeg_bytes  # noqa: E402  (benchmarks/, beside this script)


def jpeg_round_trip(frames: np.ndarray) -> np.ndarray:
    """``frames`` encoded and decoded as the GPU run stores its generated frames."""
    decode = _jpeg_decoder()
    return np.stack([decode(jpeg_bytes(f)) for f in frames])


def mesh_heldout(clip, idx: np.ndarray, size: int) -> np.ndarray:
    """The mesh renderer's frames for ``clip``'s held-out ``idx`` from its first training frame."""
    portrait = clip.frames[int(clip.train_indices[0])]
    points = detect_portrait_landmarks(portrait)
    frames = np.stack(list(render(portrait, points, clip.landmarks[idx].astype(np.float32))))
    return jpeg_round_trip(resize(frames, size))


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
    ap.add_argument("--sheet", help="also write a contact sheet (real / neural renderer / mesh) here (.png/.jpg)")
    ap.add_argument("--video", help="also write the held-out frames of every clip side by side "
                    "(real | neural | mesh) as one video here (.mp4)")
    args = ap.parse_args()

    clips = {c.clip_id: c for c in load_frame_cache(args.cache)}
    runs = {name: read_generated(Path(args.run) / f"heldout_{name}.npz") for name in ("detector", "mapper")}
    results: dict[str, dict] = {}
    names = ("detector", "mapper", "mesh", "source")
    tracks: dict[str, list] = {"real": [], **{n: [] for n in names}}
    images: dict[str, list] = {"real": [], **{n: [] for n in names}}
    for clip_id, (idx, _) in runs["detector"].items():
        clip = clips[clip_id]
        size = runs["detector"][clip_id][1].shape[1]
        real = resize(clip.frames[idx], size)
        source = resize(clip.frames[clip.train_indices[:1]], size)
        # the source is tracked as the first frame of the real sequence (same tracker state as a video)
        real_lmk, real_ok = track_landmarks(np.concatenate([source, real]), source=clip_id)
        tracks["source"].append(np.repeat(real_lmk[:1], len(idx), axis=0))
        tracks["real"].append(real_lmk[1:])
        images["real"].append(real)
        images["source"].append(np.repeat(source, len(idx), axis=0))
        ok = real_ok[1:].copy()
        generated = {"mesh": (idx, mesh_heldout(clip, idx, size))}
        for name in ("detector", "mapper", "mesh"):
            gen_idx, gen = runs[name][clip_id] if name in runs else generated[name]
            assert np.array_equal(gen_idx, idx)
            images[name].append(gen)
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
    real_images = np.concatenate(images["real"])
    for name in names:
        pred = np.concatenate(tracks[name])[ok]
        sizes = {"pred_size": (size, size), "gt_size": (size, size)}  # scaled to 256 x 256
        pred_images = np.concatenate(images[name])
        results[name] = {"PSNR": mean_psnr(video_psnr(pred_images, real_images)),
                         "SSIM": float(video_ssim(pred_images, real_images).mean()),
                         "F-LMD": lmd(pred, real, "face", **sizes), "M-LMD": lmd(pred, real, "mouth", **sizes),
                         "frames": len(real_images), "lmd_frames": int(ok.sum())}
    labels = {"detector": "neural generator, detector keypoints of the real frame",
              "mapper": "neural renderer (generator + landmark mapper, relative)",
              "mesh": "mesh renderer (training-free, the default)",
              "source": "copy the source frame (baseline)"}
    print(f"Held-out self-reenactment: {len(real_images)} frames (the last second of {len(runs['detector'])} clips), "
          f"256 px; LMD in px at 256 over the {int(ok.sum())} frames with a face found in every row")
    print()
    print("| renderer | PSNR dB | SSIM | F-LMD-MP | M-LMD-MP |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {labels[name]} | {r['PSNR']:.2f} | {r['SSIM']:.3f} | {r['F-LMD']:.3f} | {r['M-LMD']:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    clip_ids = list(runs["detector"])
    if args.sheet:
        write_sheet(args.sheet, images, clip_ids)
        print(f"contact sheet: {args.sheet}")
    if args.video:
        from facecue.io import VideoWriter

        fps = next(iter(clips.values())).fps
        with VideoWriter(args.video, fps) as writer:
            for c in range(len(clip_ids)):
                for row in zip(images["real"][c], images["mapper"][c], images["mesh"][c]):
                    writer.write(np.hstack(row))
        print(f"side-by-side video: {args.video}")
    return 0


def write_sheet(path: str, images: dict[str, list], clip_ids: list[str], n_clips: int = 6, n_frames: int = 3) -> None:
    """Rows: n_clips clips; per clip n_frames held-out moments, each as real | neural | mesh."""
    import cv2

    from facecue.io import write_image

    picks = np.linspace(0, len(clip_ids) - 1, n_clips).round().astype(int)
    rows = []
    for c in picks:
        n = len(images["real"][c])
        cells = []
        for t in np.linspace(0, n - 1, n_frames).round().astype(int):
            trio = [images[k][c][t].copy() for k in ("real", "mapper", "mesh")]
            for img, label in zip(trio, ("real", "neural", "mesh")):
                cv2.putText(img, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 2, cv2.LINE_AA)
            cells.append(np.hstack(trio))
            cells.append(np.full((trio[0].shape[0], 6, 3), 255, np.uint8))
        rows.append(np.hstack(cells[:-1]))
    sheet = np.vstack(rows)
    # a 256-px cell is more than a contact sheet needs: halve it to keep docs/ small
    write_image(path, cv2.resize(sheet, (sheet.shape[1] // 2, sheet.shape[0] // 2), interpolation=cv2.INTER_AREA))


if __name__ == "__main__":
    sys.exit(main())
