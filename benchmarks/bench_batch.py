"""Throughput of ``facecue batch``: local ``-j 1``, local ``-j 2`` and Ray with 2 CPUs, in one run.

Usage::

    python benchmarks/bench_batch.py                          # print the table
    python benchmarks/bench_batch.py --out docs/SCALING.md    # ... and put it in SCALING.md's table section
    python benchmarks/bench_batch.py --jobs 2 --seconds 2     # a quick check of the script

The same 8 jobs for every executor: 10 s of speech each, the bundled portrait, ``size 256,
full false`` (``--crop --size 256``), emotions and seeds varied. The speech is real: the 8 clips of
``shared/data/speech`` that last 10 s or more, cut to 10 s; without that folder, the bundled
``speech.wav`` tiled to 10 s (the table says which). Each executor runs as the user runs it, a fresh
``facecue batch`` process into an empty output folder, so a row's time includes start-up: Python
imports, the local workers' spawn, Ray's local instance (``--ray``, which starts one with every
CPU of this machine and stops it at the end). Jobs per minute = jobs / wall seconds x 60.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import ROOT, machine_description, speech_of_length  # noqa: E402  (benchmarks/run.py)

SIZE = 256
SHARED_SPEECH = Path(os.environ.get("FACECUE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "speech"
EMOTIONS = ("happy", "sad", "angry", "surprised", "neutral", "disgusted", "fear", "contempt")
EXECUTORS = {  # title -> facecue batch options
    "local, -j 1": ["-j", "1"],
    "local, -j 2": ["-j", "2"],
    "Ray, local instance, 2 CPUs (1 per job)": ["--ray", "auto"],
}
START, END = "<!-- bench_batch: start -->", "<!-- bench_batch: end -->"


def write_inputs(folder: Path, n_jobs: int, seconds: float) -> str:
    """in/portrait.png and in/speech<k>.wav (k < n_jobs), each ``seconds`` long; returns where the speech is from."""
    import numpy as np

    from facecue.cli import asset_path
    from facecue.constants import SAMPLE_RATE
    from facecue.io import audio_duration, read_audio, write_wav

    (folder / "in").mkdir(parents=True)
    (folder / "in" / "portrait.png").write_bytes(asset_path("portrait.png").read_bytes())
    clips = sorted(p for p in SHARED_SPEECH.glob("*.wav") if audio_duration(p) >= seconds) if SHARED_SPEECH.is_dir() else []
    n = int(seconds * SAMPLE_RATE)
    if len(clips) >= n_jobs:
        for k, clip in enumerate(clips[:n_jobs]):
            write_wav(folder / "in" / f"speech{k}.wav", read_audio(clip)[:n].astype(np.float32))
        return f"real speech: {', '.join(c.stem for c in clips[:n_jobs])} (shared/data/speech), each cut to {seconds:g} s"
    speech = speech_of_length(seconds)
    for k in range(n_jobs):
        write_wav(folder / "in" / f"speech{k}.wav", speech)
    return f"the bundled speech.wav tiled to {seconds:g} s (shared/data/speech has too few clips that long)"


def write_jobs(folder: Path, out: str, n_jobs: int) -> Path:
    path = folder / f"jobs_{out}.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["portrait", "audio", "emotion", "output", "seed", "size", "full"])
        for k in range(n_jobs):
            writer.writerow(["in/portrait.png", f"in/speech{k}.wav", EMOTIONS[k % len(EMOTIONS)], f"{out}/job{k}.mp4",
                             k, SIZE, "false"])
    return path


def load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def measure(folder: Path, title: str, options: list[str], index: int, n_jobs: int) -> dict:
    jobs = write_jobs(folder, f"run{index}", n_jobs)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    load_before = load()
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "facecue.cli", "batch", str(jobs), "-q", *options],
                          capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    done = re.search(r"(\d+) done", proc.stdout)
    row = {"title": title, "wall_s": wall, "done": int(done.group(1)) if done else 0, "jobs": n_jobs,
           "load": load_before}
    if proc.returncode != 0 or row["done"] != n_jobs:
        row["error"] = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
    print(f"{title}: {wall:.1f} s, {row['done']} done, load before {load_before}", file=sys.stderr, flush=True)
    return row


def format_table(rows: list[dict]) -> str:
    lines = ["| executor | jobs | wall s | jobs per minute | s per job | load average before (1, 5, 15 min) |",
             "|---|--:|--:|--:|--:|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['title']} | {r['done']}/{r['jobs']} | {r['wall_s']:.1f} | failed: {r['error'][0]} | | "
                         f"{r['load']} |")
        else:
            lines.append(f"| {r['title']} | {r['jobs']} | {r['wall_s']:.1f} | {r['jobs'] / r['wall_s'] * 60:.1f} | "
                         f"{r['wall_s'] / r['jobs']:.1f} | {r['load']} |")
    return "\n".join(lines)


def write_section(path: Path, section: str) -> None:
    """Replace the text between the markers in ``path`` (atomically)."""
    text = path.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"error: {path} has no {START} ... {END} section")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(f"{head}{START}\n{section}\n{END}{tail}")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"wrote {path}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="markdown file with a bench_batch section to fill (docs/SCALING.md)")
    parser.add_argument("--jobs", type=int, default=8, help="jobs per executor (default 8)")
    parser.add_argument("--seconds", type=float, default=10.0, help="speech per job, in seconds (default 10)")
    args = parser.parse_args(argv)
    machine = machine_description()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="facecue-bench-batch-") as tmp:
        folder = Path(tmp)
        speech = write_inputs(folder, args.jobs, args.seconds)
        rows = [measure(folder, title, options, k, args.jobs) for k, (title, options) in enumerate(EXECUTORS.items())]
    table = format_table(rows)
    print(table)
    section = "\n".join([
        table,
        "",
        f"{args.jobs} jobs of {args.seconds:g} s at {SIZE} px (crop), phonetic cue model, mesh renderer; {speech}. "
        "`-j 1` runs the jobs in the batch process itself (torch's default threads); the `-j 2` workers and "
        "the Ray tasks use one torch thread each. "
        f"Measured one after the other in one run of {(time.perf_counter() - started) / 60:.1f} minutes; "
        f"load average at the end {load()}.",
        "",
        *machine,
        "- Other processes were running on this shared machine during the measurements (see the load "
        "averages): the numbers are noisy; compare the rows with each other.",
        "",
        "Reproduce: `python benchmarks/bench_batch.py --out docs/SCALING.md` (in the project's virtual "
        "environment with the Ray extra).",
    ])
    if args.out:
        write_section(args.out, section)
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
