"""Contact sheet of the 8 emotions for one portrait (docs/emotions_contact_sheet.png).

Usage: python scripts/emotion_contact_sheet.py [--portrait P ...] [--audio A] [--cue-model auto|network|phonetic]
                                               [--emotions E ...] [--out FILE]

Renders each portrait speaking the same audio with each emotion (intensity 1, same seed), and
tiles 3 frames per emotion (a pause, mid-word, later) into one labelled sheet, a row per portrait
and emotion. The contempt check (is contempt one-sided?) is made with::

    python scripts/emotion_contact_sheet.py --emotions neutral contempt \
        --portrait ../shared/data/peers/dreamtalk_male_portrait.png ../shared/data/peers/edtalk_portrait.jpg \
        --out docs/expressiveness/contempt_check.jpg
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    import cv2

    from facecue.cli import asset_path
    from facecue.constants import EMOTIONS
    from facecue.generate import generate
    from facecue.io import iter_video_frames, write_image

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--portrait", nargs="+", default=[str(asset_path("portrait.png"))])
    parser.add_argument("--audio", default=str(asset_path("speech.wav")))
    parser.add_argument("--cue-model", default="auto")
    parser.add_argument("--emotions", nargs="+", default=list(EMOTIONS), choices=EMOTIONS)
    parser.add_argument("--frames", default="5,40,75", help="frame indices shown per emotion")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "emotions_contact_sheet.png")
    args = parser.parse_args()
    picks = [int(v) for v in args.frames.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for portrait in args.portrait:
            for emotion in args.emotions:
                video = Path(tmp) / f"{emotion}.mp4"
                generate(portrait, args.audio, video, emotion=emotion, intensity=1.0, size=args.size, full=False,
                         cue_model=args.cue_model, seed=0, pose_scale=0.0, gaze="camera")
                frames = [f for k, f in enumerate(iter_video_frames(video)) if k in picks]
                row = np.concatenate(frames, axis=1)
                label = np.full((row.shape[0], 120, 3), 255, np.uint8)
                cv2.putText(label, emotion, (6, row.shape[0] // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1,
                            cv2.LINE_AA)
                rows.append(np.concatenate([label, row], axis=1))
                print(Path(portrait).stem, emotion, flush=True)
    write_image(args.out, np.concatenate(rows, axis=0))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
