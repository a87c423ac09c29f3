"""Whole-process speed and memory of ``facecue generate``, the old code beside the new, in one run.

Usage::

    python benchmarks/bench_speed.py                                  # 60 s, 256 px crop and 512 px full, 3 rounds
    python benchmarks/bench_speed.py --rounds 5 --long --out BENCHMARKS.md

Every measurement is one fresh ``facecue generate`` process (``python -c 'facecue.cli.main()'``),
timed from outside from its start to its end (interpreter start-up, imports, model loading,
landmarks, cues, rendering, encoding, the sidecar: what a user waits for). The "old" code is
``--old-ref`` (default: the commit before the speed work) exported with ``git archive`` into a
temporary folder; the "new" code is this checkout's ``src``. Both run the same command on the
same inputs, interleaved (old 256, new 256, old 512, new 512, then the next round), so that the
load of this shared machine falls on both alike; the table gives the median of the rounds and
every value.

Peak memory is the largest sum of the resident set sizes of the process and all its
descendants (the render workers), sampled every 50 ms from ``/proc``; shared library pages are
counted once per process, so this overstates a little. ``--long`` adds one 10-minute run of
the new code (and of the old one unless ``--long-new-only``).

Inputs: the portrait is the bundled 512 px ``portrait.png``; the speech is the clips of
``../shared/data/speech`` joined (the bundled ``speech.wav`` tiled when they are missing), cut or
tiled to the length; emotion ``--emotion`` (happy; surprised widens the eyes, whose redrawing
costs the renderer most); the default (phonetic) cue model and the mesh renderer.
Real-time factor = whole-process seconds / media seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

OLD_REF = "0e993ad"  # main before the speed work (issue 12)
SPEECH_DIR = ROOT.parent / "shared" / "data" / "speech"
CASES = {  # name -> extra `facecue generate` arguments
    "256 px crop": ["--crop", "--size", "256"],
    "512 px full": ["--size", "512"],
}
RTF_BARS = {"256 px crop": 0.2, "512 px full": 0.5}  # issue 12
MEMORY_BAR_MB = 1500.0
SECTION_START = "<!-- bench_speed: start -->"
SECTION_END = "<!-- bench_speed: end -->"
RUNNER = "import sys; from facecue.cli import main; sys.exit(main())"


# --- inputs ----------------------------------------------------------------------------------


def speech_of_length(seconds: float, path: Path) -> Path:
    """``seconds`` of real speech as a 16 kHz wav: the shared clips joined, else the bundled one."""
    import numpy as np

    from facecue.cli import asset_path
    from facecue.constants import SAMPLE_RATE
    from facecue.io import read_audio, write_wav

    clips = sorted(SPEECH_DIR.glob("*.wav")) or [asset_path("speech.wav")]
    speech = np.concatenate([read_audio(clip) for clip in clips])
    n = int(round(seconds * SAMPLE_RATE))
    return write_wav(path, np.tile(speech, -(-n // len(speech)))[:n])


def export_tree(ref: str, folder: Path) -> Path:
    """The ``src`` folder of commit ``ref``, exported into ``folder`` (no git worktree)."""
    archive = subprocess.run(["git", "archive", ref, "src"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder / "src"


# --- one measurement -----------------------------------------------------------------------------


def tree_rss_bytes(root: int) -> int:
    """Resident bytes of process ``root`` and all its descendants (from /proc)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            pid = int(entry.name)
            parents[pid] = int(fields[1])
            rss[pid] = int(fields[21]) * page
    total = 0
    for pid, size in rss.items():
        p, depth = pid, 0
        while p and p != root and depth < 64:
            p, depth = parents.get(p, 0), depth + 1
        if p == root:
            total += size
    return total


