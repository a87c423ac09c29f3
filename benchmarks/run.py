"""Speed and memory of every facecue stage and of the whole pipeline, as one markdown table.

Usage::

    python benchmarks/run.py                                   # all stages, 5 / 60 / 600 s, CPU
    python benchmarks/run.py --out BENCHMARKS.md               # ... and write BENCHMARKS.md
    python benchmarks/run.py --quick --stages audio,phonetic   # 5 s only (what the tests run)
    python benchmarks/run.py --device cuda --stages network,neural

Every (stage, setting, length) is measured in a fresh Python process, so that the peak memory
(the process's RSS high-water mark, ``ru_maxrss``) and the caches of one measurement do not
leak into the next. A child builds its input (untimed), warms the stage up on a short input
(model loading, caches; untimed), then times one run over the whole input. The pipeline row is
the exception: it times a cold ``facecue.generate.generate`` call, model loading included, as a
user would see it. Peak RSS covers the whole child process: interpreter, libraries and the input
it built, not only the stage's own work; for the pipeline, the largest sampled sum of the child
and its render workers (``bench_speed.PeakSampler``).

Inputs: speech is the bundled ``speech.wav`` tiled to the length; the landmark stage reads a
256 px video of the bundled portrait moved slightly each frame (written once per length before
the measurements); the renderer and the encoder are driven by the phonetic model's landmarks of
the bundled speech, cycled to the length.

Columns: frames/s = video frames at 25 fps (or landmark/rendered frames) per compute second;
real-time factor = compute seconds / media seconds (below 1 is faster than real time).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

STAGES = ("landmarks", "audio", "phones", "phonetic", "network", "render", "neural", "encode", "pipeline")
STAGE_TITLES = {
    "landmarks": "landmarks (MediaPipe tracking)",
    "audio": "audio features (log-mel + loudness)",
    "phones": "phone recognition (pocketsphinx)",
    "phonetic": "stage 1: phonetic cue model",
    "network": "stage 1: network",
    "render": "renderer: mesh",
    "neural": "renderer: neural",
    "encode": "encode (H.264 + AAC)",
    "pipeline": "whole pipeline (generate)",
}
# settings per stage: each is one row (and one child process) per length
SETTINGS = {"render": ("256 px crop", "512 px crop"), "neural": ("batch 1", "batch 16"),
            "pipeline": ("phonetic cues (default)", "network cues")}
# measurements this script cannot repeat here (a GPU, a checkpoint that is not in the repository),
# kept in the report between these markers with the commands that made them
KEPT_START, KEPT_END = "<!-- kept measurements: start -->", "<!-- kept measurements: end -->"
DEFAULT_LENGTHS = (5.0, 60.0, 600.0)
FPS = 25.0
VIDEO_SIZE = 256  # px, the landmark stage's input video and the pipeline's output crop
WARMUP_SECONDS = 1.0
RESULT_PREFIX = "FACECUE-BENCH "
RTF_BAR = 1.0  # issue 6: the whole pipeline faster than real time at 5 s and 60 s
MEMORY_BAR_MB = 2000.0  # issue 6: 10 minutes of audio under 2 GB peak RSS
MEMORY_BAR_SECONDS = 600.0


@dataclass
class Measurement:
    """One row of the table."""

    stage: str
    setting: str
    seconds: float  # media length
    frames: int | None = None
    compute_s: float | None = None
    peak_rss_mb: float | None = None
    note: str = ""
    status: str = "ok"  # "ok", "skipped" or "failed"

    @property
    def frames_per_s(self) -> float | None:
        return None if not self.frames or not self.compute_s else self.frames / self.compute_s

    @property
    def real_time_factor(self) -> float | None:
        return None if self.compute_s is None else self.compute_s / self.seconds


# --- inputs ----------------------------------------------------------------------------------


def speech_of_length(seconds: float):
    """The bundled speech tiled to ``seconds``: (N,) float32 at SAMPLE_RATE."""
    import numpy as np

    from facecue.cli import asset_path
    from facecue.constants import SAMPLE_RATE

    try:
        from facecue.io import read_audio

        speech = read_audio(asset_path("speech.wav"))
    except ImportError:  # no PyAV (a GPU box with torch alone): the bundled 16 kHz PCM wav
        speech = _read_pcm_wav(asset_path("speech.wav"))
    n = int(round(seconds * SAMPLE_RATE))
    return np.tile(speech, math.ceil(n / len(speech)))[:n].astype(np.float32)


def _read_pcm_wav(path: Path):
    import wave

    import numpy as np

    from facecue.constants import SAMPLE_RATE

    with wave.open(str(path)) as wav:
        if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (SAMPLE_RATE, 1, 2):
            raise ImportError("PyAV is needed to read this wav")
        return np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(np.float32) / 32768.0


def n_frames_of(seconds: float) -> int:
    from facecue.audio import n_video_frames
    from facecue.constants import SAMPLE_RATE

    return n_video_frames(int(round(seconds * SAMPLE_RATE)), FPS)


def moving_portrait_frames(size: int = VIDEO_SIZE, period: int = 75):
    """One period of the bundled portrait moved slightly (a smooth sub-pixel shift and a small
    rotation), ``period`` frames of (size, size, 3) uint8."""
    import cv2
    import numpy as np

    from facecue.cli import asset_path
    from facecue.io import read_image

    portrait = cv2.resize(read_image(asset_path("portrait.png")), (size, size), interpolation=cv2.INTER_AREA)
    frames = []
    for k in range(period):
        phase = 2 * math.pi * k / period
        matrix = cv2.getRotationMatrix2D((size / 2, size / 2), 2.0 * math.sin(phase), 1.0)
        matrix[:, 2] += (0.012 * size * math.sin(phase), 0.008 * size * math.sin(2 * phase))
        frames.append(cv2.warpAffine(portrait, matrix, (size, size), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REFLECT101))
    return frames


def write_landmark_video(path: Path, seconds: float) -> Path:
    """The landmark stage's input: ``seconds`` of the moving portrait at 25 fps, 256 px."""
    from facecue.io import VideoWriter

    period = moving_portrait_frames()
    with VideoWriter(path, FPS) as writer:
        for k in range(n_frames_of(seconds)):
            writer.write(period[k % len(period)])
    return path


