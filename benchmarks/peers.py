"""facecue beside published peers on the same inputs (../shared/data/peers).

Usage: python benchmarks/peers.py [--data ../shared/data] [--out docs/peers]

For each case of ``peers/README.md`` (EDTalk "angry" with its pose reference, DreamTalk
"surprised" and "neutral"), facecue makes a 256 px face crop at 25 fps from the same portrait,
speech, emotion (and head motion, where the peer copied it from a video), with the default cue
model and the mesh renderer, on this machine's CPU. Both systems' videos are then evaluated with
``facecue evaluate`` (facecue's against the peer's, and the other way round) and read by the
FER2013 recogniser, and three moments of each are put side by side in a contact sheet.

Writes ``README.md`` (the table a user reads to choose), ``sheet.png`` and the two evaluation
reports (``eval_facecue/``, ``eval_peer/``: report.md and report.json).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

# (file stem with its MEAD-style emotion, peer, portrait, speech, emotion, pose reference, peer's output)
CASES = (
    ("edtalk_angry_level3_001", "EDTalk", "edtalk_portrait.jpg", "edtalk_speech.wav", "angry",
     "edtalk_pose_reference.mp4", "edtalk_angry_output.mp4"),
    ("dreamtalk-zp1_surprised_level3_001", "DreamTalk", "dreamtalk_zp1_portrait.png", "dreamtalk_chinese_speech.m4a",
     "surprised", None, "dreamtalk_zp1_surprised_output.mp4"),
    ("dreamtalk-male_neutral_level1_001", "DreamTalk", "dreamtalk_male_portrait.png", "dreamtalk_english_speech.m4a",
     "neutral", None, "dreamtalk_male_neutral_output.mp4"),
)
MOMENTS = (0.2, 0.45, 0.7)


def sheet_row(peer: Path, ours: Path, title: str, size: int = 192) -> np.ndarray:
    import cv2

    from facecue.draw import labelled
    from facecue.io import iter_video_frames

    tiles = []
    for path, name in ((peer, title), (ours, "facecue")):
        frames = list(iter_video_frames(path))
        for k, f in enumerate(MOMENTS):
            tile = cv2.resize(frames[min(int(f * len(frames)), len(frames) - 1)], (size, size), interpolation=cv2.INTER_AREA)
            tiles.append(labelled(tile, name) if k == 0 else tile)
    return np.concatenate(tiles, axis=1)


def main() -> None:
    from facecue.evaluate import evaluate_videos
    from facecue.expression import RECOGNISER_SOURCE
    from facecue.generate import generate
    from facecue.io import read_audio, write_image, write_wav

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "peers")
    args = parser.parse_args()
    peers = args.data / "peers"
    if not peers.is_dir():
        raise SystemExit(f"{args.data}: the shared peers data (peers/) is needed")
    args.out.mkdir(parents=True, exist_ok=True)
    rows, timings, drawn_blinks = [], {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ours, theirs, audio = tmp / "facecue", tmp / "peer", tmp / "audio"
        for folder in (ours, theirs, audio):
            folder.mkdir()
        for stem, peer, portrait, speech, emotion, pose, output in CASES:
            write_wav(audio / f"{stem}.wav", read_audio(peers / speech))
            shutil.copy(peers / output, theirs / f"{stem}.mp4")
            start = time.perf_counter()
            result = generate(peers / portrait, peers / speech, ours / f"{stem}.mp4", emotion=emotion,
                              pose_from=str(peers / pose) if pose else None, full=False, size=256)
            timings[stem] = (time.perf_counter() - start, result.seconds)
            drawn_blinks[stem] = 60.0 * len(result.cues.blinks()) / result.seconds
            print(f"{stem}: {result.summary()}", flush=True)
        reports = {}
        for name, pred, gt in (("facecue", ours, theirs), ("peer", theirs, ours)):
            report = evaluate_videos(pred, gt, args.out / f"eval_{name}", audio, plots=False, progress=False)
            reports[name] = {r["stem"]: r for r in report.results}
        sheet = [sheet_row(theirs / f"{c[0]}.mp4", ours / f"{c[0]}.mp4", f"{c[1]} {c[4]}") for c in CASES]
        write_image(args.out / "sheet.png", np.concatenate(sheet, axis=0))
    lines = ["# facecue beside published peers, same inputs", "",
             "Made by `python benchmarks/peers.py`. Inputs and the peers' published outputs: "
             "`../shared/data/peers` (see its README for sources and licences). facecue: default cue model "
             "(phonetic), mesh renderer, 256 px face crop, 25 fps, on a 2-core CPU. The peers ran on a GPU "
             "(their own published videos; their speed is not measured here).", "",
             f"Emotion read by: {RECOGNISER_SOURCE} (never trained on these faces).", "",
             "Sync-r is facecue's loudness-correlation lip-sync substitute (see `facecue evaluate`); it scores "
             "SyncNet-trained peers low even when they look in sync, so compare it within a row with care.", "",
             "| case | system | emotion asked | read as (p) | Sync-r | blinks/min | head yaw std ° | compute | video |",
             "|---|---|---|---|--:|--:|--:|--:|--:|"]
    for stem, peer, portrait, speech, emotion, pose, output in CASES:
        for system, key in ((peer, "peer"), ("facecue", "facecue")):
            r = reports[key].get(stem, {})
            live = r.get("pred_liveliness") or {}
            probs = r.get("fer_probabilities") or {}
            read = r.get("fer_emotion")
            p = probs.get(read) if read else None
            compute = f"{timings[stem][0]:.1f} s CPU" if system == "facecue" else "GPU, not measured"
            seconds = timings[stem][1]
            blinks = f"{live.get('blinks_per_min', float('nan')):.1f}"
            if system == "facecue":
                blinks += f" (drew {drawn_blinks[stem]:.1f})"
            lines.append(f"| {peer} {emotion} | {system} | {emotion} | {read} ({p:.2f}) | "
                         f"{r.get('sync_r', float('nan')):.2f} | {blinks} | "
                         f"{live.get('head_std_yaw', float('nan')):.2f} | {compute} | {seconds:.1f} s |")
    lines += ["", "Blinks/min is what MediaPipe reads on each video (the eyes' aperture below 55 % of the clip's "
              "open level, `facecue.cues.detect_blinks`); for facecue, what it drew is in brackets (its cues). "
              "At 256 px MediaPipe can miss a short blink of narrowed eyes (looked at on 2026-12-06: the 2 blinks "
              "of facecue's angry EDTalk case close the lids on screen, and MediaPipe read them down to 58 and "
              "61 % of open).",
              "", "![peer | facecue, three moments of each case](sheet.png)", "",
              "Full reports: [facecue judged against the peer](eval_facecue/report.md), "
              "[the peer judged against facecue](eval_peer/report.md)."]
    (args.out / "README.md").write_text("\n".join(lines) + "\n")
    results = {"timings": timings, "facecue_drawn_blinks_per_min": drawn_blinks}
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out / 'README.md'}")


if __name__ == "__main__":
    main()
