"""Expressiveness bars of facecue against real footage and an independent recogniser.

Usage: python benchmarks/expressiveness.py [--data ../shared/data] [--out docs/expressiveness]
                                           [--parts mouth emotion mead closeup second third] [--cue-model phonetic]
                                           [--second-set DREAMTALK/data/src_img]
                                           [--third-set SADTALKER/examples/source_image]

Every number comes from facecue's own videos re-read from the pixels (MediaPipe landmarks, the
FER2013 recogniser of ``facecue.expression``), never from the cues that drove them:

* **mouth** — each real talking video (``talking/``) re-driven from its first frame with its
  own audio, and MEAD M030 from his neutral clip's first frame with his real sad audio; the
  inner-lip gap / outer-eye-corner distance (MediaPipe on the rendered video) p50 and p90 over
  the real video's. Calibration used 4 of the talking videos (marked) and their audio. Lip sync
  of the same videos: the product bars' measure (Pearson r of the gap with the audio's RMS
  envelope, best lag within +-5 frames, :func:`facecue.evaluate.lip_sync_score`) on the real
  video and on facecue's, and r of facecue's gap with the real video's gap (timing against the
  real speaker, same lags).
* **emotion** — 6 emotions + neutral x 5 portraits never used for calibration (NASA astronaut,
  Obama official portrait, the DreamTalk male and zp1 portraits, the EDTalk portrait) x real speech never
  used for calibration (LibriSpeech, LJSpeech, JFK): the recogniser's top-1, a confusion matrix,
  and for scale the same recogniser on the real MEAD level-3 clips (``--parts mead``: per emotion,
  beside facecue's, with 95 % Wilson intervals on the totals; EAMM's MEAD clips of unstated actor
  and level apart).
* **second**, **third** — the same for further sets of unseen portraits, each fixed before any was
  rendered (``UNSEEN_SETS``: DreamTalk's other source portraits, 4 photographs, a painting, a
  sculpture and a 3D cartoon; SadTalker's example photographs, 5 photographs and 4 generated ones;
  not in the shared data: ``--second-set`` / ``--third-set`` take the folder of a checkout, and the
  files are checked by their git blob ids), with what the recogniser reads in each still portrait.
* **eyes** — for the same videos and for contempt (which the recogniser has no class for), the
  rendered eye aperture outside blinks over the portrait's.
* **identity** — neutral renderings: face-contour and nose landmarks (MediaPipe on the video,
  head pose removed) against the portrait's, median over frames, in % of the eye-corner distance.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from facecue.constants import MOUTH_CORNERS  # noqa: E402

CALIBRATION_TALKING = ("styletalk_KristiNoem", "styletalk_Obama_clip3", "styletalk_andrew_clip_1",
                       "styletalk_feifeili_clip2_short")
# The report set's portraits (paths under the shared data) and what each shows
REPORT_PORTRAIT_KINDS = {"portraits/nasa_eileen_collins_astronaut_512.png": "photograph",
                         "portraits/whitehouse_obama_official_2012_910x1137.jpg": "photograph",
                         "peers/dreamtalk_male_portrait.png": "photograph", "peers/edtalk_portrait.jpg": "photograph",
                         "peers/dreamtalk_zp1_portrait.png": "painting"}
REPORT_PORTRAITS = tuple(REPORT_PORTRAIT_KINDS)
REPORT_SPEECH = ("speech/librispeech_198-209-0000.wav", "speech/ljspeech_LJ050-0131.wav", "speech/whisper_jfk.wav",
                 "speech/librispeech_3436-172162-0000.wav")


@dataclass(frozen=True)
class PinnedFiles:
    """Files of a public repository at one commit, fixed before any of them was rendered and
    checked by their git blob ids (not in the shared data: a command-line option takes the folder
    of a checkout)."""

    title: str  # the report's heading
    source: str  # GitHub owner/name
    commit: str
    folder: str  # the checkout's folder that the option takes
    terms: str
    files: tuple[tuple[str, str, str], ...]  # (path under folder, label, git blob id)

    def checked(self, folder: Path, option: str) -> list[tuple[Path, str]]:
        """``(path, label)`` of each of ``files`` in ``folder`` (given as ``option``); exits with a
        one-line message naming the first one missing or not the file of that commit."""
        found = []
        for rel, label, blob in self.files:
            path = folder / rel
            if not path.is_file():
                raise SystemExit(f"{path}: not found; {option} takes the {self.folder} folder of {self.source} at "
                                 f"commit {self.commit[:7]}")
            actual = git_blob_id(path)
            if actual != blob:
                raise SystemExit(f"{path}: not the file of {self.source} at {self.commit[:7]} "
                                 f"(git blob {actual[:12]}, expected {blob[:12]})")
            found.append((path, label))
        return found


@dataclass(frozen=True)
class UnseenSet(PinnedFiles):
    """A further set of portraits never used for calibration or any choice (``--<part>-set DIR``);
    each file's label is what it shows (photograph, painting...)."""

    part: str  # the --parts name
    rule: str  # which files, as fixed before rendering

    @property
    def results_key(self) -> str:
        return f"emotion_{self.part}"

    @property
    def sheet_key(self) -> str:
        return f"{self.part}_sheet"


