"""Build the expression-detail maps of the mesh renderer (src/facecue/assets/expression_detail.npz).

Usage: python scripts/build_expression_detail.py [--data ../shared/data] [--emotions surprised ...]
       python scripts/build_expression_detail.py --crease-colour   (render.DETAIL_CHANNEL_EXPONENTS)

``--emotions`` rebuilds only those maps and keeps the others of ``--out`` bit for bit (their
quantization scale is kept when the new maps fit in it): a change to one emotion's recipe then
changes that emotion's renders only. MediaPipe and the renderer's warp have drifted a little
since the other maps were built (a rebuild moves ~2 % of their pixels by about one quantization
step), and each such change would otherwise re-render every emotion.

A mesh warp moves skin but makes no wrinkles or folds; real expressions do (glabellar lines when
the brows knit, forehead lines when they rise, nasolabial folds, crow's feet, the nose wrinkle of
disgust). Following the expression-ratio-image idea (Liu, Shan & Zhang 2001), for each MEAD actor
(M030, W009, W011) and emotion:

1. every 3rd frame of the emotion's level-3 clip is warped along the MediaPipe mesh onto the
   geometry of the actor's neutral reference (the first neutral frame), so that only shading
   differs; the same is done for the actor's neutral clip; for the emotions in ``PEAK_EMOTIONS``
   (anger, disgust) every 2nd frame is, and only the third of them with the deepest creases over
   the glabella and nose is kept (:func:`strongest_frames`): the expression at its height, not
   its onset and fading;
2. for the emotions in ``BROW_REGISTERED`` (fear, surprise), the brows of the emotion's median are
   first registered onto the neutral median's by a smooth optical flow confined to the brows
   (:func:`register_brows`): MediaPipe's brow points follow a raised brow only part of the way,
   so without it the ratio carries the brow hair's leftover movement (a dark band above the brow,
   a pale one on it), which the renderer drew as a second, painted brow over the portrait's own;
   the forehead lines above are outside the flow's reach and stay; after step 3 what is left on
   the brows themselves is zeroed (:func:`brow_hair_mask`), the glabella between them kept
   (sadness' brows are softened instead, after step 4: ``BROW_SOFTEN``);
3. the ratio of luminances (emotion / neutral median), median over the frames (speech and
   blinks average out), is band-passed (shading changes larger than ~1/20 of the face are
   removed: pose and lighting, not wrinkles) and masked to the skin (eyes, mouth, outside the
   face oval left at 1; a band above the oval's upper arc, where MediaPipe's mesh stops below
   the hairline, is kept, fading out: forehead lines are there, ``render.forehead_band``);
4. the log-ratio is warped to a canonical face layout (facecue's template) and averaged over the
   three actors (above the brows, a clip in which the actor's fringe falls over the forehead
   counts as no change: ``FRINGE_OVER_FOREHEAD``).

The renderer warps each emotion's map onto the portrait's face once and multiplies the frame's
skin by ``exp(sum_e w_e * log_ratio_e)`` with the frame's emotion weights ``w_e`` (intensity
included), so the detail follows the skin and fades with the intensity.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from facecue.constants import EMOTIONS, GLABELLA_NOSE  # noqa: E402
from facecue.io import iter_video_frames  # noqa: E402
from facecue.landmarks import eye_corner_distance, track_landmarks  # noqa: E402
from facecue.render import (  # noqa: E402
    DETAIL_CANVAS,
    DETAIL_KIND,
    LUMA_WEIGHTS,
    MeshRenderer,
    canonical_detail_landmarks,
    mesh_coordinate_maps,
    skin_detail_mask,
)

FRAME_STEP = 3
BAND_SIGMA = 1 / 20  # x canvas size: shading changes broader than this are not detail
MAX_LOG_RATIO = (-0.45, 0.25)
# Emotions whose brow hair is registered before the ratio (step 2 of the docstring), measured on
# the calibration set (scripts/calibrate_expressiveness.py): surprise 8 of 9 and fear 3 of 9, as
# unregistered (fear's mean p 0.245 -> 0.235). The flow is confined to each brow: one hull over both brows also registered the
# glabella, and fear's knitted inner brows with it (fear 3 -> 2 of 9). Happiness read 9 of 9
# either way with hardly a visible change, so it is left. Anger's and sadness' bands were kept:
# registering them read angry 7 -> 6 and sad 9 -> 7 of 9, the recogniser taking the bands for
# knitted brows.
BROW_REGISTERED = ("fear", "surprised")
BROW_POINTS = ((70, 63, 105, 66, 107, 46, 53, 52, 65, 55), (336, 296, 334, 293, 300, 285, 295, 282, 283, 276))
BROW_FLOW_WINDOW = 0.25  # x eye distance: the flow's averaging window (a brow's height is ~0.1)
BROW_REACH = 0.15  # x eye distance: how far around the brows' hull the flow applies, fading out
# Then, for the same emotions, the brows themselves carry no detail (step 3 of the docstring):
# each brow's hull widened by BROW_CLEAR_MARGIN[emotion] x eye distance is zeroed, feathered over
# half of it. What the flow leaves of the brow hair's movement drew, for fear (whose brows also
# move inward, which the flow follows only in part), a pale brow-shaped band with a dark rim above
# it on faint-browed portraits (andrew at 512 px), and for surprise a faint line above the brows;
# the portrait's own brows, moved by the warp, are the brows. Measured on the calibration set:
# fear 3 -> 2 of 9 at 0.06 and at 0.03 (andrew's and feifeili's lost, reagan's gained; mean p
# 0.24 -> 0.22), and 0.03 left a pale outline under the brows, so 0.06; surprise 8 of 9 at 0.03
# (p 0.55), 7 at 0.06 (reagan's, on the edge of angry, lost), the two alike to the eye, so 0.03.
BROW_CLEAR_MARGIN = {"fear": 0.06, "surprised": 0.03}
# Sadness' brows are softened instead (its map is averaged over the actors, then blurred by
# BROW_SOFTEN[emotion] x eye distance (sigma) on each brow's hull widened by BROW_SOFTEN_REACH,
# feathered, on the canonical canvas): its inner brows rise, and the actors' moved brow hair drew
# dark, hair-shaped arcs and blotches over the portrait's own brows (bluish-grey on the faint-browed
# NASA portrait, two arcs over each of andrew's brows at 512 px). Softened, the same darkening
# reads as bunched brows. Clearing it instead (as fear's) lost the recogniser's sadness (calibration
# 9 -> 8 of 9 at 0.06; with the warp raising the brows 2x to make up, 9 of 9 but 15/30 on the
# report set, sad 5 -> 3). Calibration set (sad of 9, mean p): unsoftened 9 (0.617), 0.02: 9 (0.604;
# as rebuilt from the clips 0.599), 0.03: 8 (0.583), 0.05: 7 (0.541).
BROW_SOFTEN = {"sad": 0.02}
BROW_SOFTEN_REACH = 0.06
# Anger's and disgust's maps are the median of their clips' strongest frames only (step 1 of the
# docstring): averaged over every 3rd frame, the onset and the fading of the expression thinned the
# glabellar lines and the nose wrinkle the recogniser reads anger from in the real clips
# (benchmarks/recogniser_regions.py). Of every PEAK_FRAME_STEP-th frame, the 1 / PEAK_KEEP_ONE_IN whose
# band-passed log-ratio over the glabella and nose (GLABELLA_NOSE's hull) has the darkest
# PEAK_CREASE_PERCENTILE-th percentile is kept. Measured on the calibration set (angry of 9, mean
# p; disgusted of 9, mean p): every 3rd frame 7 (0.442), 0 (0.095); strongest third 7 (0.473), 0 (0.101);
# per pixel the actor with the strongest change instead of their mean 6 (0.443), 0 (0.025); M030's
# map alone (the deepest furrows) 7 (0.414), 0 (0.062).
PEAK_EMOTIONS = ("angry", "disgusted")
PEAK_FRAME_STEP = 2
PEAK_KEEP_ONE_IN = 3  # the strongest third of the frames is kept
PEAK_CREASE_PERCENTILE = 10
# Clips in which the actor's fringe falls over the forehead while it is combed back in the neutral
# clip: the strands' movement is no wrinkle, and it drew thin grey streaks down the forehead of
# every happy and contempt rendering (both white-skinned third-set portraits at 256 px, the report
# sheet's too). Above the brows (:func:`forehead_mask`), such a clip counts as no change: the
# map there is the other actors' sum over 3, not their mean (their mean drew their faint forehead
# shading 1.5 x as dark, grey veins over disgust's brows at 256 px). Found by looking at each actor's maps
# (M030's happy, contempt and disgust: dark diagonal streaks from the hairline to the brows; the
# other clips' foreheads carry horizontal lines or nothing).
FRINGE_OVER_FOREHEAD = {"M030": ("contempt", "disgusted", "happy")}
FOREHEAD_MARGIN = 0.0  # x eye distance above the brows' upper edge where the forehead starts
FOREHEAD_FEATHER = 0.02  # x eye distance (sigma): the forehead mask fades in over about twice this
UPPER_BROW_POINTS = tuple(brow[:5] for brow in BROW_POINTS)  # each brow's upper edge, outer to inner


def luminance(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) + 4.0


def skin_band_pass(log_ratio: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """(H, W) ``log_ratio`` less its low frequencies (Gaussian ``sigma`` pixels), estimated inside
    the skin ``mask`` only (a normalized blur): the eyes, mouth and background do not leak into
    the skin's low-frequency estimate."""
    low = cv2.GaussianBlur(log_ratio * mask, (0, 0), sigma) / np.maximum(cv2.GaussianBlur(mask, (0, 0), sigma), 1e-3)
    return log_ratio - low


