"""What the FER2013 recogniser reads as the mouth opens: real talking videos beside facecue's
re-drives of them.

Usage: python benchmarks/recogniser_by_opening.py [--data ../shared/data]
                                                  [--out docs/expressiveness/by_opening.md]

For each real talking video (``talking/``, neutral speech) and MEAD M030's sad level-3 clip, the
real video and facecue's re-drive of it (from its first frame — M030: his neutral clip's — with
its own audio, its emotion, 256 px crop, the default cue model and mesh renderer) are read frame by
frame: the inner-lip gap / outer-eye-corner distance (MediaPipe, as ``benchmarks/expressiveness.py``
measures the mouth) and the recogniser's class probabilities (``facecue.expression``). Frames are
split into terciles of their own video's gap (most closed, middle, most open), and the table gives
the mean gap and the mean p(neutral) and p(angry) of each tercile. A face that reads angrier the
wider its mouth opens while the real person does not is the renderer's doing, not the emotion's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))  # the expressiveness report's cases and lip gap

from expressiveness import lip_gap, redriven_cases  # noqa: E402

SHOWN = ("neutral", "angry")  # the classes whose probabilities the table gives per tercile
TERCILES = 3


def by_opening(path: Path, model) -> dict:
    """Per gap tercile of the video at ``path``: mean gap and mean probability of each class.

    Returns ``{"gap": [3 floats], "p": {facecue emotion: [3 floats]}, "label": argmax of the mean}``.
    """
    from facecue.cues import extract_cues
    from facecue.expression import FER_CLASSES, FER_TO_FACECUE, recognise_faces
    from facecue.io import iter_video_frames

    probabilities = recognise_faces(list(iter_video_frames(path)), model=model)
    gap = lip_gap(extract_cues(path, fps=25))
    n = min(len(gap), len(probabilities))
    gap, probabilities = gap[:n], probabilities[:n]
    face = ~np.isnan(probabilities).any(axis=1)
    gap, probabilities = gap[face], probabilities[face]
    edges = np.quantile(gap, np.linspace(0, 1, TERCILES + 1)[1:-1])
    tercile = np.searchsorted(edges, gap, side="left")
    names = [FER_TO_FACECUE[c] for c in FER_CLASSES]
    return {"gap": [float(gap[tercile == t].mean()) for t in range(TERCILES)],
            "p": {name: [float(probabilities[tercile == t, k].mean()) for t in range(TERCILES)]
                  for k, name in enumerate(names)},
            "label": names[int(np.argmax(probabilities.mean(axis=0)))]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "expressiveness" / "by_opening.md")
    args = parser.parse_args(argv)
    if not (args.data / "talking").is_dir():
        raise SystemExit(f"{args.data}: the shared real data is needed")
    from facecue.expression import RECOGNISER_SOURCE, load_recogniser
    from facecue.generate import generate
    from facecue.io import iter_video_frames, write_image

    started = time.time()
    model = load_recogniser()
    header = " | ".join(f"p({name}) closed / mid / open" for name in SHOWN)
    lines = ["# What the recogniser reads as the mouth opens", "",
             f"Made by `python benchmarks/recogniser_by_opening.py` ({time.strftime('%Y-%m-%d')}; see its docstring). "
             f"Recogniser: {RECOGNISER_SOURCE}. Each video's frames are split into terciles of its own inner-lip gap "
             "/ outer-eye-corner distance (MediaPipe); facecue re-drives the real video from its first frame with its "
             "own audio (256 px crop, default cue model, mesh renderer).", "",
             f"| clip | video | read as | gap closed / mid / open | {header} |",
             "|---|---|---|---|" + "---|" * len(SHOWN)]
    with tempfile.TemporaryDirectory(prefix="facecue-by-opening-") as tmp:
        for name, real_video, first_frame_of, audio, emotion in redriven_cases(args.data):
            portrait = Path(tmp) / f"{name}.png"
            write_image(portrait, next(iter_video_frames(first_frame_of)))
            rendered = Path(tmp) / f"{name}.mp4"
            generate(portrait, audio, rendered, emotion=emotion, full=False, size=256)
            for source, path in (("real", real_video), (f"facecue ({emotion})", rendered)):
                reading = by_opening(path, model)
                cells = " | ".join(" / ".join(f"{v:.2f}" for v in reading["p"][c]) for c in SHOWN)
                lines.append(f"| {name} | {source} | {reading['label']} | "
                             f"{' / '.join(f'{g:.3f}' for g in reading['gap'])} | {cells} |")
                print(lines[-1], flush=True)
    lines += ["", f"Measured in {(time.time() - started) / 60:.1f} minutes."]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