# Both fixed on 2026-12-06 before any of their portraits was rendered.
SECOND = UnseenSet(
    part="second", title="A second unseen set: DreamTalk's other source portraits", source="ali-vilab/dreamtalk",
    commit="ba798b0e586d96a63f61050f7e8e17287ff3c859", folder="data/src_img",
    terms="MIT (repository); the images' own rights are not stated",
    rule="every source portrait that the report set above does not hold already (its zp1 and male portraits are "
         "DreamTalk's; `uncut_src_img.jpg` is `cut_img.png`'s photograph uncropped), whatever it shows",
    files=(("cropped/cut_img.png", "photograph", "327972e6cc3c431ac8774453c9d06ffc9dda6830"),
           ("cropped/f30.png", "photograph", "5c5118ef14e28d290a72ed4aaea25a7f19c6c16b"),
           ("uncropped/face3.png", "photograph", "f9962172854227c47b7d572db0290eb9b3b5b974"),
           ("cropped/menglu2.png", "photograph", "7c869aaac7a7f5e5aeded9dd8c248c61bc1eb9b6"),
           ("cropped/chpa5.png", "painting", "28d920861833df3281bb657da39991cd72ab7178"),
           ("cropped/nscu2.png", "sculpture", "4b16dc9c89286b7a5a116a25c696cd3280ad2187"),
           ("cropped/zt12.png", "3D cartoon", "998551d51e497862518d8b7bf2c6636a93cc98d8")))
THIRD = UnseenSet(
    part="third", title="A third unseen set: SadTalker's example photographs", source="OpenTalker/SadTalker",
    commit="cd4c0465ae0b54a6f85af57f5c65fec9fe23e7f8", folder="examples/source_image",
    terms="Apache-2.0 (repository); the images' own rights are not stated",
    rule="every example source image that is not one of its `art_*` images (paintings and drawings), whatever it "
         "shows (two women appear twice: smiling in happy*.png, not in sad*.png)",
    files=(("full3.png", "generated photograph", "40cd6d6d3c5b95c29d6648c2ba7d7e27c9781970"),
           ("full4.jpeg", "generated photograph", "79f17f52123e8d173600e0df138a30e98ba2c6f3"),
           ("full_body_1.png", "generated photograph", "4fca65c949b7c7e7f7ed9459c473314a38be791f"),
           ("full_body_2.png", "generated photograph", "b7bc6228cb2f4e8c01af8d2f52bbbf62540e2412"),
           ("happy.png", "photograph", "9d194ba9a03dfda0867703d54ea6233819c46a73"),
           ("happy1.png", "photograph", "b702974cca1a648ec70efee776e484284b527c90"),
           ("people_0.png", "photograph", "8895eeb07a3e300b9bcfa3bb53e7a6a552182bc3"),
           ("sad.png", "photograph", "6584467fdac971207883cdcd84b31da1dbc4dfa6"),
           ("sad1.png", "photograph", "341e0cb70886995ecf72eebb4b8a4474ab7d287b")))
UNSEEN_SETS = (SECOND, THIRD)
JUDGED = ("neutral", "angry", "disgusted", "fear", "happy", "sad", "surprised")
# contempt is rendered too, for the eyes bar and the sheet; the recogniser has no class for it
RENDERED = JUDGED + ("contempt",)
PART_KEYS = {"mouth": "mouth", "emotion": "emotion", "closeup": "closeup", "mead": "mead_real",
             **{unseen.part: unseen.results_key for unseen in UNSEEN_SETS}}  # part -> results key
CONTOUR_NOSE = tuple(range(0, 0))  # filled in main() from the mesh topology


def within_mouth_bar(ratio_p50: float, ratio_p90: float) -> bool:
    """Issue 11's mouth bar on facecue's gap percentiles over the real video's: p90 within 20 %, p50 within 30 %."""
    return bool(abs(ratio_p90 - 1) <= 0.2 and abs(ratio_p50 - 1) <= 0.3)


def lip_gap(cues) -> np.ndarray:
    return cues.normalized[:, 14, 1] - cues.normalized[:, 13, 1]


def mouth_width(cues) -> np.ndarray:
    """(T,) mouth-corner distance over the outer eye corners' (as :func:`lip_gap`)."""
    return np.linalg.norm(cues.normalized[:, MOUTH_CORNERS[0], :2] - cues.normalized[:, MOUTH_CORNERS[1], :2], axis=-1)


def widening_with_gap(cues) -> float:
    """How much wider the mouth is per unit of inner-lip gap: the least-squares slope of
    :func:`mouth_width` on :func:`lip_gap` over the frames (both in eye-corner distances)."""
    return float(np.polyfit(lip_gap(cues), mouth_width(cues), 1)[0])


def redriven_cases(data: Path) -> list[tuple[str, Path, Path, Path, str]]:
    """The real videos that facecue re-drives: ``(name, real video, video whose first frame is the
    portrait, audio, emotion)`` for each talking video (its own audio, neutral) and MEAD M030's sad
    level-3 clip (from his neutral clip's first frame, with the sad clip's audio)."""
    cases = []
    for video in sorted((data / "talking").glob("*.mp4")):
        audio = data / "speech" / f"{video.stem}.wav"
        cases.append((video.stem, video, video, audio if audio.is_file() else video, "neutral"))
    clips = data / "mead_clips"
    cases.append(("M030_sad_level3_001", clips / "M030_sad_level3_001.mp4", clips / "M030_neutral_level1_001.mp4",
                  clips / "M030_sad_level3_001.wav", "sad"))
    return cases


