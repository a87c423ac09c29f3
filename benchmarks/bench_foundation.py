"""Speed of the foundation stages on this machine.

Usage: python benchmarks/bench_foundation.py [--seconds 60]

Prints landmark extraction frames/s (MediaPipe video mode, tracked) at 256 px (a real MEAD clip
from ../shared/data when present, else the bundled portrait moved a little each frame) and 512 px,
cue decomposition frames/s, and the audio-feature real-time factor (log-mel frames + loudness;
and phone recognition) for --seconds of audio.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from facecue.audio import loudness_envelope, mel_frames, recognize_phones  # noqa: E402
from facecue.cli import asset_path  # noqa: E402
from facecue.constants import DEFAULT_FPS, SAMPLE_RATE  # noqa: E402
from facecue.cues import FaceCues  # noqa: E402
from facecue.io import iter_video_frames, read_audio, read_image  # noqa: E402
from facecue.landmarks import track_landmarks  # noqa: E402


def frames_at(size: int, n: int) -> list[np.ndarray]:
    import cv2

    clip = ROOT.parent / "shared" / "data" / "mead_clips" / "M030_happy_level3_001.mp4"
    if size == 256 and clip.exists():
        frames = list(iter_video_frames(clip))
    else:
        portrait = cv2.resize(read_image(asset_path("portrait.png")), (size, size), interpolation=cv2.INTER_AREA)
        frames = [np.roll(portrait, k % 7 - 3, axis=1) for k in range(60)]
    return [frames[k % len(frames)] for k in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="audio length for the audio benchmark")
    parser.add_argument("--frames", type=int, default=250, help="frames per landmark benchmark")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print()
    print("| stage | input | frames | seconds | frames/s |")
    print("|---|---|---|---|---|")
    for size in (256, 512):
        frames = frames_at(size, args.frames)
        track_landmarks(frames[:5])  # warm-up: model load
        start = time.perf_counter()
        points, _ = track_landmarks(frames)
        elapsed = time.perf_counter() - start
        print(f"| landmarks (MediaPipe, tracked) | {size}x{size} | {len(frames)} | {elapsed:.2f} | {len(frames) / elapsed:.0f} |")
    start = time.perf_counter()
    FaceCues.from_landmarks(points, DEFAULT_FPS, (512, 512))
    elapsed = time.perf_counter() - start
    print(f"| cue decomposition (pose, gaze, blink) | {len(points)} frames | {len(points)} | {elapsed:.3f} | {len(points) / elapsed:.0f} |")
    print()
    speech = read_audio(asset_path("speech.wav"))
    reps = int(np.ceil(args.seconds * SAMPLE_RATE / len(speech)))
    audio = np.tile(speech, reps)[: int(args.seconds * SAMPLE_RATE)]
    print("| audio stage | audio seconds | compute seconds | real-time factor |")
    print("|---|---|---|---|")
    start = time.perf_counter()
    mel_frames(audio, DEFAULT_FPS)
    loudness_envelope(audio, DEFAULT_FPS)
    elapsed = time.perf_counter() - start
    print(f"| log-mel frames + loudness @25 fps | {args.seconds:.0f} | {elapsed:.4f} | {elapsed / args.seconds:.5f} |")
    start = time.perf_counter()
    recognize_phones(audio)
    elapsed = time.perf_counter() - start
    print(f"| phone recognition (pocketsphinx all-phone) | {args.seconds:.0f} | {elapsed:.2f} | {elapsed / args.seconds:.4f} |")
    print("\nreal-time factor = compute time / media duration (< 1 is faster than real time)")


if __name__ == "__main__":
    main()
