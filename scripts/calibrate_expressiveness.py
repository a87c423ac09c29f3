"""Closed-loop calibration of facecue's expressiveness against real footage.

Usage: python scripts/calibrate_expressiveness.py [--data ../shared/data] [--out docs/calibration]
           [--parts mouth geometry recogniser]
           [--try '{"gains": {...}, "detail": 1.6, "emphasis": {"fear": {"jaw": 1.5}},
                    "actions": {"fear": {"lip_stretch": 0.05}}, "detail_emphasis": {"sad": 2.0},
                    "teeth_bared": {"happy": 0.5}, "detail_shrink": 0.03}' ...]

Render, re-extract with facecue's own extractor (MediaPipe + cue geometry) or read with the
FER2013 recogniser, compare with the real statistics. Only **calibration** material is used here;
``benchmarks/expressiveness.py`` reports on portraits and speech this script never sees.

* **mouth** — the 4 calibration talking videos (``CALIBRATION_TALKING``) re-driven from their
  first frame with their own audio: inner-lip gap p50/p90 over the real video's. Sets
  ``phonetic.SPEECH_MOUTH_GAIN``, ``SPEECH_JAW_OPENING``, ``LOUDNESS_FLOOR``.
* **geometry** — each MEAD actor rendered from their neutral frame with each emotion (M030's real
  sad speech): the expression re-extracted from the rendered video (closed-lip regression, as the
  priors are built) projected on the real clip's, per face region (1.0 = the real amplitude); and
  the mouth's median width and corner height over the actor's neutral speech, real and rendered.
* **recogniser** — 6 emotions + neutral x the 4 StyleTalk portraits and 5 MEAD frames
  (``CALIBRATION_MEAD_FRAMES``, two of them smiling) with 6 s of StyleTalk speech: top-1 of the
  FER2013 recogniser. Sets ``phonetic.EMOTION_REGION_GAINS``, ``render.DETAIL_GAIN``,
  ``phonetic.EMOTION_EMPHASIS``, ``phonetic.EMOTION_ACTIONS``, ``render.EMOTION_DETAIL_EMPHASIS``
  and ``render.EMOTION_TEETH_BARED``; ``--try`` evaluates other settings in the same run
  (``detail_shrink``: the detail maps' log-ratios shrunk toward 0 by this much, a soft threshold
  that keeps the deep creases and drops the faint mottling, :func:`shrunk_detail_maps`).

Parts not run keep their previous results in ``--out`` (each part's date is shown).
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
sys.path.insert(0, str(ROOT / "scripts"))

CALIBRATION_TALKING = ("styletalk_KristiNoem", "styletalk_Obama_clip3", "styletalk_andrew_clip_1",
                       "styletalk_feifeili_clip2_short")
CALIBRATION_PORTRAITS = ("styletalk_KristiNoem", "styletalk_andrew_clip_1", "styletalk_feifeili_clip1",
                         "styletalk_reagan_clip1")
# MEAD frames used as portraits too (actor, clip, frame): the neutral clips' first frames and, for
# smiling portraits, a frame of the happy clips (the report set has two broad smiles)
CALIBRATION_MEAD_FRAMES = (("M030", "neutral_level1", 0), ("W009", "neutral_level1", 0), ("W011", "neutral_level1", 0),
                           ("M030", "happy_level3", 30), ("W009", "happy_level3", 30))
CALIBRATION_SPEECH = ("styletalk_Obama_clip1", "styletalk_reagan_clip1", "styletalk_KristiNoem", "styletalk_andrew_clip_1")
PARTS = ("mouth", "geometry", "recogniser")
JUDGED = ("neutral", "angry", "disgusted", "fear", "happy", "sad", "surprised")
SPEECH_SECONDS = 6.0


def lip_gap(normalized: np.ndarray) -> np.ndarray:
    return normalized[:, 14, 1] - normalized[:, 13, 1]


def mouth(data: Path, tmp: Path) -> list[dict]:
    from facecue.cues import extract_cues
    from facecue.generate import generate
    from facecue.io import iter_video_frames, write_image

    rows = []
    for name in CALIBRATION_TALKING:
        video = data / "talking" / f"{name}.mp4"
        portrait = tmp / f"{name}.png"
        write_image(portrait, next(iter_video_frames(video)))
        audio = data / "speech" / f"{name}.wav"
        generate(portrait, audio if audio.is_file() else video, tmp / f"{name}.mp4")  # a video's own sound track
        real, fake = lip_gap(extract_cues(video, fps=25).normalized), lip_gap(extract_cues(tmp / f"{name}.mp4", fps=25).normalized)
        row = {"clip": name, **{f"{k}_{q}": float(np.percentile(v, q)) for k, v in (("real", real), ("facecue", fake)) for q in (50, 90)}}
        rows.append(row)
        print(f"mouth {name}: p50 {row['facecue_50'] / row['real_50']:.2f} p90 {row['facecue_90'] / row['real_90']:.2f}", flush=True)
    return rows


def mouth_shape(normalized: np.ndarray) -> tuple[float, float]:
    """Medians over frames of the mouth's width (corner to corner) and of its corners' height
    below the midpoint of the inner lips' centres (< 0: corners higher), both over the outer eye
    corners' distance; ``normalized`` (T, 478, 3) cue landmarks."""
    from facecue.landmarks import eye_corner_distance

    eyes = eye_corner_distance(normalized)
    width = np.linalg.norm(normalized[:, 61, :2] - normalized[:, 291, :2], axis=1) / eyes
    middle = (normalized[:, 13, 1] + normalized[:, 14, 1]) / 2
    corners = ((normalized[:, 61, 1] + normalized[:, 291, 1]) / 2 - middle) / eyes
    return float(np.median(width)), float(np.median(corners))