def portrait_cues():
    """(portrait image, FaceCues of the bundled portrait). Without MediaPipe (a GPU box with
    torch alone), the face template placed in a 512 px image stands in for the network stage."""
    from facecue.cli import asset_path
    from facecue.cues import FaceCues, default_template, extract_cues

    try:
        from facecue.io import read_image

        image = read_image(asset_path("portrait.png"))
        return image, extract_cues(image)
    except ImportError:
        points = default_template().points.astype("float32") * 110.0 + [256.0, 240.0, 0.0]
        return None, FaceCues.from_landmarks(points[None], FPS, (512, 512))


def speech_landmarks(portrait):
    """Landmarks (T, 478, 3) pixels of the phonetic model speaking the bundled speech: the
    renderer's and the encoder's driving motion (cycled to the length)."""
    from facecue.cli import asset_path
    from facecue.io import read_audio
    from facecue.phonetic import phonetic_cues

    return phonetic_cues(read_audio(asset_path("speech.wav")), portrait, "happy", 0.7, seed=0).landmarks()


def cycled(frames, n: int) -> Iterator:
    return (frames[k % len(frames)] for k in range(n))


# --- one measurement per child process ---------------------------------------------------------


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def bench_landmarks(spec: dict) -> dict:
    from facecue.cues import extract_cues
    from facecue.landmarks import track_landmarks

    video = Path(spec["inputs"]["video"])
    track_landmarks(moving_portrait_frames(period=5))  # warm-up: MediaPipe's graph and models
    elapsed, cues = timed(lambda: extract_cues(video))
    return {"compute_s": elapsed, "frames": cues.n_frames, "note": "video decode + tracking + cue decomposition"}


def bench_audio(spec: dict) -> dict:
    from facecue.audio import loudness_envelope, mel_frames

    audio = speech_of_length(spec["seconds"])
    warm = audio[: int(WARMUP_SECONDS * 16000)]
    mel_frames(warm, FPS), loudness_envelope(warm, FPS)
    elapsed, mel = timed(lambda: (mel_frames(audio, FPS), loudness_envelope(audio, FPS))[0])
    return {"compute_s": elapsed, "frames": len(mel), "note": "25 fps frames of 4 x 80 log-mel"}


