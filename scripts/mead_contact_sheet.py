"""Real MEAD level-3 frames beside facecue rendering the same actor from their neutral frame.

Usage: python scripts/mead_contact_sheet.py [--data ../shared/data] [--out docs/calibration/mead_sheet.jpg]
                                            [--actors M030 W009 W011] [--cue-model phonetic|network]

For each actor and emotion: three real frames of the actor's MEAD clip (25 %, 50 %, 75 % of the
clip) and three frames of facecue's video made from the first frame of the actor's *neutral* clip,
speaking the real MEAD speech of M030 (``mead_clips/M030_sad_level3_001.wav``, the only MEAD
recording with its audio) with that emotion at intensity 1 (= MEAD level 3). Every emotion uses
the same speech and seed, so the differences between rows are the emotion's alone.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

FRACTIONS = (0.25, 0.5, 0.75)


def pick(frames: list[np.ndarray], size: int) -> list[np.ndarray]:
    import cv2

    return [cv2.resize(frames[min(int(f * len(frames)), len(frames) - 1)], (size, size), interpolation=cv2.INTER_AREA)
            for f in FRACTIONS]


def main() -> None:
    from facecue.constants import EMOTIONS
    from facecue.draw import labelled
    from facecue.generate import generate
    from facecue.io import iter_video_frames, write_image

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "calibration" / "mead_sheet.jpg")
    parser.add_argument("--actors", nargs="+", default=["M030", "W009", "W011"])
    parser.add_argument("--emotions", nargs="+", default=list(EMOTIONS))
    parser.add_argument("--cue-model", default="phonetic", choices=["phonetic", "network"])
    parser.add_argument("--size", type=int, default=160, help="px per tile")
    args = parser.parse_args()
    clips = args.data / "mead_clips"
    audio = clips / "M030_sad_level3_001.wav"
    if not audio.is_file():
        raise SystemExit(f"{args.data}: the shared real data (mead_clips/) is needed")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for actor in args.actors:
            neutral = next(clips.glob(f"{actor}_neutral_level*_001.mp4"))
            portrait = Path(tmp) / f"{actor}.png"
            write_image(portrait, next(iter_video_frames(neutral)))
            for emotion in args.emotions:
                real = list(iter_video_frames(next(clips.glob(f"{actor}_{emotion}_level*_001.mp4"))))
                out = Path(tmp) / f"{actor}_{emotion}.mp4"
                generate(portrait, audio, out, emotion=emotion, intensity=1.0, cue_model=args.cue_model, seed=0)
                fake = list(iter_video_frames(out))
                tiles = [labelled(t, f"real {actor} {emotion}" if i == 0 else "") for i, t in enumerate(pick(real, args.size))]
                tiles += [labelled(t, "facecue" if i == 0 else "") for i, t in enumerate(pick(fake, args.size))]
                rows.append(np.concatenate(tiles, axis=1))
                print(f"{actor} {emotion}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_image(args.out, np.concatenate(rows, axis=0))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