def region_masks() -> dict[str, np.ndarray]:
    """(478,) weights of the three regions the gains act on (as phonetic.emotion_gain_map)."""
    import facecue.phonetic as phonetic

    saved = phonetic.emotion_settings()
    masks = {}
    try:
        for region in saved["gains"]:
            phonetic.set_emotion_region_gains(**{k: float(k == region) for k in saved["gains"]})
            masks[region] = phonetic.emotion_gain_map()[0, :, 0].copy()  # neutral: no emphasis
    finally:
        phonetic.restore_emotion_settings(saved)
    return masks


def geometry(data: Path, tmp: Path) -> list[dict]:
    from build_cue_priors import closed_expression

    from facecue.constants import EMOTIONS
    from facecue.cues import extract_cues
    from facecue.generate import generate
    from facecue.io import iter_video_frames, write_image

    clips = data / "mead_clips"
    audio = clips / "M030_sad_level3_001.wav"
    masks = region_masks()
    rows = []
    for actor in ("M030", "W009", "W011"):
        neutral_clip = next(clips.glob(f"{actor}_neutral_level*_001.mp4"))
        portrait = tmp / f"{actor}.png"
        write_image(portrait, next(iter_video_frames(neutral_clip)))
        real_cues = extract_cues(neutral_clip).normalized
        real_neutral, real_neutral_mouth = closed_expression(real_cues), mouth_shape(real_cues)
        rendered, rendered_mouth = {}, {}
        for emotion in EMOTIONS:
            out = tmp / f"{actor}_{emotion}.mp4"
            generate(portrait, audio, out, emotion=emotion)
            cues = extract_cues(out).normalized
            rendered[emotion], rendered_mouth[emotion] = closed_expression(cues), mouth_shape(cues)
        for emotion in EMOTIONS[1:]:
            real_cues = extract_cues(next(clips.glob(f"{actor}_{emotion}_level*_001.mp4"))).normalized
            real = closed_expression(real_cues) - real_neutral
            fake = rendered[emotion] - rendered["neutral"]
            real_mouth = np.subtract(mouth_shape(real_cues), real_neutral_mouth)
            fake_mouth = np.subtract(rendered_mouth[emotion], rendered_mouth["neutral"])
            row = {"actor": actor, "emotion": emotion,
                   "width_real": float(real_mouth[0]), "width_facecue": float(fake_mouth[0]),
                   "corners_real": float(real_mouth[1]), "corners_facecue": float(fake_mouth[1])}
            for region, w in masks.items():
                r, f = real[:468] * w[:468, None], fake[:468] * w[:468, None]
                row[region] = float((r * f).sum() / max((r * r).sum(), 1e-12))
            rows.append(row)
            print(f"geometry {actor} {emotion}: " + " ".join(f"{k} {row[k]:.2f}" for k in masks)
                  + f" width {row['width_real']:+.3f}/{row['width_facecue']:+.3f}", flush=True)
    return rows