class PeakSampler:
    """The largest :func:`tree_rss_bytes` of a process, sampled in a thread until stopped."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_bytes(self.pid))
            self._stop.wait(self.interval)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 1e6


@dataclass
class Run:
    code: str  # "old" / "new"
    case: str
    seconds: float
    wall_s: float
    peak_mb: float
    summary: str  # the CLI's last line (stage times)
    load: float  # 1-minute load average when it started


def run_generate(src: Path, case: str, speech: Path, seconds: float, workdir: Path, code: str,
                 emotion: str = "happy") -> Run:
    portrait = ROOT / "src" / "facecue" / "assets" / "portrait.png"
    out = workdir / f"{code}_{case.replace(' ', '_')}_{int(seconds)}.mp4"
    command = [sys.executable, "-c", RUNNER, "generate", "--portrait", str(portrait), "--audio", str(speech),
               "--emotion", emotion, *CASES[case], "-o", str(out)]
    env = {**os.environ, "PYTHONPATH": str(src), "GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "2"}
    load = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = PeakSampler(proc.pid)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - started
    peak = sampler.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"{code} {case} failed ({proc.returncode}): {stderr.strip()[-2000:]}")
    summary = (stdout.strip().splitlines() or [""])[-1]
    for path in (out, out.with_suffix(".json")):
        path.unlink(missing_ok=True)
    return Run(code, case, seconds, wall, peak, summary, load)


# --- report --------------------------------------------------------------------------------------


@dataclass
class Row:
    code: str
    case: str
    seconds: float
    runs: list[Run] = field(default_factory=list)

    @property
    def rtfs(self) -> list[float]:
        return [r.wall_s / self.seconds for r in self.runs]

    @property
    def median_rtf(self) -> float:
        return statistics.median(self.rtfs)

    @property
    def peak_mb(self) -> float:
        return max(r.peak_mb for r in self.runs)


def stage_note(run: Run) -> str:
    """'landmarks 0.7s, cues 3.1s, render+encode 9.9s' from the CLI's summary line."""
    if "(" in run.summary and ";" in run.summary:
        inside = run.summary.split("(", 1)[1].split(")", 1)[0]
        return inside.split(";", 1)[1].strip() if ";" in inside else inside
    return ""


