"""Which face regions carry the FER2013 recogniser's reading: real MEAD footage beside facecue
rendering the same actor.

Usage: python benchmarks/recogniser_regions.py [--data ../shared/data]
                                               [--out docs/expressiveness/regions.md] [--step 1]

For each MEAD actor (M030, W009, W011) and each of neutral + the 6 judged emotions, the real clip
(level 3; neutral level 1) and facecue rendering the same actor from the first frame of their
neutral clip (M030's real sad speech, the only MEAD audio here; default cue model, mesh renderer,
the clips' own 256 px frames) are read by the recogniser (``facecue.expression``) every ``--step``
frames. Then each face region in turn (brows and forehead, eyes, glabella and nose, cheeks, mouth
and chin; MediaPipe's landmarks, tracked per frame) is blurred away (Gaussian, sigma
``BLUR_EYE_UNITS`` of the outer-eye-corner distance: shading and mean brightness stay, creases,
edges and teeth go) and the frames read again. A region's *evidence* for a class is the mean drop of
that class's probability when the region is blurred: how much of the reading rests on what the
region shows. An occlusion measure, first order: regions interact, and the drops need not add up.

The point is the comparison with the same person's real footage: a region that carries the target
emotion in the real clip and not in facecue's shows where facecue's expression falls short, and a
region that carries a wrong class in facecue's (a smile's mouth read as happy in anger) shows what
misleads the recogniser. The MEAD actors are calibration material (scripts/calibrate_expressiveness.py
reads them too), so nothing here is a reported accuracy; the report set's figures are in README.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from facecue.constants import GLABELLA_NOSE  # noqa: E402
from facecue.landmarks import eye_corner_distance  # noqa: E402

ACTORS = ("M030", "W009", "W011")
SPEECH = "M030_sad_level3_001.wav"
# MediaPipe face-mesh points outlining each region (their convex hull, widened by
# REGION_MARGIN_EYE_UNITS; the two cheeks and the two brows are separate hulls).
REGIONS: dict[str, tuple[tuple[int, ...], ...]] = {
    "brows": ((70, 63, 105, 66, 107, 55, 65, 52, 53, 46, 104, 69, 108, 67, 103),
              (300, 293, 334, 296, 336, 285, 295, 282, 283, 276, 333, 299, 337, 297, 332)),
    "eyes": ((33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246),
             (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)),
    "glabella+nose": (GLABELLA_NOSE,),
    "cheeks": ((50, 101, 36, 205, 187, 123, 116, 117, 118, 119, 100, 206, 216, 207),
               (280, 330, 266, 425, 411, 352, 345, 346, 347, 348, 329, 426, 436, 427)),
    "mouth+chin": ((61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185,
                    152, 148, 176, 149, 150, 377, 400, 378, 379, 164, 57, 287),),
}
REGION_MARGIN_EYE_UNITS = 0.04
BLUR_EYE_UNITS = 0.08


def region_masks(points: np.ndarray, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """(H, W) float32 masks, 0..1, of each region of :data:`REGIONS` for one frame's ``points``
    (478, 2+) pixels, widened by ``REGION_MARGIN_EYE_UNITS`` and feathered by half of it."""
    import cv2

    eye = eye_corner_distance(points)
    margin = max(1, int(round(REGION_MARGIN_EYE_UNITS * eye)))
    masks = {}
    for name, groups in REGIONS.items():
        mask = np.zeros(shape, np.uint8)
        for group in groups:
            hull = cv2.convexHull(np.round(points[list(group), :2]).astype(np.int32))
            cv2.fillConvexPoly(mask, hull, 255)
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1)))
        masks[name] = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), margin / 2)
    return masks


def read_regions(path: Path, model, step: int) -> dict:
    """The recogniser's mean probabilities on every ``step``-th frame of the video at ``path``,
    and the evidence of each region for each class (mean probability drop when it is blurred).

    Returns ``{"p": {emotion: float}, "label": str, "evidence": {region: {emotion: float}}, "frames": int,
    "still": (H, W, 3) uint8}`` (facecue emotion names; ``still``: the frame read at the middle)."""
    import cv2

    from facecue.expression import FER_CLASSES, FER_TO_FACECUE, largest_faces, recognise_faces
    from facecue.io import iter_video_frames
    from facecue.landmarks import track_landmarks

    frames = list(iter_video_frames(path))[::step]
    landmarks, valid = track_landmarks(frames)
    boxes = largest_faces(frames)
    keep = valid & (boxes[:, 2] > 0)
    frames = [f for f, k in zip(frames, keep) if k]
    landmarks, boxes = landmarks[keep], boxes[keep]
    names = [FER_TO_FACECUE[c] for c in FER_CLASSES]
    base = recognise_faces(frames, boxes, model=model)
    evidence = {}
    blurred = []
    for frame, points in zip(frames, landmarks):
        eye = eye_corner_distance(points)
        blurred.append(cv2.GaussianBlur(frame.astype(np.float32), (0, 0), BLUR_EYE_UNITS * eye))
    masks = [region_masks(points, frame.shape[:2]) for frame, points in zip(frames, landmarks)]
    for region in REGIONS:
        occluded = [(f * (1 - m[region][..., None]) + b * m[region][..., None]).clip(0, 255).astype(np.uint8)
                    for f, b, m in zip(frames, blurred, masks)]
        drop = base - recognise_faces(occluded, boxes, model=model)
        evidence[region] = {name: float(drop[:, k].mean()) for k, name in enumerate(names)}
    mean = base.mean(axis=0)
    return {"p": {name: float(mean[k]) for k, name in enumerate(names)}, "label": names[int(np.argmax(mean))],
            "evidence": evidence, "frames": len(frames), "still": frames[len(frames) // 2]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "expressiveness" / "regions.md")
    parser.add_argument("--step", type=int, default=1, help="read every STEP-th frame (default 1: all)")
    args = parser.parse_args(argv)
    clips = args.data / "mead_clips"
    if not (clips / SPEECH).is_file():
        raise SystemExit(f"{clips / SPEECH}: the shared MEAD clips are needed")
    if args.step < 1:
        raise SystemExit(f"--step {args.step}: must be at least 1")
    from facecue.constants import EMOTIONS
    from facecue.expression import JUDGED_EMOTIONS, RECOGNISER_SOURCE, load_recogniser
    from facecue.generate import generate
    from facecue.io import iter_video_frames, write_image

    started = time.time()
    model = load_recogniser()
    emotions = [e for e in EMOTIONS if e in JUDGED_EMOTIONS]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="facecue-regions-") as tmp:
        for actor in ACTORS:
            neutral_clip = next(clips.glob(f"{actor}_neutral_level*_001.mp4"))
            portrait = Path(tmp) / f"{actor}.png"
            write_image(portrait, next(iter_video_frames(neutral_clip)))
            for emotion in emotions:
                real = next(clips.glob(f"{actor}_{emotion}_level*_001.mp4"))
                rendered = Path(tmp) / f"{actor}_{emotion}.mp4"
                generate(portrait, clips / SPEECH, rendered, emotion=emotion)
                for source, path in (("real", real), ("facecue", rendered)):
                    reading = read_regions(path, model, args.step)
                    results[f"{actor} {emotion} {source}"] = reading
                    print(f"{actor} {emotion} {source}: {reading['label']} p(target) {reading['p'][emotion]:.2f} "
                          + " ".join(f"{r} {v[emotion]:+.2f}" for r, v in reading["evidence"].items()), flush=True)
    write_report(args.out, results, emotions, RECOGNISER_SOURCE, args.step, time.time() - started)
    print(f"wrote {args.out}")
    return 0


def write_report(out: Path, results: dict[str, dict], emotions: list[str], source: str, step: int,
                 seconds: float) -> None:
    """The markdown report (and its JSON beside it) from :func:`read_regions` results keyed
    ``"<actor> <emotion> <real|facecue>"``."""
    regions = list(REGIONS)
    head = " | ".join(regions)
    hits = {s: sum(results[f"{a} {e} {s}"]["label"] == e for a in ACTORS for e in emotions if e != "neutral")
            for s in ("real", "facecue")}
    n = len(ACTORS) * (len(emotions) - 1)
    lines = ["# Where the recogniser's reading comes from: real MEAD beside facecue, same actors", "",
             f"Made by `python benchmarks/recogniser_regions.py --step {step}` ({time.strftime('%Y-%m-%d')}; "
             f"see its docstring). Recogniser: {source}. facecue renders each actor from the first frame of "
             f"their neutral clip with M030's real sad speech (default cue model, mesh renderer). "
             "*Evidence*: the mean drop of a class's probability when the region is blurred away "
             f"(sigma {BLUR_EYE_UNITS} x the eye-corner distance), x 100. The MEAD actors are calibration "
             "material: these are diagnostics, not reported accuracies.", "",
             f"Top-1 on the 6 emotions: real {hits['real']}/{n}, facecue {hits['facecue']}/{n}.", "",
             "## Evidence for the target emotion, mean of the 3 actors", "",
             f"| emotion | video | p(target) | {head} |", "|---|---|--:|" + "--:|" * len(regions)]
    for emotion in emotions:
        for s in ("real", "facecue"):
            rows = [results[f"{a} {emotion} {s}"] for a in ACTORS]
            p = np.mean([r["p"][emotion] for r in rows])
            cells = " | ".join(f"{100 * np.mean([r['evidence'][g][emotion] for r in rows]):+.1f}" for g in regions)
            lines.append(f"| {emotion} | {s} | {p:.2f} | {cells} |")
    lines += ["", "## Each video: what it reads as, and the evidence for that reading", "",
              "When facecue's reading is wrong, the regions that carry the wrong class are what misleads the "
              "recogniser.",
              "", f"| actor | emotion | video | read as (p) | p(target) | {head} |",
              "|---|---|---|---|--:|" + "--:|" * len(regions)]
    for actor in ACTORS:
        for emotion in emotions:
            for s in ("real", "facecue"):
                r = results[f"{actor} {emotion} {s}"]
                label = r["label"]
                mark = "" if label == emotion else " ✗"
                cells = " | ".join(f"{100 * r['evidence'][g][label]:+.1f}" for g in regions)
                lines.append(f"| {actor} | {emotion} | {s} | {label} ({r['p'][label]:.2f}){mark} | "
                             f"{r['p'][emotion]:.2f} | {cells} |")
    lines += ["", "![real | facecue, the middle frame of each video; caption: the whole video's reading]"
              f"({out.stem}_sheet.png)", "", f"Measured in {seconds / 60:.1f} minutes."]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps({k: {f: v for f, v in r.items() if f != "still"}
                                                    for k, r in results.items()}, indent=1) + "\n")
    write_sheet(out.with_name(out.stem + "_sheet.png"), results, emotions)


SHEET_TILE = 128  # px, side of each frame in the contact sheet


def write_sheet(path: Path, results: dict[str, dict], emotions: list[str]) -> None:
    """A contact sheet: one row per emotion, for each actor the real clip's middle frame beside
    facecue's, each captioned with what the recogniser read over the whole video."""
    import cv2

    from facecue.io import write_image

    rows = []
    for emotion in emotions:
        tiles = []
        for actor in ACTORS:
            for s in ("real", "facecue"):
                r = results[f"{actor} {emotion} {s}"]
                tile = cv2.resize(np.ascontiguousarray(r["still"]), (SHEET_TILE, SHEET_TILE),
                                  interpolation=cv2.INTER_AREA)
                mark = "" if r["label"] == emotion else " x"
                for text, y, colour in ((f"{s} {actor} {emotion}", 12, (255, 255, 255)),
                                        (f"{r['label']} {r['p'][r['label']]:.2f}{mark}", SHEET_TILE - 5,
                                         (255, 255, 255) if not mark else (255, 120, 120))):
                    cv2.putText(tile, text, (3, y), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 2, cv2.LINE_AA)
                    cv2.putText(tile, text, (3, y), cv2.FONT_HERSHEY_SIMPLEX, 0.33, colour, 1, cv2.LINE_AA)
                tiles.append(tile)
        rows.append(np.concatenate(tiles, axis=1))
    write_image(path, np.concatenate(rows, axis=0))


if __name__ == "__main__":
    raise SystemExit(main())