def recogniser(data: Path, tmp: Path, settings: list[dict]) -> list[dict]:
    import facecue.phonetic as phonetic
    import facecue.render as render
    from facecue.constants import EMOTIONS
    from facecue.expression import load_recogniser, read_video_emotion
    from facecue.generate import generate
    from facecue.io import iter_video_frames, read_audio, write_image, write_wav

    model = load_recogniser()
    portraits = {name: data / "portraits" / f"{name}.png" for name in CALIBRATION_PORTRAITS}
    for actor, clip, index in CALIBRATION_MEAD_FRAMES:
        path = tmp / f"{actor}_{clip}_{index}.png"
        write_image(path, list(iter_video_frames(data / "mead_clips" / f"{actor}_{clip}_001.mp4"))[index])
        portraits[path.stem] = path
    speech = []
    for name in CALIBRATION_SPEECH:
        path = tmp / f"speech_{name}.wav"
        write_wav(path, read_audio(data / "speech" / f"{name}.wav")[: int(16000 * SPEECH_SECONDS)])
        speech.append(path)
    saved = (phonetic.emotion_settings(), render.DETAIL_GAIN, render.EMOTION_DETAIL_EMPHASIS,
             render.EMOTION_TEETH_BARED, render.expression_detail_maps)
    bundled_maps = saved[-1]

    def restore() -> None:
        phonetic.restore_emotion_settings(saved[0])
        (render.DETAIL_GAIN, render.EMOTION_DETAIL_EMPHASIS, render.EMOTION_TEETH_BARED,
         render.expression_detail_maps) = saved[1:]

    def per_emotion_tuple(current: tuple, changes: dict) -> tuple:  # {"sad": 2.0} over an EMOTIONS-ordered tuple
        return tuple(float(changes.get(name, value)) for name, value in zip(EMOTIONS, current))

    results = []
    try:
        for setting in settings:
            phonetic.set_emotion_region_gains(**setting.get("gains", {}))
            render.DETAIL_GAIN = float(setting.get("detail", render.DETAIL_GAIN))
            render.EMOTION_DETAIL_EMPHASIS = per_emotion_tuple(render.EMOTION_DETAIL_EMPHASIS,
                                                               setting.get("detail_emphasis", {}))
            render.EMOTION_TEETH_BARED = per_emotion_tuple(render.EMOTION_TEETH_BARED, setting.get("teeth_bared", {}))
            shrink = float(setting.get("detail_shrink", 0.0))
            if shrink > 0:  # the maps are laid onto the portrait in this process (prepare), workers get them so
                shrunk = shrunk_detail_maps(bundled_maps(), shrink)
                render.expression_detail_maps = lambda: shrunk
            for emotion, factors in setting.get("emphasis", {}).items():
                phonetic.set_emotion_emphasis(emotion, **factors)
            for emotion, amounts in setting.get("actions", {}).items():
                phonetic.set_emotion_actions(emotion, **amounts)
            reads = []
            for k, (name, portrait) in enumerate(portraits.items()):
                for emotion in JUDGED:
                    out = tmp / f"rec_{name}_{emotion}.mp4"
                    generate(portrait, speech[k % len(speech)], out, emotion=emotion, full=False, size=256)
                    reading = read_video_emotion(out, model=model)
                    reads.append((name, emotion, reading.label, reading.mean_probability(emotion)))
            emo = [r for r in reads if r[1] != "neutral"]
            result = {"gains": dict(phonetic.EMOTION_REGION_GAINS), "detail": render.DETAIL_GAIN,
                      "emphasis": {k: dict(v) for k, v in phonetic.EMOTION_EMPHASIS.items()},
                      "actions": {k: dict(v) for k, v in phonetic.EMOTION_ACTIONS.items()},
                      "detail_emphasis": dict(zip(EMOTIONS, render.EMOTION_DETAIL_EMPHASIS)),
                      "teeth_bared": dict(zip(EMOTIONS, render.EMOTION_TEETH_BARED)), "detail_shrink": shrink,
                      "top1_6_emotions": sum(r[1] == r[2] for r in emo) / len(emo),
                      "neutral_as_neutral": sum(r[2] == "neutral" for r in reads if r[1] == "neutral"),
                      "portraits": list(portraits), "reads": reads}
            results.append(result)
            hits = {e: emotion_hits(reads, e) for e in JUDGED[1:]}
            print(f"recogniser {setting}: {result['top1_6_emotions']:.0%} {hits}, mean p(target) "
                  f"{ {e: mean_target_probability(reads, e) for e in JUDGED[1:]} }", flush=True)
            restore()
    finally:
        restore()
    return results