def bench_phones(spec: dict) -> dict:
    from facecue.audio import recognize_phones

    audio = speech_of_length(spec["seconds"])
    recognize_phones(audio[: int(WARMUP_SECONDS * 16000)])
    elapsed, phones = timed(lambda: recognize_phones(audio))
    return {"compute_s": elapsed, "frames": n_frames_of(spec["seconds"]), "note": f"all-phone decoding, {len(phones)} phones"}


def bench_phonetic(spec: dict) -> dict:
    from facecue.phonetic import phonetic_cues

    audio = speech_of_length(spec["seconds"])
    _, portrait = portrait_cues()
    phonetic_cues(audio[: int(WARMUP_SECONDS * 16000)], portrait, "happy", 0.7)
    elapsed, cues = timed(lambda: phonetic_cues(audio, portrait, "happy", 0.7, seed=0))
    return {"compute_s": elapsed, "frames": cues.n_frames, "note": "phone recognition included"}


def _stage1_runner(spec: dict):
    """(run(audio) -> FaceCues, label) for the network stage on spec's device."""
    import numpy as np
    import torch

    from facecue import stage1
    from facecue.audio import loudness_envelope, mel_frames
    from facecue.data import PoseAnchor

    device = spec["device"]
    checkpoint = spec.get("checkpoint")
    image, portrait = portrait_cues()
    face = "" if image is not None else "; face template as portrait (no MediaPipe)"
    if checkpoint and device == "cpu":
        # the public API, exactly as facecue.generate calls it
        def run(audio):
            return stage1.speech_to_cues(audio, "happy", 0.7, portrait, seed=0, checkpoint=checkpoint)

        return run, f"checkpoint {Path(checkpoint).name}{face}"
    if checkpoint:
        model = stage1.load_stage1(checkpoint)
        label = f"checkpoint {Path(checkpoint).name}"
    else:
        torch.manual_seed(0)
        model = stage1.Stage1Model(stage1.Stage1ModelConfig()).eval()
        label = "random weights, speed only"
    model = model.to(device)
    identity = portrait.identity.astype(np.float32)
    first = portrait.slice(0, 1)
    anchor = PoseAnchor.of(first.scale, first.rotation, first.translation, 1)
    initial = (first.normalized[0, : stage1.N_MESH_POINTS] - identity[: stage1.N_MESH_POINTS],
               np.zeros(stage1.N_POSE, np.float32), first.combined_gaze[0])

    def run(audio):  # speech_to_cues' steps, on the chosen device
        n = n_frames_of(len(audio) / 16000)
        mel, loud = mel_frames(audio, FPS, n), loudness_envelope(audio, FPS, n)
        out = model.generate(mel, loud, 5, 0.7, identity, initial, temperature=1.0, seed=0)
        return stage1.assemble_cues(out["expression"], out["pose"], out["gaze"], identity, anchor, FPS,
                                    portrait.image_size)

    return run, label + face


def bench_network(spec: dict) -> dict:
    device = spec["device"]
    run, label = _stage1_runner(spec)
    audio = speech_of_length(spec["seconds"])
    run(audio[: int(WARMUP_SECONDS * 16000)])
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    elapsed, cues = timed(lambda: run(audio))
    note = f"{label}; {device}; log-mel included"
    if device == "cuda":
        import torch

        note += f"; GPU peak {torch.cuda.max_memory_allocated() / 1e6:.0f} MB"
    return {"compute_s": elapsed, "frames": cues.n_frames, "note": note}


def _render_setup():
    from facecue.render import render

    image, portrait = portrait_cues()
    return render, image, portrait.landmarks()[0], speech_landmarks(portrait)


def bench_render(spec: dict) -> dict:
    render, image, points, motion = _render_setup()
    size = int(spec["setting"].split()[0])
    n = n_frames_of(spec["seconds"])
    for _ in render(image, points, motion[:5], renderer="mesh", output_size=size, full=False):
        pass  # warm-up: mesh topology and other caches

    def run():
        count = 0
        for _ in render(image, points, cycled(motion, n), renderer="mesh", output_size=size, full=False):
            count += 1
        return count

    elapsed, count = timed(run)
    return {"compute_s": elapsed, "frames": count, "note": "portrait preparation included"}