def warped_onto(frame: np.ndarray, landmarks: np.ndarray, reference_landmarks: np.ndarray,
                image: np.ndarray) -> np.ndarray:
    """``image`` (float32, of ``frame``'s size: its luminance or colours) warped along the mesh
    from ``frame``'s geometry (``landmarks``) onto the reference's; unchanged outside the warp."""
    warp = MeshRenderer(redraw_eyes=False, mouth="warp")
    warp.prepare(frame, landmarks)
    map_x, map_y, (x0, y0, x1, y1) = warp.warp_maps(reference_landmarks)
    aligned = image.copy()
    aligned[y0:y1, x0:x1] = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return aligned


def aligned_luminance(frames, landmarks, reference_landmarks) -> list[np.ndarray]:
    """Each frame warped onto the reference geometry (luminance, float32)."""
    return [warped_onto(frame, pts, reference_landmarks, luminance(frame)) for frame, pts in zip(frames, landmarks)]


def aligned_colour(frames, landmarks, reference_landmarks) -> np.ndarray:
    """Median of the frames warped onto the reference geometry, (H, W, 3) float32 RGB (+ 4, as
    :func:`luminance`, so that log-ratios stay finite)."""
    return np.median([warped_onto(frame, pts, reference_landmarks, frame.astype(np.float32) + 4.0)
                      for frame, pts in zip(frames, landmarks)], axis=0)