def shrunk_detail_maps(maps: np.ndarray, amount: float) -> np.ndarray:
    """``maps`` (8, C, C) float32 log-luminance ratios, each value moved ``amount`` toward 0 and
    those within ``amount`` of it set to 0 (a soft threshold): the deep creases stay, less deep by
    ``amount``, and the faint mottling of the averaged maps goes."""
    return (np.sign(maps) * np.maximum(np.abs(maps) - np.float32(amount), 0.0)).astype(np.float32)


def emotion_hits(reads: list, emotion: str) -> int:
    """How many of ``emotion``'s videos the recogniser read as ``emotion`` (reads: (portrait,
    target, read as[, p(target)]))."""
    return sum(r[1] == emotion and r[2] == emotion for r in reads)


def mean_target_probability(reads: list, emotion: str) -> float | None:
    """Mean over portraits of the recogniser's probability of ``emotion`` on its videos; None for
    reads stored without probabilities (before 2026-12-05)."""
    values = [r[3] for r in reads if r[1] == emotion and len(r) > 3 and r[3] is not None]
    return float(np.mean(values)) if values else None


def dated(results: dict) -> str:
    """When each part was last measured, e.g. "mouth 2026-12-01, recogniser 2026-12-02"."""
    dates = results.get("dates", {})
    if len(set(dates.values())) <= 1:
        return next(iter(dates.values()), results["date"])
    return ", ".join(f"{part} {dates[part]}" for part in PARTS if part in dates)


