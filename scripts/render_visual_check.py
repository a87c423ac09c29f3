"""Visual check of the mesh renderer: a 3-second scripted performance on real portraits.

For each portrait: head turn to +-20 degrees yaw, a nod, a gaze shift each way, a blink and a
mouth that opens wide, rendered full-frame at the portrait's own resolution (paste-back into the
uncropped image). Writes, under ``--out`` (default ``out/render_check``):

* ``<portrait>/frame_XXX.png``: full-resolution frames at six key moments,
* ``<portrait>/demo.mp4``: the whole 3 s clip,
* ``contact_sheet.png``: face crops of every portrait at the six moments (also copied to
  ``docs/render_contact_sheet.png`` with ``--docs``).

Run::

    PYTHONPATH=src .venv/bin/python scripts/render_visual_check.py --docs
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from facecue import io
from facecue.cues import (
    FaceCues,
    angles_to_rotation,
    eye_aperture,
    gaze_from_normalized,
    place_iris,
    rotation_to_angles,
)
from facecue.draw import labelled
from facecue.landmarks import face_bbox
from facecue.constants import N_MESH_POINTS
from facecue.motion import close_eyes
from facecue.render import detect_portrait_landmarks, mesh_topology, render

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
PORTRAITS = (
    SHARED / "portraits" / "nasa_eileen_collins_astronaut_512.png",
    SHARED / "portraits" / "whitehouse_obama_official_2012_910x1137.jpg",
    SHARED / "portraits" / "styletalk_KristiNoem.png",
    SHARED / "mead_clips" / "W009_neutral_level1_001.mp4",  # first frame: a closed mouth
)
FPS = 25.0
DURATION_S = 3.0
MOMENTS_S = (0.0, 0.75, 1.25, 1.5, 2.25, 2.6)
MOMENT_NAMES = ("neutral", "yaw +20, gaze right", "mouth open", "blink", "yaw -20, gaze left", "wide open, chin up")


def jaw_open(normalized: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """Drop the jaw by ``amount`` (T,) canonical units: the lower lip and chin move fully, the
    inner mouth corners by 30%, the upper lip not at all (unlike :func:`facecue.motion.open_mouth`,
    whose pull is decided by height alone and so drags the upper lip's corners down on faces whose
    mouth corners sit below the upper lip's middle)."""
    topo = mesh_topology()
    ref = np.asarray(normalized, dtype=np.float64).reshape(-1, *normalized.shape[-2:])[0]
    upper, lower = topo.mouth_upper, topo.mouth_lower
    order = np.argsort(ref[upper, 0])
    x = ref[:N_MESH_POINTS, 0]
    lip_line = np.interp(x, ref[upper, 0][order], ref[upper, 1][order])
    corners = ref[[upper[0], upper[-1]], 0]
    rel = (x - corners.mean()) / (abs(corners[1] - corners[0]) / 2)
    across = np.where(np.abs(rel) <= 1, 0.3 + 0.7 * (1 - rel**2), 0.3 * np.exp(-(((np.abs(rel) - 1) / 0.8) ** 2)))
    weight = np.clip((ref[:N_MESH_POINTS, 1] - lip_line) / 0.12, 0, 1) * across
    weight[upper] = 0.0
    weight[lower] = across[lower]
    weight[[upper[0], upper[-1]]] = 0.3
    out = np.array(normalized, dtype=np.float64, copy=True)
    out[..., :N_MESH_POINTS, 1] += np.asarray(amount, dtype=np.float64)[..., None] * weight
    return out


def scripted_cues(base: FaceCues, n_frames: int, fps: float) -> FaceCues:
    """The check's performance, built on the first frame of ``base`` (its image space)."""
    t = np.arange(n_frames) / fps
    norm0 = base.normalized[0].astype(np.float64)
    angles = np.tile(rotation_to_angles(base.rotation[0]), (n_frames, 1))
    angles[:, 0] += 20 * np.sin(2 * np.pi * t / 3.0)  # +20 at 0.75 s, -20 at 2.25 s
    angles[:, 1] += 6 * np.clip((t - 2.3) / 0.3, 0, 1)  # chin up at the end
    angles[:, 2] += 3 * np.sin(2 * np.pi * t / 3.0)
    mouth = 0.12 * np.clip(np.sin(2 * np.pi * 2.0 * (t - 1.125)), 0, None) * (t < 2.0)
    mouth += 0.26 * np.exp(-(((t - 2.6) / 0.25) ** 2))  # wide open
    blink = np.exp(-(((t - 1.5) / 0.07) ** 2))
    gaze = np.zeros((n_frames, 2, 2))
    gaze[:, :, 0] = (20 * ((t > 0.4) & (t < 1.1)) - 20 * ((t > 1.9) & (t < 2.45)))[:, None]
    gaze[:, :, 1] = 0.0
    norm = np.broadcast_to(norm0, (n_frames, *norm0.shape))
    norm = jaw_open(norm, mouth)
    norm = close_eyes(norm, blink)
    norm = place_iris(norm, gaze)
    return FaceCues(
        normalized=norm.astype(np.float32),
        scale=np.full(n_frames, base.scale[0], np.float32),
        rotation=angles_to_rotation(angles).astype(np.float32),
        translation=np.tile(base.translation[0], (n_frames, 1)).astype(np.float32),
        gaze=gaze_from_normalized(norm),
        aperture=eye_aperture(norm),
        valid=np.ones(n_frames, bool),
        identity=base.identity,
        fps=fps,
        image_size=base.image_size,
        meta={"source": "scripts/render_visual_check.py"},
    )


def load_portrait(path: Path) -> np.ndarray:
    if io.media_kind(path) == "video":
        return next(io.iter_video_frames(path))
    return io.read_image(path)


def face_crop_box(landmarks: np.ndarray, width: int, height: int, margin: float = 0.45) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = face_bbox(landmarks)
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = min(side, width, height)
    bx = int(np.clip(cx - side / 2, 0, width - side))
    by = int(np.clip(cy - side / 2, 0, height - side))
    return bx, by, bx + int(side), by + int(side)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/render_check", help="output folder")
    parser.add_argument("--tile", type=int, default=200, help="contact sheet tile size, px")
    parser.add_argument("--docs", action="store_true", help="also write docs/render_contact_sheet.png")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n_frames = int(round(DURATION_S * FPS))
    moment_frames = [min(int(round(s * FPS)), n_frames - 1) for s in MOMENTS_S]
    rows = []
    for path in PORTRAITS:
        if not path.exists():
            print(f"skip {path} (missing)")
            continue
        image = load_portrait(path)
        height, width = image.shape[:2]
        points = detect_portrait_landmarks(image, source=path)
        base = FaceCues.from_landmarks(points[None], FPS, (width, height))
        cues = scripted_cues(base, n_frames, FPS)
        folder = out / path.stem
        folder.mkdir(exist_ok=True)
        box = face_crop_box(points, width, height)
        tiles = []
        started = time.perf_counter()
        with io.VideoWriter(folder / "demo.mp4", FPS) as writer:
            for index, frame in enumerate(render(image, points, cues.landmarks())):
                writer.write(frame)
                if index in moment_frames:
                    io.write_image(folder / f"frame_{index:03d}.png", frame)
                    crop = frame[box[1] : box[3], box[0] : box[2]]
                    tile = cv2.resize(crop, (args.tile, args.tile), interpolation=cv2.INTER_AREA)
                    tiles.append(labelled(tile, MOMENT_NAMES[moment_frames.index(index)], scale=0.38))
        elapsed = time.perf_counter() - started
        print(f"{path.name}: {width}x{height}, {n_frames} frames in {elapsed:.1f} s "
              f"({n_frames / elapsed:.1f} frames/s incl. encoding) -> {folder}")
        rows.append(np.hstack(tiles))
    if not rows:
        raise SystemExit("no portraits found")
    sheet = np.vstack(rows)
    cv2.imwrite(str(out / "contact_sheet.png"), sheet[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"contact sheet: {out / 'contact_sheet.png'} ({sheet.shape[1]}x{sheet.shape[0]})")
    if args.docs:
        target = REPO / "docs" / "render_contact_sheet.png"
        cv2.imwrite(str(target), sheet[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])
        print(f"copied to {target} ({target.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
