"""The H.264 encoder's speed/quality trade-off on facecue's own frames: libx264 presets, crf, threads.

Usage::

    python benchmarks/bench_encoder.py                      # print the table
    python benchmarks/bench_encoder.py --out BENCHMARKS.md  # and write it into its section

The frames are the mesh renderer's: the bundled portrait speaking the bundled speech with the
phonetic model (happy, intensity 0.7), ``--frames`` of them, at 256 px (crop) and 512 px (full
portrait), as ``facecue generate`` makes them. Each setting encodes the same frames with
:class:`facecue.io.VideoWriter` (video only; the frames are converted to yuv420p beforehand, as the
render workers do) ``--repeats`` times; the table gives the fastest repeat's CPU time (user +
system of this process, every encoder thread included) and wall time per frame, the PSNR of the
decoded file against the rendered frames (mean squared error over all frames and channels), and
the file size. CPU time is what matters when render workers keep both cores busy; wall time is
what a single process waits for.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_speed import write_section  # noqa: E402
from run import FPS, _render_setup, cycled, machine_description  # noqa: E402

SECTION_START = "<!-- bench_encoder: start -->"
SECTION_END = "<!-- bench_encoder: end -->"
# (preset, crf, threads; 0 = libx264's choice): the old default (medium, crf 20, libx264's
# threads), the new one (facecue.io.VIDEO_PRESET / VIDEO_CRF, one thread), and neighbours
SETTINGS = (("medium", 20, 0), ("medium", 20, 1), ("faster", 19, 1), ("veryfast", 18, 0), ("veryfast", 18, 1),
            ("veryfast", 17, 1), ("veryfast", 20, 1))
CASES = {"256 px crop": (256, False), "512 px full": (512, True)}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rendered_frames(count: int, size: int, full: bool) -> list[np.ndarray]:
    """``count`` mesh-renderer frames (H, W, 3) uint8 RGB of the bundled portrait speaking."""
    render, image, points, motion = _render_setup()
    return list(render(image, points, cycled(motion, count), renderer="mesh", output_size=size, full=full))


def encode(frames: list, path: Path, preset: str, crf: int, threads: int) -> tuple[float, float]:
    """Encode ``frames`` (yuv420p, see :class:`facecue.io.Yuv420p`); (CPU s, wall s)."""
    from facecue.io import VideoWriter

    cpu, wall = cpu_seconds(), time.perf_counter()
    with VideoWriter(path, FPS, crf=crf, preset=preset, threads=threads) as writer:
        for frame in frames:
            writer.write(frame)
    return cpu_seconds() - cpu, time.perf_counter() - wall


def psnr(path: Path, frames: list[np.ndarray]) -> float:
    from facecue.io import iter_video_frames

    squared, count = 0.0, 0
    for decoded, original in zip(iter_video_frames(path), frames):
        squared += float(np.sum((decoded.astype(np.float64) - original) ** 2))
        count += original.size
    return 10.0 * np.log10(255.0**2 / (squared / count))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=250, help="frames per case (default 250, 10 s)")
    parser.add_argument("--repeats", type=int, default=3, help="encodes per setting; the fastest counts (default 3)")
    parser.add_argument("--out", type=Path, help="write the report into this markdown file (its bench_encoder section)")
    args = parser.parse_args(argv)
    from facecue.io import VIDEO_CRF, VIDEO_PRESET, Yuv420p

    started = time.perf_counter()
    lines = ["| case | preset | crf | threads | CPU ms/frame | wall ms/frame | PSNR dB | file KB |",
             "|---|---|--:|--:|--:|--:|--:|--:|"]
    with tempfile.TemporaryDirectory(prefix="facecue-encoder-") as tmp:
        for case, (size, full) in CASES.items():
            frames = rendered_frames(args.frames, size, full)
            convert = Yuv420p()
            converted = [convert(frame) for frame in frames]
            for preset, crf, threads in SETTINGS:
                path = Path(tmp) / f"{size}_{preset}_{crf}_{threads}.mp4"
                cpu, wall = min(encode(converted, path, preset, crf, threads) for _ in range(args.repeats))
                quality = psnr(path, frames)
                default = " (default)" if (preset, crf, threads) == (VIDEO_PRESET, VIDEO_CRF, 1) else ""
                row = (f"| {case} | {preset}{default} | {crf} | {threads or 'auto'} | {1000 * cpu / len(frames):.2f} | "
                       f"{1000 * wall / len(frames):.2f} | {quality:.2f} | {path.stat().st_size / 1024:.0f} |")
                lines.append(row)
                print(row, file=sys.stderr, flush=True)
    command = " ".join(["python benchmarks/bench_encoder.py", *(sys.argv[1:] if argv is None else argv)])
    report = "\n".join([
        "## H.264 encoder settings (`benchmarks/bench_encoder.py`)",
        "",
        f"Made by `{command}`: {args.frames} mesh-renderer frames of the bundled portrait per case, each "
        f"setting encoded {args.repeats} times (the fastest counts), PSNR of the decoded file against the "
        "rendered frames. facecue writes every video with one encoder thread (the same file on every machine; "
        "its render workers keep the cores busy).",
        "",
        *machine_description(),
        "",
        *lines,
        "",
        f"Measured in {(time.perf_counter() - started) / 60:.1f} minutes.",
    ])
    print(report)
    if args.out:
        write_section(args.out, report, SECTION_START, SECTION_END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
