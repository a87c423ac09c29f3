"""Build the real-data priors of facecue's phonetic cue model (src/facecue/assets/cue_priors.npz).

Usage: python scripts/build_cue_priors.py [--data ../shared/data]

Everything in the priors is measured on real faces (MediaPipe landmarks, facecue cue geometry):

* **viseme mouth shapes** (14 x 478 x 3, canonical units, offsets from the rest shape): for each
  viseme an articulatory target (inner-lip opening, mouth width relative to rest) picks the
  nearest real frames among the 7 real talking videos (``talking/``, 5 speakers) and the 3 neutral
  MEAD clips; their lower-face offsets from the speaker's own closed-mouth rest shape, rescaled to
  the template's mouth width, are averaged. Closed visemes (``sil``) are the rest shape itself.
* **emotion expression offsets** (8 x 478 x 3): per actor (M030, W009, W011), the emotion
  clip's shape at closed lips (every landmark coordinate regressed on the inner-lip gap over all
  frames, intercept) minus the neutral clip's, averaged over the 3 actors. The emotion's own
  mouth opening is kept separately: the jaw held open while speaking (10th-percentile lip gap
  over neutral's), how much wider its speech movements are (10-90 % gap range over neutral's)
  and how its lips part differently (``emotion_opening``, 8 x 478 x 3: every coordinate's slope on
  the inner-lip gap over all frames, minus the neutral clip's; canonical units per unit of gap).
  Both are made left-right symmetric (averaged with their mirror image), except contempt's, which
  is one-sided by nature and mirrored per actor to one side instead.
* **emotion dynamics** (per emotion): head pose offset and spread (degrees), gaze offset and
  spread (degrees), blink rate (per minute), measured on the same 24 real MEAD clips.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from facecue.audio import VISEME_NAMES  # noqa: E402
from facecue.constants import EMOTIONS, INNER_LIP_MID, MOUTH_CORNERS, N_LANDMARKS, N_MESH_POINTS  # noqa: E402
from facecue.cues import FaceCues, default_template, detect_blinks, extract_cues, mirror_shape  # noqa: E402

# Articulatory targets: (inner-lip opening in canonical units, mouth width / rest width).
VISEME_TARGETS = {
    "sil": (0.0, 1.00),
    "PP": (0.0, 0.97),
    "FF": (0.025, 1.00),
    "TH": (0.06, 1.00),
    "DD": (0.07, 1.01),
    "kk": (0.09, 1.00),
    "CH": (0.06, 0.90),
    "SS": (0.035, 1.04),
    "RR": (0.06, 0.91),
    "aa": (0.21, 1.02),
    "E": (0.13, 1.06),
    "I": (0.07, 1.08),
    "O": (0.15, 0.88),
    "U": (0.05, 0.84),
}
NEAREST_FRAMES = 30
MAX_SPEECH_GAIN = 1.7
# Expressions that are one-sided by nature; every other emotion's offsets are averaged with their
# mirror image. Three actors' own asymmetries do not average out: 15-34 % of the norm of the
# averaged angry, disgusted, fear, happy, sad and surprised offsets was antisymmetric, which moved
# the lips' middle sideways (happy: 0.020 canonical units at closed lips and 0.030 per unit of
# lip gap) and drew the mouth, and the teeth centred on it, lopsided on every portrait.
ONE_SIDED_EMOTIONS = ("contempt",)
OPEN_SCALE, WIDTH_SCALE = 0.03, 0.03  # feature distances are measured in these units


def lower_face_weight(points: np.ndarray) -> np.ndarray:
    """(478,) weight of each point in mouth shapes: 1 below the nose base, fading above it."""
    nose_base = points[2, 1]
    weight = np.clip((points[:, 1] - (nose_base - 0.05)) / 0.15, 0, 1)
    weight[N_MESH_POINTS:] = 0  # iris
    return weight.astype(np.float32)


def mouth_features(normalized: np.ndarray, rest: np.ndarray) -> np.ndarray:
    opening = normalized[:, INNER_LIP_MID[1], 1] - normalized[:, INNER_LIP_MID[0], 1]
    width = np.linalg.norm(normalized[:, MOUTH_CORNERS[0]] - normalized[:, MOUTH_CORNERS[1]], axis=-1)
    rest_width = np.linalg.norm(rest[MOUTH_CORNERS[0]] - rest[MOUTH_CORNERS[1]])
    return np.stack([opening, width / rest_width], axis=-1)


def rest_shape(normalized: np.ndarray) -> np.ndarray:
    """Closed-mouth rest shape: median of the 15% of frames with the smallest lip gap."""
    opening = normalized[:, INNER_LIP_MID[1], 1] - normalized[:, INNER_LIP_MID[0], 1]
    closed = opening <= np.percentile(opening, 15)
    return np.median(normalized[closed], axis=0)


def viseme_shapes(sources: list[np.ndarray]) -> np.ndarray:
    template = default_template().points
    template_width = np.linalg.norm(template[MOUTH_CORNERS[0]] - template[MOUTH_CORNERS[1]])
    weight = lower_face_weight(template)[:, None]
    features, offsets = [], []
    for normalized in sources:
        rest = rest_shape(normalized)
        rest_width = np.linalg.norm(rest[MOUTH_CORNERS[0]] - rest[MOUTH_CORNERS[1]])
        features.append(mouth_features(normalized, rest))
        offsets.append((normalized - rest) * (template_width / rest_width) * weight)
    features = np.concatenate(features)
    offsets = np.concatenate(offsets)
    shapes = np.zeros((len(VISEME_NAMES), N_LANDMARKS, 3), np.float32)
    for i, name in enumerate(VISEME_NAMES):
        if name == "sil":
            continue
        target = np.array(VISEME_TARGETS[name])
        distance = np.hypot((features[:, 0] - target[0]) / OPEN_SCALE, (features[:, 1] - target[1]) / WIDTH_SCALE)
        nearest = np.argsort(distance)[:NEAREST_FRAMES]
        shapes[i] = offsets[nearest].mean(axis=0)
        got = features[nearest].mean(axis=0)
        print(f"viseme {name:>3}: target open {target[0]:.3f} width {target[1]:.2f} -> got {got[0]:.3f} {got[1]:.2f}")
    return shapes


def lip_gap(normalized: np.ndarray) -> np.ndarray:
    """(T,) inner-lip gap, canonical units (= fraction of the outer-eye-corner distance)."""
    return normalized[:, INNER_LIP_MID[1], 1] - normalized[:, INNER_LIP_MID[0], 1]


def _regress_on_gap(normalized: np.ndarray) -> np.ndarray:
    """(2, 478, 3) intercept and slope of every landmark coordinate regressed on the inner-lip gap."""
    gap = lip_gap(normalized).astype(np.float64)
    design = np.stack([np.ones_like(gap), gap], axis=1)
    coef, *_ = np.linalg.lstsq(design, normalized.reshape(len(gap), -1).astype(np.float64), rcond=None)
    return coef.reshape(2, *normalized.shape[1:])


def opening_shape(normalized: np.ndarray) -> np.ndarray:
    """(478, 3) how the clip's face moves per canonical unit of inner-lip gap (regression slope over
    all frames): how far the upper lip rises, the corners move and the chin drops as the lips part."""
    return _regress_on_gap(normalized)[1]


def closed_expression(normalized: np.ndarray) -> np.ndarray:
    """(478, 3) the clip's shape at zero lip gap: every coordinate regressed on the inner-lip gap
    over *all* frames (speech included), intercept taken. Unlike the median of the most-closed
    frames (bilabials: lips pressed, narrow), this keeps the expression's own mouth width, corner
    height and upper-lip raise, and every frame of the clip contributes."""
    return _regress_on_gap(normalized)[0]


def emotion_priors(data: Path) -> dict[str, np.ndarray]:
    actors = ("M030", "W009", "W011")
    cues: dict[tuple[str, str], FaceCues] = {}
    for actor in actors:
        for emotion in EMOTIONS:
            clip = next((data / "mead_clips").glob(f"{actor}_{emotion}_level*_001.mp4"))
            cues[actor, emotion] = extract_cues(clip)
    offsets = np.zeros((len(EMOTIONS), N_LANDMARKS, 3), np.float32)
    opening = np.zeros((len(EMOTIONS), N_LANDMARKS, 3), np.float32)
    pose_mean = np.zeros((len(EMOTIONS), 3), np.float32)
    pose_std = np.zeros((len(EMOTIONS), 3), np.float32)
    gaze_mean = np.zeros((len(EMOTIONS), 2), np.float32)
    gaze_std = np.zeros((len(EMOTIONS), 2), np.float32)
    blink_rate = np.zeros(len(EMOTIONS), np.float32)
    jaw_opening = np.zeros(len(EMOTIONS), np.float32)
    speech_gain = np.zeros(len(EMOTIONS), np.float32)
    for e, emotion in enumerate(EMOTIONS):
        per_actor, per_actor_opening, blinks, seconds = [], [], 0, 0.0
        for actor in actors:
            c, neutral = cues[actor, emotion], cues[actor, "neutral"]
            # the emotion's expression at closed lips; its speech opens the mouth on top of it
            per_actor.append(closed_expression(c.normalized) - closed_expression(neutral.normalized))
            # ... and how its lips part differently from neutral speech's (a snarl raises the
            # upper lip, anger squares the corners, sadness drops the lower lip)
            per_actor_opening.append(opening_shape(c.normalized) - opening_shape(neutral.normalized))
            gap, gap_neutral = lip_gap(c.normalized), lip_gap(neutral.normalized)
            lo, hi = np.percentile(gap, [10, 90])
            lo_n, hi_n = np.percentile(gap_neutral, [10, 90])
            jaw_opening[e] += (lo - lo_n) / len(actors)  # the jaw held open while speaking
            speech_gain[e] += (hi - lo) / max(hi_n - lo_n, 1e-6) / len(actors)  # wider speech movements
            pose_mean[e] += (np.median(c.pose_angles, 0) - np.median(neutral.pose_angles, 0)) / len(actors)
            pose_std[e] += c.pose_angles.std(0) / len(actors)
            gaze_mean[e] += (np.median(c.combined_gaze, 0) - np.median(neutral.combined_gaze, 0)) / len(actors)
            gaze_std[e] += c.combined_gaze.std(0) / len(actors)
            blinks += len(c.blinks())
            seconds += c.duration_s
        if emotion == "contempt":
            # a one-sided expression: actors raise either corner, and averaging would cancel it;
            # each actor's is mirrored, where needed, to raise the subject's left corner (291)
            flip = [o[MOUTH_CORNERS[1], 1] > o[MOUTH_CORNERS[0], 1] for o in per_actor]
            per_actor = [mirror_shape(o) if f else o for o, f in zip(per_actor, flip)]
            per_actor_opening = [mirror_shape(o) if f else o for o, f in zip(per_actor_opening, flip)]
        offsets[e] = np.mean(per_actor, axis=0)
        opening[e] = np.mean(per_actor_opening, axis=0)
        if emotion not in ONE_SIDED_EMOTIONS:
            for shapes in (offsets, opening):
                shapes[e] = 0.5 * (shapes[e] + mirror_shape(shapes[e]))
        for shapes in (offsets, opening):
            shapes[e, N_MESH_POINTS:] = shapes[e, N_MESH_POINTS:].mean(0)  # iris moves with its eye
        blink_rate[e] = 60.0 * blinks / seconds
        o = offsets[e]
        print(
            f"emotion {emotion:>9}: mouth width {o[MOUTH_CORNERS[1], 0] - o[MOUTH_CORNERS[0], 0]:+.3f} "
            f"jaw {jaw_opening[e]:+.3f} speech x{speech_gain[e]:.2f} pose offset {np.round(pose_mean[e], 1)} "
            f"std {np.round(pose_std[e], 1)} gaze offset {np.round(gaze_mean[e], 1)} std {np.round(gaze_std[e], 1)} "
            f"blinks/min {blink_rate[e]:.0f}"
        )
    return dict(
        emotion_offsets=offsets,
        emotion_opening=opening,
        emotion_jaw_opening=np.maximum(jaw_opening, 0.0).astype(np.float32),
        # MEAD's level-3 angry and fear are near shouting (x2.1 the neutral range): capped so that
        # ordinary speech does not open to a shout on every syllable
        emotion_speech_gain=np.clip(speech_gain, 1.0, MAX_SPEECH_GAIN).astype(np.float32),
        pose_mean=pose_mean,
        pose_std=pose_std,
        gaze_mean=gaze_mean,
        gaze_std=gaze_std,
        blink_rate=blink_rate,
        _neutral_sources=np.array([cues[a, "neutral"].normalized for a in actors], dtype=object),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "src" / "facecue" / "assets" / "cue_priors.npz")
    args = parser.parse_args()
    if not (args.data / "talking").is_dir():
        raise SystemExit(f"{args.data}: the shared real data (talking/, mead_clips/) is needed")
    emotions = emotion_priors(args.data)
    sources = [extract_cues(v, fps=25).normalized for v in sorted((args.data / "talking").glob("*.mp4"))]
    sources += list(emotions.pop("_neutral_sources"))
    shapes = viseme_shapes(sources)
    template = default_template().points
    np.savez_compressed(
        args.out,
        kind="facecue.cue_priors",
        version=3,
        viseme_names=np.array(VISEME_NAMES),
        viseme_offsets=shapes,
        emotion_names=np.array(EMOTIONS),
        reference_mouth_width=np.float32(np.linalg.norm(template[MOUTH_CORNERS[0]] - template[MOUTH_CORNERS[1]])),
        lower_face_weight=lower_face_weight(template),
        **emotions,
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
