"""The end-to-end product's quality figures (docs/MODEL_CARD.md, issue bars).

Usage: python benchmarks/product_bars.py [--cue-model network|phonetic|auto] [--classifier CKPT]
           [--data ../shared/data] [--out docs/product_bars]

1. Lip sync on real speech held out from training (../shared/data/speech: LibriSpeech x2,
   LJSpeech, JFK): the bundled portrait speaks each clip; MediaPipe re-measures the mouth opening
   (inner-lip gap over face size) on the *rendered* video; Pearson r with the audio RMS envelope
   at 25 fps, best lag within +-5 frames (facecue.evaluate.lip_sync_score).
2. A plot of mouth opening, loudness and phones over time for one clip (lips close on m/b/p, round
   on o/u/w, stay closed in silence).
3. Emotion: cues for each of the 8 emotions (several seeds, held-out speech) classified by the
   collaborative classifier (trained on real MEAD cues) -> confusion matrix.
4. Liveliness: blink rate per minute and head yaw std of the generated cues.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

HELD_OUT = ("librispeech_198-209-0000", "librispeech_3436-172162-0000", "ljspeech_LJ050-0131", "whisper_jfk")


def lip_sync(args, out: Path) -> list[dict]:
    from facecue.audio import loudness_envelope
    from facecue.cli import asset_path
    from facecue.cues import extract_cues
    from facecue.evaluate import lip_sync_score, mouth_opening
    from facecue.generate import generate
    from facecue.io import read_audio

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in HELD_OUT:
            wav = args.data / "speech" / f"{name}.wav"
            video = Path(tmp) / f"{name}.mp4"
            result = generate(asset_path("portrait.png"), wav, video, emotion="neutral", size=256, full=False,
                              cue_model=args.cue_model, checkpoint=args.checkpoint)
            audio = read_audio(wav)
            rendered = extract_cues(video)
            loud = loudness_envelope(audio, 25.0, rendered.n_frames)
            r, lag = lip_sync_score(mouth_opening(rendered), loud)
            r_cues, _ = lip_sync_score(mouth_opening(result.cues), loud)
            rows.append({"clip": name, "seconds": round(len(audio) / 16000, 2), "r_rendered": round(float(r), 3),
                         "best_lag": int(lag), "r_cues": round(float(r_cues), 3),
                         "blinks_per_min": round(60 * len(result.cues.blinks()) / result.seconds, 1),
                         "yaw_std": round(float(result.cues.pose_angles[:, 0].std()), 2)})
            print(rows[-1], flush=True)
            if name == "whisper_jfk":
                plot_mouth(result.cues, rendered, audio, args, out / f"lipsync_jfk_{args.cue_model}.png")
    return rows


def plot_mouth(cues, rendered, audio, args, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from facecue.audio import loudness_envelope, phone_to_viseme, recognize_phones
    from facecue.evaluate import mouth_opening

    transcript = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
    phones = recognize_phones(audio, text=transcript)
    t = np.arange(rendered.n_frames) / 25.0
    loud = loudness_envelope(audio, 25.0, rendered.n_frames)
    fig, ax = plt.subplots(figsize=(16, 4.5))
    ax.plot(t, mouth_opening(rendered), label="mouth opening, re-measured on the rendered video", color="tab:red")
    ax.plot(t, mouth_opening(cues), label="mouth opening of the generated cues", color="tab:orange", alpha=0.6)
    ax.plot(t, loud / loud.max() * mouth_opening(rendered).max(), label="audio RMS (scaled)", color="tab:blue", alpha=0.6)
    top = mouth_opening(rendered).max() * 1.05
    colours = {"PP": "tab:green", "U": "tab:purple", "O": "tab:purple", "sil": "0.8"}
    for p in phones:
        v = phone_to_viseme(p.label)
        if v in colours:
            ax.axvspan(p.start_s, p.end_s, color=colours[v], alpha=0.25 if v != "sil" else 0.3, lw=0)
        if p.label != "SIL":
            ax.text((p.start_s + p.end_s) / 2, top, p.label, ha="center", va="bottom", fontsize=7, rotation=90)
    ax.set_xlabel("seconds")
    ax.set_ylabel("inner-lip gap / face size")
    ax.set_title(f"JFK clip ({args.cue_model} cue model): lips close on M/B/P (green), round on UW/OW/W (purple), "
                 "rest in silence (grey)")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def emotions(args, seeds: int = 3) -> dict:
    from facecue.cli import asset_path
    from facecue.constants import EMOTIONS
    from facecue.cues import extract_cues
    from facecue.generate import GenerateConfig, resolve_cue_model, speech_cues
    from facecue.io import read_audio
    from facecue.phonetic import CueControls
    from facecue.stage1 import classify_emotion

    portrait = extract_cues(asset_path("portrait.png"))
    matrix = np.zeros((len(EMOTIONS), len(EMOTIONS)), int)
    for name in HELD_OUT[:2]:
        audio = read_audio(args.data / "speech" / f"{name}.wav")
        for emotion in EMOTIONS:
            for seed in range(seeds):
                config = GenerateConfig(emotion=emotion, cue_model=args.cue_model, checkpoint=args.checkpoint, seed=seed)
                model, ckpt = resolve_cue_model(config)
                cues = speech_cues(audio, portrait, config, CueControls(), model, ckpt)
                probs = classify_emotion(args.classifier, cues)
                matrix[EMOTIONS.index(emotion), int(np.argmax(probs))] += 1
    accuracy = np.trace(matrix) / matrix.sum()
    return {"labels": list(EMOTIONS), "matrix": matrix.tolist(), "accuracy": float(accuracy)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cue-model", default="auto")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--classifier", default=None, help="collaborative classifier checkpoint (emotion section)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "product_bars")
    parser.add_argument("--skip-lipsync", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {"cue_model": args.cue_model, "checkpoint": args.checkpoint}
    if not args.skip_lipsync:
        report["lip_sync"] = lip_sync(args, args.out)
    if args.classifier:
        report["emotion"] = emotions(args)
        from facecue.constants import EMOTIONS

        print("confusion matrix (rows: requested, columns: recognised)")
        print("| | " + " | ".join(e[:4] for e in EMOTIONS) + " |")
        for e, row in zip(EMOTIONS, report["emotion"]["matrix"]):
            print(f"| {e} | " + " | ".join(str(v) for v in row) + " |")
        print(f"accuracy {report['emotion']['accuracy']:.3f}")
    (args.out / f"report_{args.cue_model}.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