def mouth_part(data: Path, tmp: Path, cue_model: str) -> list[dict]:
    from facecue.audio import loudness_envelope
    from facecue.cues import extract_cues
    from facecue.evaluate import lip_sync_score, mouth_opening
    from facecue.generate import generate
    from facecue.io import iter_video_frames, read_audio, write_image

    rows = []
    for name, real_video, first_frame_of, audio, emotion in redriven_cases(data):
        portrait = tmp / f"{name}_first.png"
        write_image(portrait, next(iter_video_frames(first_frame_of)))
        out = tmp / f"{name}_mouth.mp4"
        generate(portrait, audio, out, emotion=emotion, cue_model=cue_model)
        real_cues, fake_cues = extract_cues(real_video, fps=25), extract_cues(out, fps=25)
        real, fake = lip_gap(real_cues), lip_gap(fake_cues)
        row = {"clip": name, "calibration": name in CALIBRATION_TALKING, "emotion": emotion,
               "real_p50": float(np.percentile(real, 50)), "real_p90": float(np.percentile(real, 90)),
               "facecue_p50": float(np.percentile(fake, 50)), "facecue_p90": float(np.percentile(fake, 90))}
        row["ratio_p50"] = row["facecue_p50"] / row["real_p50"]
        row["ratio_p90"] = row["facecue_p90"] / row["real_p90"]
        row["pass"] = within_mouth_bar(row["ratio_p50"], row["ratio_p90"])
        # the product bars' lip-sync measure, on the real video and on facecue's
        real_opening, fake_opening = mouth_opening(real_cues), mouth_opening(fake_cues)
        loudness = loudness_envelope(read_audio(audio), real_cues.fps, len(real_opening))
        row["sync_real"] = float(lip_sync_score(real_opening, loudness)[0])
        row["sync_facecue"] = float(lip_sync_score(fake_opening, loudness)[0])
        row["sync_facecue_vs_real"] = float(lip_sync_score(fake_opening, real_opening)[0])
        row["widening_real"], row["widening_facecue"] = widening_with_gap(real_cues), widening_with_gap(fake_cues)
        row["width_real_p50"] = float(np.median(mouth_width(real_cues)))
        row["width_facecue_p50"] = float(np.median(mouth_width(fake_cues)))
        row["portrait_gap"] = float(lip_gap(extract_cues(portrait))[0])  # the first frame's own opening
        rows.append(row)
        print(f"mouth {name}: p50 {row['ratio_p50']:.2f} p90 {row['ratio_p90']:.2f}", flush=True)
    return rows


def report_cases(data: Path) -> list[tuple[Path, Path, dict]]:
    """``(portrait, speech, {})`` of the report set for :func:`emotion_rows`: each of
    ``REPORT_PORTRAITS`` with ``REPORT_SPEECH`` in turn."""
    return [(data / rel, data / REPORT_SPEECH[k % len(REPORT_SPEECH)], {}) for k, rel in enumerate(REPORT_PORTRAITS)]


def unseen_cases(data: Path, unseen: UnseenSet, folder: Path) -> list[tuple[Path, Path, dict]]:
    """``(portrait, speech, {"kind": ...})`` of an unseen set (``unseen``, from ``folder`` = its
    checkout's ``unseen.folder``, checked by git blob id) with the report set's speech in turn."""
    return [(portrait, data / REPORT_SPEECH[k % len(REPORT_SPEECH)], {"kind": kind})
            for k, (portrait, kind) in enumerate(unseen.checked(folder, f"--{unseen.part}-set"))]


def emotion_part(data: Path, tmp: Path, cue_model: str) -> list[dict]:
    """The report set: each of ``REPORT_PORTRAITS`` speaking each emotion (:func:`emotion_rows`)."""
    return emotion_rows(report_cases(data), tmp, cue_model)


def git_blob_id(path: Path) -> str:
    """The id git gives the file's content (``git hash-object``): sha1 of ``blob <size>\\0`` + content."""
    import hashlib

    content = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def unseen_set_part(data: Path, unseen: UnseenSet, folder: Path, tmp: Path, cue_model: str) -> list[dict]:
    """An unseen set (``unseen``, from ``folder`` = its checkout's ``unseen.folder``), with the
    report set's speech in turn; each row also says what the recogniser reads in the still
    portrait (``at_rest``, ``p_neutral_at_rest``)."""
    from facecue.expression import load_recogniser, recognise_faces, summarize_reading
    from facecue.io import read_image

    cases = []
    for portrait, speech, extra in unseen_cases(data, unseen, folder):
        still = summarize_reading(portrait, recognise_faces([read_image(portrait)], model=load_recogniser()))
        cases.append((portrait, speech,
                      {**extra, "at_rest": still.label, "p_neutral_at_rest": still.mean_probability("neutral")}))
    return emotion_rows(cases, tmp, cue_model)