def bench_neural(spec: dict) -> dict:
    """The registered "neural" renderer (a trained checkpoint) on ``--device``: frames/s at batch 1
    and 16 (``render_batch``), 256 px crops, portrait preparation excluded."""
    import torch

    from facecue.render import get_renderer

    batch = int(spec["setting"].split()[1])
    device = spec["device"]
    _, image, points, motion = _render_setup()
    try:
        engine = get_renderer("neural", checkpoint=spec["neural_checkpoint"], device=device)
    except Exception as exc:  # noqa: BLE001 - e.g. a wrong checkpoint: a note in the table, not a crash
        return {"status": "skipped", "note": f"cannot build the neural renderer: {type(exc).__name__}: {exc}"}
    engine.prepare(image, points)
    n = n_frames_of(spec["seconds"])
    if batch > 1 and not hasattr(engine, "render_batch"):
        return {"status": "skipped", "note": "the neural renderer has no render_batch()"}

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def run():
        count = 0
        for start in range(0, n, batch):
            chunk = [motion[k % len(motion)] for k in range(start, min(n, start + batch))]
            if batch == 1:
                engine.render_frame(chunk[0])
            else:
                engine.render_batch(chunk)
            count += len(chunk)
        sync()
        return count

    for k in range(2):
        engine.render_frame(motion[k])
    sync()
    elapsed, count = timed(run)
    note = f"GPU peak {torch.cuda.max_memory_allocated() / 1e6:.0f} MB" if device == "cuda" else \
        f"{torch.get_num_threads()} torch thread(s)"
    return {"compute_s": elapsed, "frames": count, "note": note}


def bench_encode(spec: dict) -> dict:
    import itertools as it

    from facecue.io import VideoWriter

    render, image, points, motion = _render_setup()
    frames = list(it.islice(render(image, points, motion, renderer="mesh", output_size=VIDEO_SIZE, full=False), 50))
    audio = speech_of_length(spec["seconds"])
    n = n_frames_of(spec["seconds"])
    out = Path(spec["workdir"]) / f"encode_{os.getpid()}.mp4"
    with VideoWriter(out, FPS, audio=audio[:16000]) as writer:  # warm-up: codecs
        for frame in frames[:25]:
            writer.write(frame)

    def run():
        with VideoWriter(out, FPS, audio=audio) as writer:
            for frame in cycled(frames, n):
                writer.write(frame)
        return writer.n_frames

    elapsed, count = timed(run)
    size_mb = out.stat().st_size / 1e6
    out.unlink()
    return {"compute_s": elapsed, "frames": count, "note": f"{VIDEO_SIZE} px mesh-rendered frames, {size_mb:.1f} MB file"}


def bench_pipeline(spec: dict) -> dict:
    from facecue.cli import asset_path
    from facecue.generate import generate
    from facecue.io import write_wav

    workdir = Path(spec["workdir"])
    wav = write_wav(workdir / f"speech_{os.getpid()}.wav", speech_of_length(spec["seconds"]))
    out = workdir / f"talk_{os.getpid()}.mp4"
    if spec["setting"].startswith("network"):
        options = {"cue_model": "network", "checkpoint": spec["checkpoint"]}
    else:
        options = {"cue_model": "phonetic"}
    elapsed, result = timed(lambda: generate(asset_path("portrait.png"), wav, out, size=VIDEO_SIZE, full=False,
                                             renderer="mesh", emotion="happy", intensity=0.7, **options))
    parts = ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items())
    for path in (wav, out, out.with_suffix(".json")):
        path.unlink(missing_ok=True)
    return {"compute_s": elapsed, "frames": result.n_frames,
            "note": f"cue model {result.cues.meta.get('cue_model', '?')}; cold start; {parts}"}


BENCHES = {
    "landmarks": bench_landmarks, "audio": bench_audio, "phones": bench_phones, "phonetic": bench_phonetic,
    "network": bench_network, "render": bench_render, "neural": bench_neural, "encode": bench_encode,
    "pipeline": bench_pipeline,
}