CREASE_COLOUR_EMOTIONS = ("angry", "disgusted", "fear", "happy", "sad", "surprised")
CREASE_MIN_LOG_RATIO = 0.03  # skin pixels whose luminance changes at least this much (log) are measured


def crease_colour(clips: Path) -> np.ndarray:
    """(3,) how much each of R, G, B changes with the skin's shading in real expressions:
    per MEAD actor and emotion (``CREASE_COLOUR_EMOTIONS``), the band-passed log-ratio of each
    colour channel (emotion median over neutral median, aligned as the maps are) regressed
    through the origin on the luminance's, over the skin pixels whose luminance changes at least
    ``CREASE_MIN_LOG_RATIO``; the mean over the 18 clips (``render.DETAIL_CHANNEL_EXPONENTS``).
    Printed per clip, with the darkening and lightening pixels apart."""
    rows = []
    for actor in ("M030", "W009", "W011"):
        frames_n, lm_n = clip_landmarks(next(clips.glob(f"{actor}_neutral_level*_001.mp4")))
        ref_lm = lm_n[0]
        neutral = aligned_colour(frames_n[::FRAME_STEP], lm_n[::FRAME_STEP], ref_lm)
        mask = skin_detail_mask(ref_lm, neutral.shape[:2])
        sigma = BAND_SIGMA * neutral.shape[0]
        for emotion in CREASE_COLOUR_EMOTIONS:
            frames, lm = clip_landmarks(next(clips.glob(f"{actor}_{emotion}_level*_001.mp4")))
            log_ratio = np.log(aligned_colour(frames[::FRAME_STEP], lm[::FRAME_STEP], ref_lm) / neutral)
            band = np.stack([skin_band_pass(log_ratio[..., c], mask, sigma) for c in range(3)], axis=-1)
            lum = band @ LUMA_WEIGHTS
            skin = mask > 0.5
            selections = [skin & (np.abs(lum) >= CREASE_MIN_LOG_RATIO), skin & (lum <= -CREASE_MIN_LOG_RATIO),
                          skin & (lum >= CREASE_MIN_LOG_RATIO)]
            fits = [[float(lum[chosen] @ band[..., c][chosen] / (lum[chosen] @ lum[chosen])) for c in range(3)]
                    for chosen in selections]
            rows.append(fits[0])
            print(f"{actor} {emotion}: R, G, B per unit of luminance {np.round(fits[0], 3)} (darker "
                  f"{np.round(fits[1], 3)}, lighter {np.round(fits[2], 3)}; {int(selections[0].sum())} px)", flush=True)
    mean = np.mean(rows, axis=0)
    print(f"mean over {len(rows)} clips: {np.round(mean, 3)}; luma of it {float(mean @ LUMA_WEIGHTS):.3f}")
    return mean