def emotion_rows(cases: list[tuple[Path, Path, dict]], tmp: Path, cue_model: str, *,
                 emotions: tuple[str, ...] = RENDERED, wrinkles: float = 1.0) -> list[dict]:
    """Each ``(portrait, speech, extra fields)`` of ``cases`` speaking each of ``emotions`` (256
    px crops, the wrinkles at ``wrinkles``): what the recogniser reads, the eyes' opening outside
    blinks, and for neutral the identity error; one row a video."""
    from facecue.cues import FaceCues, extract_cues
    from facecue.expression import load_recogniser, read_video_emotion
    from facecue.generate import generate
    from facecue.io import read_image
    from facecue.landmarks import detect_landmarks

    model = load_recogniser()
    rows = []
    for portrait, speech, extra in cases:
        image = read_image(portrait)
        reference = FaceCues.from_landmarks(detect_landmarks(image)[None], 25.0, (image.shape[1], image.shape[0]))
        for emotion in emotions:
            out = tmp / f"{portrait.stem}_{emotion}.mp4"
            generate(portrait, speech, out, emotion=emotion, cue_model=cue_model, full=False, size=256,
                     wrinkles=wrinkles)
            reading = read_video_emotion(out, model=model)
            judged = emotion in JUDGED
            cues = extract_cues(out, fps=25)
            # eye aperture over the portrait's (both in the crop's geometry: apertures are ratios)
            blink_frames = np.zeros(cues.n_frames, bool)
            for start, stop in cues.blinks():
                blink_frames[max(start - 2, 0) : stop + 3] = True
            ratio = cues.aperture.mean(axis=1) / float(reference.aperture[0].mean())
            open_ratio = ratio[~blink_frames] if (~blink_frames).any() else ratio
            row = {"portrait": portrait.stem, "speech": speech.stem, "emotion": emotion, **extra,
                   "recognised": reading.label, "majority": reading.majority,
                   "p_target": reading.mean_probability(emotion) if judged else None,
                   "face_fraction": reading.face_fraction,
                   "eyes_open_fraction": float((open_ratio >= 0.5).mean()),
                   "eye_aperture_ratio_p5": float(np.percentile(open_ratio, 5))}
            if emotion == "neutral":
                row["identity_error_pct"] = identity_error(reference, cues)
            rows.append(row)
            print(f"emotion {portrait.stem} {emotion}: read {reading.label} "
                  f"(eyes open {row['eyes_open_fraction']:.2f})", flush=True)
    return rows


def closeup(data: Path, tmp: Path, out: Path, cue_model: str) -> str:
    """A 512 px face crop of a report portrait speaking, cut to the mouth and eyes at the widest
    mouth opening and at a narrowed-eye (angry) moment: how teeth and eyes look up close."""
    from facecue.generate import generate
    from facecue.io import iter_video_frames, write_image

    portrait = data / REPORT_PORTRAITS[2]
    speech = data / REPORT_SPEECH[0]
    tiles = []
    for emotion in ("happy", "angry", "surprised"):
        path = tmp / f"closeup_{emotion}.mp4"
        result = generate(portrait, speech, path, emotion=emotion, cue_model=cue_model, full=False, size=512)
        gap = result.cues.normalized[:, 14, 1] - result.cues.normalized[:, 13, 1]
        frames = list(iter_video_frames(path))
        for quantile in (0.6, 0.97):
            tiles.append(frames[int(np.argsort(gap)[int(quantile * (len(gap) - 1))])][140:460, 96:416])
    rows = [np.concatenate(tiles[k : k + 2], axis=1) for k in range(0, len(tiles), 2)]
    name = "closeup_512.png"
    write_image(out / name, np.concatenate(rows, axis=0))
    return name


def emotion_sheet(tmp: Path, out: Path, portraits=REPORT_PORTRAITS, name: str = "emotions_sheet.png") -> str:
    """``portraits`` (rows; paths whose stems name the emotion run's videos in ``tmp``) x
    emotions (columns), one frame each, written to ``out / name``."""
    import cv2

    from facecue.draw import labelled
    from facecue.io import iter_video_frames, write_image

    rows = []
    for portrait_rel in portraits:
        tiles = []
        for emotion in RENDERED:
            frames = list(iter_video_frames(tmp / f"{Path(portrait_rel).stem}_{emotion}.mp4"))
            tile = cv2.resize(frames[int(0.4 * len(frames))], (160, 160), interpolation=cv2.INTER_AREA)
            tiles.append(labelled(tile, emotion))
        rows.append(np.concatenate(tiles, axis=1))
    write_image(out / name, np.concatenate(rows, axis=0))
    return name


def identity_error(reference, cues) -> float:
    """Median over frames of the mean distance of face-contour and nose landmarks (normalized,
    head pose removed) from the portrait's, in % of the outer-eye-corner distance."""
    from facecue.render import mesh_topology

    topo = mesh_topology()
    nose = [1, 2, 4, 5, 6, 19, 94, 97, 98, 168, 195, 197, 326, 327]
    idx = np.r_[topo.oval, nose]
    ref = reference.normalized[0][idx, :2]
    err = np.linalg.norm(cues.normalized[:, idx, :2] - ref[None], axis=-1).mean(axis=1)
    return float(np.median(err) * 100)