def format_table(rows: list[Row]) -> str:
    lines = ["| code | case | media s | rounds | whole-process s (median) | real-time factor (median) | "
             "all real-time factors | peak memory MB | stage times of the median run |",
             "|---|---|--:|--:|--:|--:|---|--:|---|"]
    for row in rows:
        median_run = sorted(row.runs, key=lambda r: r.wall_s)[len(row.runs) // 2]
        lines.append(f"| {row.code} | {row.case} | {row.seconds:.0f} | {len(row.runs)} | "
                     f"{statistics.median(r.wall_s for r in row.runs):.1f} | {row.median_rtf:.3f} | "
                     f"{', '.join(f'{v:.3f}' for v in row.rtfs)} | {row.peak_mb:.0f} | {stage_note(median_run)} |")
    return "\n".join(lines)


def verdicts(rows: list[Row]) -> list[str]:
    by = {(r.code, r.case, r.seconds): r for r in rows}
    lines = []
    for case, bar in RTF_BARS.items():
        old, new = by.get(("old", case, 60.0)), by.get(("new", case, 60.0))
        if new is None:
            continue
        verdict = "meets" if new.median_rtf <= bar else "misses"
        speedup = f"; {old.median_rtf / new.median_rtf:.2f}x faster than the old code ({old.median_rtf:.3f})" if old else ""
        lines.append(f"- {case}, 60 s: real-time factor {new.median_rtf:.3f} ({verdict} the bar of <= {bar}){speedup}")
    old, new = by.get(("old", "256 px crop", 60.0)), by.get(("new", "256 px crop", 60.0))
    if old and new:
        verdict = "meets" if new.median_rtf <= 1.1 * old.median_rtf else "misses"
        lines.append(f"- no regression at 256 px: new {new.median_rtf:.3f} vs old {old.median_rtf:.3f} "
                     f"({verdict} the bar of <= 1.1 x old)")
    for row in rows:
        if row.seconds >= 600:
            verdict = "meets" if row.peak_mb < MEMORY_BAR_MB else "misses"
            lines.append(f"- {row.code} code, {row.case}, {row.seconds / 60:.0f} minutes of speech: peak memory "
                         f"{row.peak_mb:.0f} MB ({verdict} the bar of < {MEMORY_BAR_MB:.0f} MB), real-time factor "
                         f"{row.median_rtf:.3f}")
    return lines


def write_section(out: Path, text: str, start: str = SECTION_START, end: str = SECTION_END) -> None:
    """Put ``text`` between the markers ``start`` and ``end`` in ``out`` (appended when they are missing)."""
    body = out.read_text() if out.exists() else ""
    block = f"{start}\n{text.rstrip()}\n{end}\n"
    if start in body and end in body:
        head, rest = body.split(start, 1)
        body = head + block + rest.split(end, 1)[1].lstrip("\n")
    else:
        body = body.rstrip("\n") + "\n\n" + block
    out.write_text(body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-ref", default=OLD_REF, help=f"git commit of the old code (default {OLD_REF})")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of old + new (default 3)")
    parser.add_argument("--seconds", type=float, default=60.0, help="speech length of the speed rows (default 60)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of: {', '.join(CASES)}")
    parser.add_argument("--emotion", default="happy", help="the emotion asked for (default happy)")
    parser.add_argument("--long", action="store_true", help="also 10 minutes of speech, 256 px crop (memory)")
    parser.add_argument("--long-new-only", action="store_true", help="the 10-minute run for the new code only")
    parser.add_argument("--out", type=Path, help="write the report into this markdown file (its bench_speed section)")
    args = parser.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    from run import machine_description

    started = time.perf_counter()
    machine = machine_description()
    with tempfile.TemporaryDirectory(prefix="facecue-speed-") as tmp:
        workdir = Path(tmp)
        old_src = export_tree(args.old_ref, workdir)
        new_src = ROOT / "src"
        speech = speech_of_length(args.seconds, workdir / "speech.wav")
        rows = {(code, case, args.seconds): Row(code, case, args.seconds) for case in cases for code in ("old", "new")}
        for round_ in range(args.rounds):
            for case in cases:
                for code, src in (("old", old_src), ("new", new_src)):
                    run = run_generate(src, case, speech, args.seconds, workdir, code, args.emotion)
                    rows[(code, case, args.seconds)].runs.append(run)
                    print(f"[round {round_ + 1}/{args.rounds}] {code} {case}: {run.wall_s:.1f} s "
                          f"(rtf {run.wall_s / args.seconds:.3f}), peak {run.peak_mb:.0f} MB, load {run.load:.2f}",
                          file=sys.stderr, flush=True)
        if args.long:
            long_speech = speech_of_length(600.0, workdir / "speech600.wav")
            for code, src in (("new", new_src),) if args.long_new_only else (("old", old_src), ("new", new_src)):
                run = run_generate(src, "256 px crop", long_speech, 600.0, workdir, code, args.emotion)
                rows[(code, "256 px crop", 600.0)] = Row(code, "256 px crop", 600.0, [run])
                print(f"[long] {code}: {run.wall_s:.1f} s, peak {run.peak_mb:.0f} MB", file=sys.stderr, flush=True)
    table_rows = list(rows.values())
    loads = [r.load for row in table_rows for r in row.runs]
    command = " ".join(["python benchmarks/bench_speed.py", *(sys.argv[1:] if argv is None else argv)])
    report = "\n".join([
        "## Whole process, old code beside new (`benchmarks/bench_speed.py`)",
        "",
        f"Made by `{command}` (each row: fresh `facecue generate` processes, timed from outside; "
        f"old = `{args.old_ref}` exported with `git archive`, new = this checkout; interleaved rounds; see the "
        "script's docstring). Peak memory = the largest sampled sum of the RSS of the process and its render workers.",
        "",
        *machine,
        f"- 1-minute load average when each run started: min {min(loads):.2f}, median {statistics.median(loads):.2f}, "
        f"max {max(loads):.2f} (a shared machine: other jobs ran beside these)",
        "",
        format_table(table_rows),
        "",
        *verdicts(table_rows),
        "",
        f"Measured in {(time.perf_counter() - started) / 60:.1f} minutes.",
    ])
    print(report)
    if args.out:
        write_section(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