def peak_rss_mb() -> float:
    """The process's (or its children's, if larger) RSS high-water mark in MB; ru_maxrss is KiB on Linux."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) * 1024 / 1e6


def child_main(spec_json: str) -> int:
    """Run one measurement and print it as one JSON line on stdout."""
    spec = json.loads(spec_json)
    if spec.get("torch_threads"):
        import torch

        torch.set_num_threads(spec["torch_threads"])
    sampler = None
    if spec["stage"] == "pipeline":  # generate() renders in worker processes: count them too
        from bench_speed import PeakSampler

        sampler = PeakSampler(os.getpid())
    with contextlib.redirect_stdout(sys.stderr):  # libraries that print must not garble the result line
        result = BENCHES[spec["stage"]](spec)
    result.setdefault("status", "ok")
    result["peak_rss_mb"] = max(peak_rss_mb(), sampler.stop() if sampler else 0.0)
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


# --- the parent: plan, prepare inputs, run children, report -----------------------------------


def stage_available(stage: str, device: str, checkpoint: str | None) -> str | None:
    """A reason to skip ``stage`` without starting a child, or None."""
    if stage == "network":
        try:
            import facecue.stage1  # noqa: F401
        except Exception as exc:  # noqa: BLE001 - any import failure means "not there yet"
            return f"facecue.stage1 is not importable ({type(exc).__name__}: {exc})"
    if stage == "neural":
        from facecue.render import available_renderers

        if "neural" not in available_renderers():
            return "no 'neural' renderer is registered in facecue.render"
        if not checkpoint:
            return "needs a trained checkpoint: pass --neural-checkpoint (facecue train mapper)"
        if not Path(checkpoint).is_file():
            return f"--neural-checkpoint {checkpoint} not found"
    if stage in ("network", "neural") and device == "cuda":
        import torch

        if not torch.cuda.is_available():
            return "CUDA is not available on this machine"
    return None


def run_child(spec: dict) -> Measurement:
    row = Measurement(spec["stage"], spec["setting"], spec["seconds"])
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                          cwd=ROOT)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        errors = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        row.status, row.note = "failed", (errors[-1] if errors else f"exit status {proc.returncode}")[:200]
        return row
    data = json.loads(lines[-1][len(RESULT_PREFIX):])
    row.status = data.get("status", "ok")
    row.note = data.get("note", "")
    row.frames = data.get("frames")
    row.compute_s = data.get("compute_s")
    row.peak_rss_mb = data.get("peak_rss_mb")
    return row


def significant(value: float) -> str:
    """A measured number with at least 3 significant digits (0.00612, 1.23, 12.35, 1234): every
    printed column is within 0.5% of the value it was computed from, so columns derived from one
    another (frames/s = frames / compute s) agree however small or large the numbers are."""
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def format_table(rows: list[Measurement]) -> str:
    def num(value, fmt):
        return "—" if value is None else format(value, fmt)

    def figure(value):
        return "—" if value is None else significant(value)

    lines = [
        "| stage | setting | media s | frames | compute s | frames/s | real-time factor | peak RSS MB | notes |",
        "|---|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    for r in rows:
        rtf = r.real_time_factor
        note = r.note if r.status == "ok" else f"**{r.status}**: {r.note}"
        lines.append(
            f"| {STAGE_TITLES[r.stage]} | {r.setting} | {r.seconds:g} | {num(r.frames, 'd')} | {figure(r.compute_s)} "
            f"| {figure(r.frames_per_s)} | {figure(rtf)} | {num(r.peak_rss_mb, '.0f')} | {note.replace('|', '/')} |"
        )
    return "\n".join(lines)


def bar_lines(rows: list[Measurement]) -> list[str]:
    """The issue-6 bars, checked on the pipeline rows that were measured."""
    pipeline = {r.seconds: r for r in rows if r.stage == "pipeline" and r.status == "ok"
                and r.setting.startswith("phonetic")}  # the default path
    out = []
    for seconds in (5.0, 60.0):
        if seconds in pipeline:
            rtf = pipeline[seconds].real_time_factor
            verdict = "meets" if rtf < RTF_BAR else "MISSES"
            out.append(f"- whole pipeline (default cue model), {seconds:g} s of audio, 256 px, mesh renderer: "
                       f"real-time factor {rtf:.2f} "
                       f"({verdict} the bar of < {RTF_BAR:g})")
    long = pipeline.get(MEMORY_BAR_SECONDS)
    if long is not None:
        verdict = "meets" if long.peak_rss_mb < MEMORY_BAR_MB else "MISSES"
        out.append(f"- whole pipeline (default cue model), {MEMORY_BAR_SECONDS:g} s of audio: completed in "
                   f"{long.compute_s:.0f} s "
                   f"(real-time factor {long.real_time_factor:.2f}), peak RSS {long.peak_rss_mb:.0f} MB "
                   f"({verdict} the bar of < {MEMORY_BAR_MB / 1000:g} GB)")
    return out


def _version(*names: str) -> str:
    """Installed version of the first distribution found among ``names`` (alternative builds)."""
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "absent"


def machine_description(torch_threads: int | None = None) -> list[str]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    packages = {"torch": ("torch",), "mediapipe": ("mediapipe",), "numpy": ("numpy",), "av": ("av",),
                "opencv": ("opencv-python", "opencv-python-headless", "opencv-contrib-python"),
                "pocketsphinx": ("pocketsphinx",)}
    versions = ", ".join(f"{label} {_version(*names)}" for label, names in packages.items())
    try:
        import torch

        threads = f"{torch_threads or torch.get_num_threads()} torch threads{'' if torch_threads else ' (its default)'}"
    except ImportError:
        threads = "no torch"
    return [
        f"- CPU: {cpu}, {os.cpu_count()} cores ({usable} usable), RAM {ram}; {threads}",
        f"- Python {platform.python_version()} on {platform.system()} {platform.release()}; {versions}",
        f"- facecue {commit or '?'}; run on {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; "
        f"load average at start {load}",
    ]


def prepare_inputs(stage: str, seconds: float, workdir: Path, cache: dict) -> dict:
    if stage != "landmarks":
        return {}
    key = ("video", seconds)
    if key not in cache:
        print(f"preparing the {seconds:g} s landmark-stage video ...", file=sys.stderr, flush=True)
        cache[key] = str(write_landmark_video(workdir / f"moving_portrait_{seconds:g}s.mp4", seconds))
    return {"video": cache[key]}


def parse_lengths(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"lengths must be seconds separated by commas, got {text!r}") from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"lengths must be positive seconds, got {text!r}")
    return values


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def parse_stages(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in STAGES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown stage(s) {', '.join(unknown) or text!r}; choose from: {', '.join(STAGES)}")
    return tuple(stage for stage in STAGES if stage in names)  # the table's order


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=parse_lengths, default=DEFAULT_LENGTHS,
                        help="media lengths in seconds, comma-separated (default 5,60,600)")
    parser.add_argument("--stages", type=parse_stages, default=STAGES,
                        help=f"comma-separated subset of: {', '.join(STAGES)} (default all)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where the stage-1 network and a neural renderer run (default cpu)")
    parser.add_argument("--checkpoint", help="stage-1 checkpoint for the network stage and the pipeline "
                        "(default: the bundled one if any, else a randomly initialised model for speed only)")
    parser.add_argument("--neural-checkpoint", help="trained checkpoint of the 'neural' renderer (facecue train mapper); without it "
                        "the neural rows are skipped")
    parser.add_argument("--torch-threads", type=positive_int, metavar="N",
                        help="torch.set_num_threads(N) in every measurement (default: torch's own choice)")
    parser.add_argument("--quick", action="store_true", help="5 s only (overrides --lengths)")
    parser.add_argument("--out", type=Path, help="also write the report (machine, table, how to reproduce) to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.child:
        return child_main(args.child)
    lengths = (5.0,) if args.quick else args.lengths
    checkpoint = args.checkpoint
    if checkpoint is None:
        from facecue.generate import bundled_checkpoint

        bundled = bundled_checkpoint()
        checkpoint = str(bundled) if bundled else None
    elif not Path(checkpoint).is_file():
        print(f"error: checkpoint {checkpoint} not found", file=sys.stderr)
        return 2
    machine = machine_description(args.torch_threads)
    plan = [(stage, setting, seconds) for stage in args.stages for setting in SETTINGS.get(stage, ("",))
            for seconds in lengths]
    if "pipeline" in args.stages:
        plan = [p for p in plan if p[0] != "pipeline"] + [p for p in plan if p[0] == "pipeline"]
    rows: list[Measurement] = []
    skips = {stage: stage_available(stage, args.device, args.neural_checkpoint if stage == "neural" else checkpoint)
             for stage in args.stages}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="facecue-bench-") as tmp:
        workdir, cache = Path(tmp), {}
        for index, (stage, setting, seconds) in enumerate(plan, 1):
            what = f"[{index}/{len(plan)}] {stage}{' ' + setting if setting else ''}, {seconds:g} s"
            if skips[stage]:
                rows.append(Measurement(stage, setting, seconds, status="skipped", note=skips[stage]))
                print(f"{what}: skipped ({skips[stage]})", file=sys.stderr, flush=True)
                continue
            spec = {"stage": stage, "setting": setting, "seconds": seconds, "device": args.device,
                    "checkpoint": checkpoint, "workdir": tmp, "torch_threads": args.torch_threads,
                    "neural_checkpoint": args.neural_checkpoint}
            print(f"{what} ...", file=sys.stderr, flush=True)
            try:
                spec["inputs"] = prepare_inputs(stage, seconds, workdir, cache)
            except Exception as exc:  # noqa: BLE001 - reported in the table, the other rows go on
                row = Measurement(stage, setting, seconds, status="failed",
                                  note=f"preparing the input: {type(exc).__name__}: {exc}")
            else:
                row = run_child(spec)
            rows.append(row)
            if row.status == "ok":
                print(f"{what}: {significant(row.compute_s)} s, {significant(row.frames_per_s)} frames/s, real-time "
                      f"factor {significant(row.real_time_factor)}, peak RSS {row.peak_rss_mb:.0f} MB", file=sys.stderr, flush=True)
            else:
                print(f"{what}: {row.status}: {row.note}", file=sys.stderr, flush=True)
    order = {(stage, setting): k for k, (stage, setting, _) in enumerate(plan)}
    rows.sort(key=lambda r: (STAGES.index(r.stage), order[(r.stage, r.setting)], r.seconds))
    table = format_table(rows)
    bars = bar_lines(rows)
    print(table)
    if bars:
        print()
        print("\n".join(bars))
    if args.out:
        write_report(args, lengths, machine, table, bars, time.perf_counter() - started)
    return 1 if any(r.status == "failed" for r in rows) else 0


def reproduce_command(args, lengths) -> str:
    parts = ["python benchmarks/run.py"]
    if args.quick:
        parts.append("--quick")
    elif tuple(lengths) != DEFAULT_LENGTHS:
        parts.append("--lengths " + ",".join(f"{s:g}" for s in lengths))
    if tuple(args.stages) != STAGES:
        parts.append("--stages " + ",".join(args.stages))
    if args.device != "cpu":
        parts.append(f"--device {args.device}")
    if args.checkpoint:
        parts.append(f"--checkpoint {args.checkpoint}")
    if args.neural_checkpoint:
        parts.append(f"--neural-checkpoint {args.neural_checkpoint}")
    if args.torch_threads:
        parts.append(f"--torch-threads {args.torch_threads}")
    parts.append(f"--out {args.out.name if args.out.parent.resolve() == ROOT else args.out}")
    return " ".join(parts)


def write_report(args, lengths, machine: list[str], table: str, bars: list[str], wall_s: float) -> None:
    text = "\n".join([
        "# Benchmarks",
        "",
        "Speed and peak memory of each facecue stage and of the whole pipeline, written by "
        "`benchmarks/run.py` (see its docstring for what each row times). Every row is a fresh process; "
        "components are timed warm (models loaded on a short input first), the pipeline cold "
        "(a whole `facecue.generate.generate` call). Peak RSS is the process's high-water mark, "
        "interpreter and libraries included. Real-time factor = compute seconds / media seconds.",
        "",
        "## Machine",
        "",
        *machine,
        "- Other processes may have been running on this machine during the measurements "
        "(it is shared): single numbers are noisy, compare orders of magnitude.",
        "",
        "## Results",
        "",
        table,
        "",
        *([*bars, ""] if bars else []),
        f"Measured in {wall_s / 60:.1f} minutes.",
        "",
        "## How to reproduce",
        "",
        f"`{reproduce_command(args, lengths)}` (from the repository root, in the project's virtual environment).",
        "",
    ])
    if args.out.exists():  # keep the old-vs-new section of benchmarks/bench_speed.py and the kept measurements
        from bench_speed import SECTION_END, SECTION_START

        old = args.out.read_text()
        for start, end in ((KEPT_START, KEPT_END), (SECTION_START, SECTION_END)):
            if start in old and end in old:
                text += "\n" + start + old.split(start, 1)[1].split(end, 1)[0] + end + "\n"
    tmp = args.out.with_name(f".{args.out.name}.tmp-{os.getpid()}")  # no half-written report
    try:
        tmp.write_text(text)
        os.replace(tmp, args.out)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