def mead_real_rate(data: Path) -> dict:
    """The recogniser on real MEAD footage: the level-3 clips (neutral: level 1) of the 3 actors,
    with counts per emotion, and apart from them the EAMM clips whose actor and level the source
    does not state (``mead_clips/eamm_unknown_id/``, one per emotion; those it has a class for)."""
    from facecue.expression import load_recogniser, read_video_emotion

    model = load_recogniser()
    per_emotion = {}
    for emotion in JUDGED:
        clips = sorted((data / "mead_clips").glob(f"*_{emotion}_level*_001.mp4"))
        read_right = sum(read_video_emotion(clip, model=model).label == emotion for clip in clips)
        per_emotion[emotion] = [int(read_right), len(clips)]
    hits, total = (sum(counts[i] for counts in per_emotion.values()) for i in (0, 1))
    unknown_actor = []
    for clip in sorted((data / "mead_clips" / "eamm_unknown_id").glob("*.mp4")):
        emotion = clip.stem.split("_")[1]  # MEADunkB_disgusted_eamm
        if emotion in JUDGED:
            reading = read_video_emotion(clip, model=model)
            unknown_actor.append({"clip": clip.name, "emotion": emotion, "recognised": reading.label,
                                  "p_target": reading.mean_probability(emotion)})
    return {"hits": hits, "total": total, "top1": hits / total, "per_emotion": per_emotion,
            "unknown_actor": unknown_actor}


def previous_results(path: Path, cue_model: str) -> dict:
    """The stored results of the parts not run this time (``results.json`` of the same cue model),
    each with the date it was measured (``part_dates``; older files: their one date)."""
    results: dict = {"cue_model": cue_model, "part_dates": {}}
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored.get("cue_model") == cue_model:
            results.update(stored)
            results.setdefault("part_dates", {})
            for part, key in PART_KEYS.items():
                if key in stored:
                    results["part_dates"].setdefault(part, stored.get("date", "unknown date"))
    return results


def dated(results: dict) -> str:
    """'mouth 2026-12-02, emotion 2026-12-03, ...': when each part in ``results`` was measured."""
    dates = results.get("part_dates", {})
    return ", ".join(f"{part} {dates.get(part, results.get('date', '?'))}" for part, key in PART_KEYS.items()
                     if key in results)