def write(out: Path, results: dict) -> None:
    import facecue.phonetic as phonetic
    import facecue.render as render
    from build_expression_detail import BROW_CLEAR_MARGIN, BROW_REGISTERED, BROW_SOFTEN

    lines = ["# Calibration of expressiveness (calibration material only)", "",
             f"Made by `python scripts/calibrate_expressiveness.py` ({dated(results)}). The reported figures, on "
             "portraits and speech never used here, are in [../expressiveness/README.md](../expressiveness/README.md).", ""]
    if "mouth" in results:
        lines += ["## Mouth: rendered vs real inner-lip gap (calibration talking videos)", "",
                  "| clip | real p50 | facecue p50 | real p90 | facecue p90 | p50 ratio | p90 ratio |", "|---|--:|--:|--:|--:|--:|--:|"]
        for r in results["mouth"]:
            lines.append(f"| {r['clip']} | {r['real_50']:.3f} | {r['facecue_50']:.3f} | {r['real_90']:.3f} | {r['facecue_90']:.3f} | "
                         f"{r['facecue_50'] / r['real_50']:.2f} | {r['facecue_90'] / r['real_90']:.2f} |")
        lines.append("")
    if "geometry" in results:
        lines += ["## Expression geometry re-read from the rendered video, over the real clip's", "",
                  "Projection of the rendered expression (closed-lip regression over the rendered clip, minus the rendered "
                  "neutral) on the real one (the actor's level-3 clip minus their neutral clip), per region: 1.00 = the real "
                  "amplitude. These are read back *with* the region gains applied: the mesh warp and MediaPipe lose much of an expression, and the gains bring the re-read amplitude near the real one (see the recogniser table for why they were chosen). "
                  "*Mouth width* and *corners*: the median mouth width and corner height (below the lips' midpoint; "
                  "< 0: raised) over the same actor's neutral speech, in eye-corner distances, real and rendered.", "",
                  "| actor | emotion | brows | eyes | lower face | mouth width, real | rendered | corners, real | rendered |",
                  "|---|---|--:|--:|--:|--:|--:|--:|--:|"]
        for r in results["geometry"]:
            mouth_cells = (f"{r['width_real']:+.3f} | {r['width_facecue']:+.3f} | {r['corners_real']:+.3f} | "
                           f"{r['corners_facecue']:+.3f}" if "width_real" in r else " | | | ")
            lines.append(f"| {r['actor']} | {r['emotion']} | {r['brows']:.2f} | {r['eyes']:.2f} | {r['lower']:.2f} | {mouth_cells} |")
        lines.append("")
    if "recogniser" in results:
        lines += ["## FER2013 recogniser on calibration portraits", "",
                  f"Portraits: {', '.join(results['recogniser'][0]['portraits'])}; speech: first {SPEECH_SECONDS:.0f} s of "
                  f"{', '.join(CALIBRATION_SPEECH)}; 256 px crops.", "",
                  "Renderer per emotion: *detail x* multiplies the detail gain on the brows "
                  "(`render.EMOTION_DETAIL_EMPHASIS`; maps built with the MEAD actors' brow hair registered: "
                  f"{', '.join(BROW_REGISTERED)}, and the brows then cleared: "
                  f"{', '.join(f'{e} {m:g}' for e, m in BROW_CLEAR_MARGIN.items())} eye units; the brows "
                  f"softened: {', '.join(f'{e} {m:g}' for e, m in BROW_SOFTEN.items())} eye units, "
                  "`scripts/build_expression_detail.py`), "
                  "*teeth bared* is how far the emotion bares "
                  "the synthesized teeth (`render.EMOTION_TEETH_BARED`); emotions not named: 1 and 0. The lip "
                  f"stretch of *action shapes* drops the mouth corners {phonetic.LIP_STRETCH_DROP:g} of its sideways "
                  "travel (`phonetic.LIP_STRETCH_DROP`).", "",
                  "| brows | eyes | lower face | detail | per-emotion emphasis | action shapes "
                  "| detail x | teeth bared "
                  f"| top-1, 6 emotions (of {len(results['recogniser'][0]['portraits'])} each; p: mean "
                  "probability of the target) "
                  "| neutral read as neutral |",
                  "|--:|--:|--:|--:|---|---|---|---|--:|--:|"]
        def per_emotion(table: dict) -> str:  # {"fear": {"jaw": 1.5}} -> "fear jaw 1.5"
            return "; ".join(f"{e} " + ", ".join(f"{k} {v:g}" for k, v in f.items()) for e, f in table.items()) or "none"

        def named(table: dict, default: float) -> str:  # {"sad": 2.2, "angry": 1.0} -> "sad 2.2"
            return ", ".join(f"{e} {v:g}" for e, v in table.items() if v != default) or "none"

        for r in results["recogniser"]:
            g = r["gains"]
            emphasis, actions = per_emotion(r.get("emphasis", {})), per_emotion(r.get("actions", {}))
            shrunk = f" (maps shrunk {r['detail_shrink']:g})" if r.get("detail_shrink") else ""
            judged = list(dict.fromkeys(x[1] for x in r["reads"] if x[1] != "neutral"))
            hits = ", ".join(f"{e} {emotion_hits(r['reads'], e)}" + (
                f" (p {p:.2f})" if (p := mean_target_probability(r["reads"], e)) is not None else "") for e in judged)
            lines.append(f"| {g['brows']:.1f} | {g['eyes']:.1f} | {g['lower']:.1f} | {r['detail']:.1f}{shrunk} | "
                         f"{emphasis} | {actions} | "
                         f"{named(r.get('detail_emphasis', {}), 1.0)} | {named(r.get('teeth_bared', {}), 0.0)} | "
                         f"{r['top1_6_emotions']:.0%} ({hits}) | {r['neutral_as_neutral']}/{len(r['portraits'])} |")
    (out / "README.md").write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps(results, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "calibration")
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS,
                        help="what to measure (default: all); the other parts keep their previous results")
    parser.add_argument("--try", dest="settings", nargs="*", default=[], type=json.loads,
                        help='other settings to evaluate, e.g. \'{"gains": {"brows": 2.0}, "detail": 1.0}\'')
    args = parser.parse_args()
    if not (args.data / "talking").is_dir():
        raise SystemExit(f"{args.data}: the shared real data is needed")
    args.out.mkdir(parents=True, exist_ok=True)
    # parts not run this time keep their previous results (with their own dates)
    previous = args.out / "results.json"
    results: dict = json.loads(previous.read_text()) if previous.is_file() else {}
    dates = results.setdefault("dates", {part: results.get("date", "unknown") for part in PARTS if part in results})
    results["date"] = time.strftime("%Y-%m-%d")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if "mouth" in args.parts:
            results["mouth"] = mouth(args.data, tmp)
        if "geometry" in args.parts:
            results["geometry"] = geometry(args.data, tmp)
        if "recogniser" in args.parts:
            results["recogniser"] = recogniser(args.data, tmp, [{}] + list(args.settings))
    dates.update({part: results["date"] for part in args.parts})
    write(args.out, results)
    print(f"wrote {args.out / 'README.md'}")


if __name__ == "__main__":
    main()
