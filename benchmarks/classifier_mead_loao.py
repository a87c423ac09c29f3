"""Leave-one-actor-out accuracy of the collaborative emotion classifier on the 24 real MEAD clips.

The clips of ../shared/data/mead_clips (3 actors x 8 emotions, 256 px, 25 fps, no audio) are laid
out as a MEAD tree with speech synthesized by espeak-ng (the classifier does not use audio, but
preprocessing needs it), preprocessed with ``facecue preprocess``'s code path, then for each actor
a classifier is trained on the other two actors' windows and tested on the held-out actor's 8
full clips. Chance is 12.5 %. Expression is measured from each speaker's median shape over all
their clips (``identity: speaker``), so the held-out actor's neutral label is not used.

Usage: PYTHONPATH=src python benchmarks/classifier_mead_loao.py [--data ../shared/data] [--seeds 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from facecue import io  # noqa: E402
from facecue.constants import EMOTIONS, SAMPLE_RATE  # noqa: E402
from facecue.data import arrange_mead_tree, find_mead_clips, load_cache, preprocess  # noqa: E402
from facecue.stage1 import ClassifierConfig, ClassifierTask, classify_clip, load_classifier  # noqa: E402
from facecue.train import train  # noqa: E402

SENTENCES = (
    "She had your dark suit in greasy wash water all year.",
    "Don't ask me to carry an oily rag like that.",
    "Will you tell me why?",
    "The small boy put the worm on the hook.",
    "Those musicians harmonize marvelously.",
    "Approach your interview with statuesque composure.",
    "Cats and dogs each hate the other.",
    "Please take this dirty table cloth to the cleaners for me.",
)


def espeak(text: str, seconds: float, workdir: Path) -> np.ndarray:
    """Speech for ``text`` at 16 kHz, cut or zero-padded to ``seconds``."""
    raw, wav = workdir / "espeak.wav", workdir / "espeak16.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(raw), text], check=True, capture_output=True)
    subprocess.run(["sox", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(wav)], check=True, capture_output=True)
    audio = io.read_audio(wav)
    n = int(round(seconds * SAMPLE_RATE))
    return np.pad(audio, (0, max(0, n - len(audio))))[:n]


def build_cache(data: Path, work: Path, jobs: int) -> Path:
    cache = work / "cache"
    videos = sorted((data / "mead_clips").glob("*_level*_001.mp4"))
    if len(videos) != 24:
        raise SystemExit(f"expected 24 MEAD clips in {data / 'mead_clips'}, found {len(videos)}")
    audio = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, v in enumerate(videos):
            audio[v.stem] = espeak(SENTENCES[i % len(SENTENCES)], io.probe_video(v).duration_s, Path(tmp))
    arrange_mead_tree(videos, work / "mead", audio)
    sources, problems = find_mead_clips(work / "mead")
    started = time.perf_counter()
    report = preprocess(sources, cache, jobs=jobs, progress=True, problems=problems)
    print(f"preprocess: {report.summary()} in {time.perf_counter() - started:.1f} s")
    if report.failed:
        for clip, reason in report.failed:
            print(f"  failed {clip}: {reason}")
    return cache


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "facecue_loao")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per fold (accuracy is averaged)")
    parser.add_argument("--steps", type=int, default=None, help="override train.steps")
    parser.add_argument("--identity", default="speaker", choices=("speaker", "neutral", "clip"))
    parser.add_argument("-j", "--jobs", type=int, default=2)
    parser.add_argument("--fresh", action="store_true", help="rebuild the cache")
    args = parser.parse_args()
    if args.fresh and args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)  # small model: one thread is faster than two on a busy machine
    cache = build_cache(args.data, args.work, args.jobs)
    clips = load_cache(cache, identity=args.identity)
    actors = sorted({c.speaker for c in clips})
    base = ClassifierConfig()
    train_cfg = base.train if args.steps is None else dataclasses.replace(base.train, steps=args.steps)
    print(f"{len(clips)} clips, actors {', '.join(actors)}; classifier {base.model}; {train_cfg.steps} steps x batch "
          f"{train_cfg.batch_size}, window {base.data.window}; identity '{args.identity}'")
    fold_acc = {}
    confusion = np.zeros((len(EMOTIONS), len(EMOTIONS)), int)
    for actor in actors:
        accs = []
        for seed in range(args.seeds):
            cfg = dataclasses.replace(
                base,
                data=dataclasses.replace(base.data, held_out_speakers=(actor,), identity=args.identity),
                train=dataclasses.replace(train_cfg, seed=seed, out_dir=str(args.work / "runs" / f"{actor}_seed{seed}"),
                                          checkpoint_every=10**9, log_every=50),
            )
            task = ClassifierTask(cfg, clips)
            started = time.perf_counter()
            final = train(task, progress=False)
            model = load_classifier(final)
            correct = 0
            for c in task.test_clips:
                pred = int(classify_clip(model, c).argmax())
                correct += pred == c.emotion
                confusion[c.emotion, pred] += 1
            accs.append(correct / len(task.test_clips))
            print(f"  fold {actor} seed {seed}: {correct}/{len(task.test_clips)} = {accs[-1]:.1%} "
                  f"({time.perf_counter() - started:.0f} s)")
        fold_acc[actor] = float(np.mean(accs))
    print("\nleave-one-actor-out emotion accuracy (full clips, chance 12.5%):")
    for actor, acc in fold_acc.items():
        print(f"  test {actor} (train on {', '.join(a for a in actors if a != actor)}): {acc:.1%}")
    print(f"  mean over folds: {np.mean(list(fold_acc.values())):.1%}  ({args.seeds} seed(s) per fold)")
    print("\nconfusion (rows true, columns predicted), summed over folds and seeds:")
    print("            " + " ".join(f"{e[:5]:>5}" for e in EMOTIONS))
    for i, e in enumerate(EMOTIONS):
        print(f"  {e:>9} " + " ".join(f"{v:5d}" for v in confusion[i]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