def write_report(out: Path, results: dict) -> None:
    from facecue.expression import RECOGNISER_SOURCE, confusion_markdown, confusion_matrix, save_confusion_png

    lines = ["# Expressiveness against real footage", "",
             f"Made by `python benchmarks/expressiveness.py` ({dated(results)}, cue model "
             f"`{results['cue_model']}`, mesh renderer). Every figure is re-measured from the rendered pixels; "
             "parts not run keep their stored results (`--parts`). What the recogniser reads as the mouth opens, "
             "real videos beside facecue's re-drives: [by_opening.md](by_opening.md) "
             "(`benchmarks/recogniser_by_opening.py`). Which face regions carry the recogniser's reading, real MEAD "
             "beside facecue rendering the same actors: [regions.md](regions.md) (`benchmarks/recogniser_regions.py`). "
             "A person never used for calibration speaking each emotion with their own voice, real clips beside "
             "facecue's: [same_person.md](same_person.md) (`benchmarks/same_person.py`). How many of the readings "
             "below rest on the emotion's wrinkles and folds (`--wrinkles` 1, 0.75, 0.5, 0): "
             "[wrinkles.md](wrinkles.md) (`benchmarks/wrinkles.py`).",
             ""]
    if "mouth" in results:
        lines += ["## Mouth opening (MediaPipe on the rendered video)", "",
                  "Inner-lip gap / outer-eye-corner distance, facecue over the real video of the same person "
                  "(re-driven from its first frame with its own audio). Bar: p90 within 20 %, p50 within 30 %.", "",
                  "| clip | used for calibration | real p50 | real p90 | facecue p50 | facecue p90 | p50 ratio | p90 ratio | bar |",
                  "|---|---|--:|--:|--:|--:|--:|--:|---|"]
        for r in results["mouth"]:
            lines.append(f"| {r['clip']} ({r['emotion']}) | {'yes' if r['calibration'] else 'no'} | {r['real_p50']:.3f} | "
                         f"{r['real_p90']:.3f} | {r['facecue_p50']:.3f} | {r['facecue_p90']:.3f} | {r['ratio_p50']:.2f} | "
                         f"{r['ratio_p90']:.2f} | {'met' if r['pass'] else 'missed'} |")
        lines += ["", "With a video of the same person as a reference that is never the judged footage "
                  "(`--mouth-from`): [mouth_from.md](mouth_from.md) (`benchmarks/mouth_from.py`).", ""]
        if all("sync_real" in r for r in results["mouth"]):
            lines += ["Lip sync of the same videos. *Gap vs loudness*: the product bars' measure (Pearson r of the "
                      "gap with the audio's RMS envelope, best lag within ±5 frames; docs/MODEL_CARD.md), on the real "
                      "video and on facecue's re-drive: it gives the bar (r >= 0.5) a scale. *facecue vs real gap*: r "
                      "of facecue's gap with the real speaker's, frame by frame (same lags): timing against the real "
                      "mouth.",
                      "", "| clip | gap vs loudness, real | gap vs loudness, facecue | facecue vs real gap |",
                      "|---|--:|--:|--:|"]
            for r in results["mouth"]:
                lines.append(f"| {r['clip']} | {r['sync_real']:.2f} | {r['sync_facecue']:.2f} | "
                             f"{r['sync_facecue_vs_real']:.2f} |")
            lines.append("")
        if all("width_real_p50" in r for r in results["mouth"]):
            lines += ["How much the mouth widens as it opens: the least-squares slope of mouth width (corner to "
                      "corner) on the inner-lip gap, both over the outer-eye-corner distance, frame by frame "
                      "(`phonetic.SPEECH_WIDENING`); and the median width itself, beside the inner-lip gap of the "
                      "first frame the portrait is taken from (a portrait caught mid-word is wider than its closed "
                      "mouth: `phonetic.portrait_rest_shape`).", "",
                      "| clip | widening, real | widening, facecue | median width, real | median width, facecue "
                      "| portrait's lip gap |", "|---|--:|--:|--:|--:|--:|"]
            for r in results["mouth"]:
                lines.append(f"| {r['clip']} | {r['widening_real']:+.2f} | {r['widening_facecue']:+.2f} | "
                             f"{r['width_real_p50']:.3f} | {r['width_facecue_p50']:.3f} | {r['portrait_gap']:.3f} |")
            errors = [abs(r["width_facecue_p50"] - r["width_real_p50"]) for r in results["mouth"]]
            lines += ["", f"Median width, mean |facecue - real| over the {len(errors)} clips: "
                      f"{np.mean(errors):.3f}.", ""]
    if "emotion" in results:
        all_rows = results["emotion"]
        rows = [r for r in all_rows if r["emotion"] in JUDGED]  # the recogniser's classes
        emo = [r for r in rows if r["emotion"] != "neutral"]
        hits = sum(r["recognised"] == r["emotion"] for r in emo)
        neutral = [r for r in rows if r["emotion"] == "neutral"]
        lines += ["## Emotion read by an independent recogniser", "", f"Recogniser: {RECOGNISER_SOURCE}.", "",
                  f"Portraits (never used for calibration): {', '.join(Path(p).stem for p in REPORT_PORTRAITS)}; "
                  f"speech (never used for calibration): {', '.join(Path(s).stem for s in REPORT_SPEECH)}; 256 px crops.", "",
                  f"* facecue, 6 emotions x {len(neutral)} portraits: **{hits}/{len(emo)} = {hits / max(len(emo), 1):.0%}** top-1"
                  f"{interval_text(hits, len(emo))}",
                  f"* neutral read as neutral: {sum(r['recognised'] == 'neutral' for r in neutral)}/{len(neutral)}"]
        if "mead_real" in results:
            m = results["mead_real"]
            lines.append(f"* the same recogniser on the real MEAD clips (level 3, neutral level 1; 6 emotions + neutral): "
                         f"{m['hits']}/{m['total']} = {m['top1']:.0%}{interval_text(m['hits'], m['total'])}")
        worst_eyes = min(all_rows, key=lambda r: r["eyes_open_fraction"])
        eye_emotions = sorted({r["emotion"] for r in all_rows}, key=RENDERED.index)
        lines.append(f"* eyes open ({', '.join(eye_emotions)}; aperture >= 50 % of the portrait's, outside blinks): lowest "
                     f"{worst_eyes['eyes_open_fraction']:.1%} of frames ({worst_eyes['portrait']}, {worst_eyes['emotion']}); "
                     f"bar >= 95 % in every video: {'met' if worst_eyes['eyes_open_fraction'] >= 0.95 else 'missed'}")
        identity = [r["identity_error_pct"] for r in neutral]
        lines.append(f"* identity (neutral renderings: face contour + nose landmarks vs the portrait's, median over frames, "
                     f"% of the eye-corner distance): {', '.join(f'{v:.2f}' for v in identity)}; bar <= 2 %: "
                     f"{'met' if max(identity) <= 2 else 'missed'}")
        matrix = confusion_matrix([r["recognised"] for r in rows], [r["emotion"] for r in rows])
        save_confusion_png(matrix, out / "confusion.png", title="facecue, recogniser top-1")
        lines += ["", confusion_markdown(matrix), "", "![confusion](confusion.png)", "",
                  "| portrait | emotion | read as | p(target) | eyes open (>= 50 % of portrait's, outside blinks) | identity error % |",
                  "|---|---|---|--:|--:|--:|"]
        for r in all_rows:
            ident = f"{r['identity_error_pct']:.2f}" if "identity_error_pct" in r else ""
            pt = f"{r['p_target']:.2f}" if r["p_target"] is not None else "-"
            lines.append(f"| {r['portrait']} | {r['emotion']} | {r['recognised']} | {pt} | {r['eyes_open_fraction']:.0%} | {ident} |")
        lines += ["", f"![report portraits x emotions, one frame each]({results['emotion_sheet']})", ""]
        lines += by_emotion_lines(results)
    measured = [unseen for unseen in UNSEEN_SETS if unseen.results_key in results]
    for unseen in measured:
        lines += unseen_set_lines(results, unseen, overall=unseen is measured[-1])
    if "closeup" in results:
        lines += ["## Up close (512 px crop): teeth and eyes", "",
                  "Rows: happy, angry, surprised; left: a typical opening, right: the widest (97th percentile).", "",
                  f"![512 px close-up]({results['closeup']})", ""]
    (out / "README.md").write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps(results, indent=1))