def brow_hair_mask(reference_landmarks: np.ndarray, shape: tuple[int, int], margin: float,
                   feather: float = 0.25) -> np.ndarray:
    """(H, W) float32, 1 on each brow's ``BROW_POINTS`` hull widened by ``margin`` eye distances,
    blurred by ``feather`` x ``margin`` (sigma; 0.25: fading out over about half the margin), each
    brow on its own (the glabella between the hulls is left out)."""
    pts = np.asarray(reference_landmarks, np.float64)[:, :2]
    unit = eye_corner_distance(pts)
    mask = np.zeros(shape, np.float32)
    for brow in BROW_POINTS:
        hull = cv2.convexHull(pts[list(brow)].astype(np.float32))
        cv2.fillConvexPoly(mask, np.round(hull).astype(np.int32), 1.0)
    reach = int(2 * margin * unit) | 1
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (reach, reach)))
    return cv2.GaussianBlur(mask, (0, 0), feather * margin * unit)


def register_brows(aligned: np.ndarray, neutral: np.ndarray, reference_landmarks: np.ndarray) -> np.ndarray:
    """``aligned`` (H, W) float32 luminance with its brows moved onto ``neutral``'s: a dense
    Farneback flow from the neutral to the emotion median, kept only around the brows
    (:func:`brow_hair_mask` with ``BROW_REACH``: the glabella between them has no hair to
    register) and smoothed there, then the emotion median resampled along it."""
    unit = eye_corner_distance(np.asarray(reference_landmarks, np.float64))
    as_bytes = [np.clip(image, 0, 255).astype(np.uint8) for image in (neutral, aligned)]
    flow = cv2.calcOpticalFlowFarneback(*as_bytes, None, 0.5, 3, int(BROW_FLOW_WINDOW * unit) | 1, 5, 7, 1.5,
                                        cv2.OPTFLOW_FARNEBACK_GAUSSIAN)
    feather = 0.5
    weight = brow_hair_mask(reference_landmarks, neutral.shape, BROW_REACH, feather)
    sigma = feather * BROW_REACH * unit
    norm = np.maximum(cv2.GaussianBlur(weight, (0, 0), sigma), 1e-3)
    flow = np.stack([cv2.GaussianBlur(flow[..., k] * weight, (0, 0), sigma) / norm * weight for k in (0, 1)], -1)
    yy, xx = np.mgrid[: neutral.shape[0], : neutral.shape[1]].astype(np.float32)
    return cv2.remap(aligned.astype(np.float32), xx + flow[..., 0], yy + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def forehead_mask(landmarks: np.ndarray, shape: tuple[int, int], margin: float = FOREHEAD_MARGIN,
                  feather: float = FOREHEAD_FEATHER) -> np.ndarray:
    """(H, W) float32, 1 above the line through both brows' upper edges (``UPPER_BROW_POINTS``,
    straight across the glabella, level beyond the outer brow ends) raised by ``margin`` eye
    distances, 0 below it, blurred by ``feather`` eye distances (sigma)."""
    pts = np.asarray(landmarks, np.float64)[:, :2]
    unit = eye_corner_distance(pts)
    edge = sorted((float(pts[i, 0]), float(pts[i, 1]) - margin * unit) for brow in UPPER_BROW_POINTS for i in brow)
    width = shape[1]
    polygon = [(-1.0, edge[0][1]), *edge, (float(width), edge[-1][1]), (float(width), -1.0), (-1.0, -1.0)]
    mask = np.zeros(shape, np.float32)
    cv2.fillPoly(mask, [np.round(np.array(polygon) * 16).astype(np.int32)], 1.0, lineType=cv2.LINE_AA, shift=4)
    return cv2.GaussianBlur(mask, (0, 0), feather * unit)


def soften_brows(canvas_map: np.ndarray, sigma: float) -> np.ndarray:
    """A (C, C) map on the canonical canvas blurred by ``sigma`` eye distances on the brows
    (:func:`brow_hair_mask` with ``BROW_SOFTEN_REACH``, feathered over the reach), as it was
    elsewhere."""
    landmarks = canonical_detail_landmarks()
    weight = brow_hair_mask(landmarks, canvas_map.shape, BROW_SOFTEN_REACH, feather=0.5)
    blurred = cv2.GaussianBlur(canvas_map, (0, 0), sigma * eye_corner_distance(landmarks))
    return canvas_map * (1.0 - weight) + blurred * weight


def strongest_frames(frames, landmarks, reference_landmarks, neutral: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(H, W) float32 median luminance of the clip's frames with the deepest creases over the
    glabella and nose, warped onto the reference geometry: of every ``PEAK_FRAME_STEP``-th frame,
    the ``1 / PEAK_KEEP_ONE_IN`` (at least 3) whose band-passed log-ratio to ``neutral`` (the
    neutral median) has the darkest ``PEAK_CREASE_PERCENTILE``-th percentile inside
    ``GLABELLA_NOSE``'s hull and the skin ``mask``."""
    aligned = aligned_luminance(frames[::PEAK_FRAME_STEP], landmarks[::PEAK_FRAME_STEP], reference_landmarks)
    region = np.zeros(neutral.shape, np.uint8)
    hull = cv2.convexHull(np.round(np.asarray(reference_landmarks)[list(GLABELLA_NOSE), :2]).astype(np.int32))
    cv2.fillConvexPoly(region, hull, 1)
    region = region.astype(bool) & (mask > 0.5)
    sigma = BAND_SIGMA * neutral.shape[0]
    creases = [np.percentile(skin_band_pass(np.log(image / neutral), mask, sigma)[region], PEAK_CREASE_PERCENTILE)
               for image in aligned]
    keep = np.argsort(creases)[: max(3, len(aligned) // PEAK_KEEP_ONE_IN)]
    return np.median([aligned[k] for k in keep], axis=0)


def clip_landmarks(path: Path) -> tuple[list[np.ndarray], np.ndarray]:
    frames = list(iter_video_frames(path))
    landmarks, _ = track_landmarks(frames, source=path)
    return frames, landmarks.astype(np.float64)


def corner_lift(landmarks: np.ndarray) -> float:
    """Median over frames of how much higher the subject's left mouth corner (291) sits than the
    right one (61), pixels (> 0: the left corner is higher)."""
    return float(np.median(landmarks[:, 61, 1] - landmarks[:, 291, 1]))


def to_canvas(log_ratio: np.ndarray, reference_landmarks: np.ndarray) -> np.ndarray:
    """The log-ratio (in the reference frame's pixels) warped onto the canonical canvas."""
    canvas_landmarks = canonical_detail_landmarks()
    shape = (DETAIL_CANVAS, DETAIL_CANVAS)
    map_x, map_y, inside = mesh_coordinate_maps(reference_landmarks, canvas_landmarks, shape)
    out = cv2.remap(log_ratio, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out * inside * skin_detail_mask(canvas_landmarks, shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "src" / "facecue" / "assets" / "expression_detail.npz")
    parser.add_argument("--preview", type=Path, default=None, help="also write a PNG of the maps")
    parser.add_argument("--emotions", nargs="+", choices=EMOTIONS[1:], default=None,
                        help="rebuild only these emotions' maps; the others are kept from --out (default: all)")
    parser.add_argument("--crease-colour", action="store_true",
                        help="measure how skin colour changes with shading instead (render.DETAIL_CHANNEL_EXPONENTS)")
    args = parser.parse_args()
    if args.crease_colour:
        crease_colour(args.data / "mead_clips")
        return
    rebuilt = tuple(args.emotions or EMOTIONS[1:])
    if args.emotions and not args.out.is_file():
        raise SystemExit(f"{args.out}: --emotions keeps the other maps of this file, and it does not exist")
    clips = args.data / "mead_clips"
    if not clips.is_dir():
        raise SystemExit(f"{args.data}: the shared real data (mead_clips/) is needed")
    maps = np.zeros((len(EMOTIONS), DETAIL_CANVAS, DETAIL_CANVAS), np.float32)
    forehead = forehead_mask(canonical_detail_landmarks(), maps.shape[1:])
    for actor in ("M030", "W009", "W011"):
        frames_n, lm_n = clip_landmarks(next(clips.glob(f"{actor}_neutral_level*_001.mp4")))
        reference, ref_lm = frames_n[0], lm_n[0]
        size = reference.shape[0]
        neutral = np.median(aligned_luminance(frames_n[::FRAME_STEP], lm_n[::FRAME_STEP], ref_lm), axis=0)
        mask = skin_detail_mask(ref_lm, neutral.shape)
        for e, emotion in enumerate(EMOTIONS):
            if emotion not in rebuilt:
                continue
            frames, lm = clip_landmarks(next(clips.glob(f"{actor}_{emotion}_level*_001.mp4")))
            if emotion in PEAK_EMOTIONS:
                aligned = strongest_frames(frames, lm, ref_lm, neutral, mask)
            else:
                aligned = np.median(aligned_luminance(frames[::FRAME_STEP], lm[::FRAME_STEP], ref_lm), axis=0)
            if emotion in BROW_REGISTERED:
                aligned = register_brows(aligned, neutral, ref_lm)
            log_ratio = np.log(aligned / neutral)
            sigma = BAND_SIGMA * size
            detail = np.clip(skin_band_pass(log_ratio, mask, sigma) * mask, *MAX_LOG_RATIO)
            if emotion in BROW_CLEAR_MARGIN:
                detail *= 1.0 - brow_hair_mask(ref_lm, detail.shape, BROW_CLEAR_MARGIN[emotion])
            canvas = to_canvas(detail, ref_lm)
            if emotion == "contempt" and corner_lift(lm) - corner_lift(lm_n) < 0:
                canvas = canvas[:, ::-1]  # one-sided: as in the cue priors, the subject's left corner (291) rises
            if emotion in FRINGE_OVER_FOREHEAD.get(actor, ()):
                canvas = canvas * (1.0 - forehead)
            maps[e] += canvas / 3.0
            print(f"{actor} {emotion}: log-ratio p1 {np.percentile(detail[mask > 0.5], 1):+.3f} "
                  f"p99 {np.percentile(detail[mask > 0.5], 99):+.3f}", flush=True)
    for emotion, sigma in BROW_SOFTEN.items():
        if emotion in rebuilt:
            maps[EMOTIONS.index(emotion)] = soften_brows(maps[EMOTIONS.index(emotion)], sigma)
    scale = float(np.abs(maps).max()) / 127.0
    if args.emotions:
        with np.load(args.out, allow_pickle=False) as kept:
            if str(kept["kind"]) != DETAIL_KIND or list(kept["emotion_names"]) != list(EMOTIONS):
                raise SystemExit(f"{args.out}: not an expression-detail asset with facecue's emotions")
            kept_q, kept_scale = kept["log_ratio_q"].astype(np.float32), float(kept["scale"])
        keep = np.array([emotion not in rebuilt for emotion in EMOTIONS])
        if scale > kept_scale:  # the new maps do not fit: everything is requantized on the new scale
            print(f"the rebuilt maps need a larger scale ({scale:.6f} > {kept_scale:.6f}): all maps requantized")
        else:
            scale = kept_scale
        maps[keep] = kept_q[keep] * kept_scale
    np.savez_compressed(args.out, kind=DETAIL_KIND, version=1, emotion_names=np.array(EMOTIONS),
                        log_ratio_q=np.round(maps / scale).astype(np.int8), scale=np.float32(scale),
                        canvas=np.int32(DETAIL_CANVAS))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KB)")
    if args.preview:
        from facecue.io import write_image

        tiles = [np.clip(128 + 400 * m, 0, 255).astype(np.uint8) for m in maps]
        write_image(args.preview, np.repeat(np.concatenate(tiles, axis=1)[..., None], 3, axis=2))


if __name__ == "__main__":
    main()