def interval_text(hits: int, n: int) -> str:
    """' (95 % interval 39-73 %)': the Wilson interval of a top-1 rate, '' for no videos."""
    from facecue.expression import wilson_interval

    if n == 0:
        return ""
    low, high = wilson_interval(hits, n)
    return f" (95 % interval {low:.0%}-{high:.0%})"


def by_emotion_lines(results: dict) -> list[str]:
    """The report's table of top-1 per emotion: facecue's report set (and both sets, when the
    second was measured) beside the real MEAD clips (``results["mead_real"]``, when measured with
    its counts per emotion), with the totals' 95 % intervals."""
    m = results.get("mead_real", {})
    if "per_emotion" not in m:
        return []

    def counts(rows: list[dict], emotion: str) -> tuple[int, int]:
        mine = [r for r in rows if r["emotion"] == emotion]
        return sum(r["recognised"] == emotion for r in mine), len(mine)

    columns = [("facecue, report set", results["emotion"])]
    unseen_rows = unseen_set_rows(results)
    if unseen_rows:
        columns.append(("facecue, report and unseen sets", results["emotion"] + unseen_rows))
    unknown = {r["emotion"]: r for r in m.get("unknown_actor", [])}
    header = [name for name, _ in columns] + ["real MEAD level 3"] + (["real, with the clips of unknown actors"]
                                                                        if unknown else [])
    lines = ["### By emotion, beside real footage", "",
             "Top-1 per emotion asked for (neutral apart). Real MEAD: M030, W009, W011 at level 3; *unknown actors*: "
             "EAMM's MEAD clips whose actor and level the source does not state (`mead_clips/eamm_unknown_id/`: "
             + (", ".join(f"{e} read {unknown[e]['recognised']}" for e in JUDGED if e in unknown) or "none")
             + ")."]
    table = ["| emotion | " + " | ".join(header) + " |", "|---|" + "--:|" * len(header)]
    totals = [[0, 0] for _ in header]
    sizes = set()
    for emotion in JUDGED[1:]:
        real = m["per_emotion"][emotion]
        cells = [counts(rows, emotion) for _, rows in columns] + [tuple(real)]
        if unknown:
            extra = unknown.get(emotion)
            cells.append((real[0] + int(extra is not None and extra["recognised"] == emotion),
                          real[1] + int(extra is not None)))
        for total, (h, n) in zip(totals, cells):
            total[0] += h
            total[1] += n
            sizes.add(n)
        table.append(f"| {emotion} | " + " | ".join(f"{h}/{n}" for h, n in cells) + " |")
    table.append("| **6 emotions** | " + " | ".join(f"**{h}/{n} = {h / n:.0%}**{interval_text(h, n)}"
                                                    for h, n in totals) + " |")
    lines[-1] += (f" With {min(sizes)}-{max(sizes)} videos per cell one reading moves a rate by "
                  f"{100 / max(sizes):.0f}-{100 / min(sizes):.0f} points; the totals carry 95 % Wilson intervals.")
    return lines + [""] + table + [""]


def recogniser_hits(rows: list[dict]) -> tuple[int, int, int, int]:
    """(emotions read right, emotion videos, neutral read as neutral, neutral videos) of emotion rows."""
    judged = [r for r in rows if r["emotion"] in JUDGED]
    emo = [r for r in judged if r["emotion"] != "neutral"]
    neutral = [r for r in judged if r["emotion"] == "neutral"]
    return (sum(r["recognised"] == r["emotion"] for r in emo), len(emo),
            sum(r["recognised"] == "neutral" for r in neutral), len(neutral))


def unseen_set_rows(results: dict) -> list[dict]:
    """The rows of every unseen set measured (``UNSEEN_SETS`` in ``results``), in order."""
    return [r for unseen in UNSEEN_SETS for r in results.get(unseen.results_key, [])]


def unseen_set_lines(results: dict, unseen: UnseenSet, overall: bool = True) -> list[str]:
    """The report's section on an unseen set (``results[unseen.results_key]``); ``overall``: with
    the summary over the report set and every unseen set measured (the last section has it)."""
    from facecue.expression import confusion_markdown, confusion_matrix

    rows = results[unseen.results_key]

    def summary(label: str, subset: list[dict]) -> str:
        hits, n, neutral_hits, n_neutral = recogniser_hits(subset)
        return (f"* {label}: **{hits}/{n} = {hits / max(n, 1):.0%}** top-1{interval_text(hits, n)}; neutral read "
                f"as neutral {neutral_hits}/{n_neutral}")

    def portraits(subset: list[dict]) -> str:
        count = len(subset) // len(RENDERED)
        return f"{count} portrait{'s' if count != 1 else ''}"

    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    lines = [f"## {unseen.title}", "",
             f"From {unseen.source} (commit {unseen.commit[:7]}, `{unseen.folder}/`; {unseen.terms}), fixed on "
             f"2026-12-06 before any of them was rendered: {unseen.rule}; never used for calibration or any choice. "
             f"The same speech (in turn), settings and recogniser as above (`--parts {unseen.part} --{unseen.part}-set "
             f"DIR`, DIR = that commit's `{unseen.folder}`; the files are checked by their git blob ids). *At rest*: "
             "what the recogniser reads in the still portrait.", ""]
    lines += [summary(f"{kind} ({portraits([r for r in rows if r['kind'] == kind])})",
                      [r for r in rows if r["kind"] == kind]) for kind in kinds]
    lines.append(summary(f"all ({portraits(rows)})", rows))
    if overall and "emotion" in results:  # the report set measured too
        report_kinds = {Path(path).stem: kind for path, kind in REPORT_PORTRAIT_KINDS.items()}
        everything = unseen_set_rows(results) + [dict(r, kind=report_kinds.get(r["portrait"], "?"))
                                                 for r in results["emotion"]]
        photographs = [r for r in everything if r["kind"] == "photograph"]
        lines += [summary(f"the report set and every unseen set measured ({portraits(everything)})", everything),
                  summary(f"the same, photographs only ({portraits(photographs)})", photographs)]
    worst_eyes = min(rows, key=lambda r: r["eyes_open_fraction"])
    identity = [r["identity_error_pct"] for r in rows if "identity_error_pct" in r]
    lines += [f"* eyes open (all 8 emotions, as above): lowest {worst_eyes['eyes_open_fraction']:.1%} of frames "
              f"({worst_eyes['portrait']}, {worst_eyes['emotion']}); identity (neutral): "
              f"{', '.join(f'{v:.2f}' for v in identity)} %", ""]
    header = "| portrait | kind | at rest | " + " | ".join(JUDGED) + " |"
    lines += [header, "|---|---|---|" + "---|" * len(JUDGED)]
    for name in dict.fromkeys(r["portrait"] for r in rows):
        mine = {r["emotion"]: r for r in rows if r["portrait"] == name}
        first = next(iter(mine.values()))
        rest = f"{first['at_rest']} (p neutral {first['p_neutral_at_rest']:.2f})" if first["at_rest"] else "no face"
        cells = []
        for emotion in JUDGED:
            r = mine[emotion]
            p = f" {r['p_target']:.2f}" if r["p_target"] is not None else ""
            cells.append(f"**{r['recognised']}**{p}" if r["recognised"] == emotion else f"{r['recognised']}{p}")
        lines.append(f"| {name} | {first['kind']} | {rest} | " + " | ".join(cells) + " |")
    judged = [r for r in rows if r["emotion"] in JUDGED]
    matrix = confusion_matrix([r["recognised"] for r in judged], [r["emotion"] for r in judged])
    lines += ["", "Cells: what the recogniser reads (bold: the emotion asked for) and p(emotion asked for).", "",
              confusion_markdown(matrix), "",
              f"![{unseen.part} set x emotions, one frame each]({results[unseen.sheet_key]})", ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "expressiveness")
    parser.add_argument("--parts", nargs="+", default=["mouth", "emotion", "mead", "closeup"],
                        choices=["mouth", "emotion", "mead", "closeup", *(u.part for u in UNSEEN_SETS)],
                        help="what to measure (default: all but the unseen sets, whose portraits are not in the "
                             "shared data); the others keep their stored results")
    for unseen in UNSEEN_SETS:
        parser.add_argument(f"--{unseen.part}-set", type=Path, metavar="DIR",
                            help=f"for --parts {unseen.part}: the {unseen.folder} folder of {unseen.source} at commit "
                                 f"{unseen.commit[:7]} (git clone https://github.com/{unseen.source})")
    parser.add_argument("--cue-model", default="phonetic", choices=["phonetic", "network"])
    args = parser.parse_args()
    if not (args.data / "talking").is_dir():
        raise SystemExit(f"{args.data}: the shared real data is needed")
    for unseen in UNSEEN_SETS:
        if unseen.part in args.parts and getattr(args, f"{unseen.part}_set") is None:
            raise SystemExit(f"--parts {unseen.part} needs --{unseen.part}-set DIR (the {unseen.folder} folder of "
                             f"{unseen.source})")
    args.out.mkdir(parents=True, exist_ok=True)
    results = previous_results(args.out / "results.json", args.cue_model)
    today = time.strftime("%Y-%m-%d")
    results["date"] = today
    with tempfile.TemporaryDirectory() as tmp:
        if "mouth" in args.parts:
            results["mouth"] = mouth_part(args.data, Path(tmp), args.cue_model)
        if "emotion" in args.parts:
            results["emotion"] = emotion_part(args.data, Path(tmp), args.cue_model)
            results["emotion_sheet"] = emotion_sheet(Path(tmp), args.out)
        if "closeup" in args.parts:
            results["closeup"] = closeup(args.data, Path(tmp), args.out, args.cue_model)
        if "mead" in args.parts:
            results["mead_real"] = mead_real_rate(args.data)
        for unseen in UNSEEN_SETS:
            if unseen.part in args.parts:
                folder = getattr(args, f"{unseen.part}_set")
                results[unseen.results_key] = unseen_set_part(args.data, unseen, folder, Path(tmp), args.cue_model)
                results[unseen.sheet_key] = emotion_sheet(Path(tmp), args.out, [r for r, _, _ in unseen.files],
                                                          f"{unseen.part}_set_sheet.jpg")
    results["part_dates"].update({part: today for part in args.parts})
    write_report(args.out, results)
    print(f"wrote {args.out / 'README.md'}")


if __name__ == "__main__":
    main()
