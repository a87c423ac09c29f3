"""Stage-1 inference speed and memory for 5 s, 60 s and 600 s of audio on this CPU.

Times ``facecue.speech_to_cues`` end to end (log-mel features, streaming generation, assembly of
the FaceCues) on speech-like synthetic audio (:func:`facecue.data.synthetic_audio`, made by the
parent process and passed as a .npy file) with a **randomly initialised model of the default config** (configs/
stage1_default.yaml; the computation and its cost do not depend on the weights' values). Each
length runs in its own subprocess so the memory figures are independent:

* ``peak RSS``: the process's high-water mark (ru_maxrss), torch and the model included;
* ``RSS growth``: that peak minus the resident size just before the call (after loading the
  model and a 1 s warm-up), i.e. what the call itself needed;
* ``in+out``: the size of the input samples and the returned FaceCues, which any method must
  hold (the 600 s output alone is 15000 x 478 x 3 float32 = 86 MB);
* ``tracemalloc``: peak of Python/numpy allocations during the call (torch's are not traced).

Usage: PYTHONPATH=src python benchmarks/bench_stage1.py [--threads 1] [--lengths 5 60 600]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def make_checkpoint(path: Path) -> Path:
    """A default-config stage-1 checkpoint with random weights and a random orthonormal PCA."""
    import torch

    from facecue.stage1 import STAGE1_KIND, STAGE1_VERSION, Stage1Config, Stage1Model
    from facecue.train import config_to_dict, load_config, save_checkpoint

    config = load_config(Stage1Config, REPO / "configs" / "stage1_default.yaml")
    torch.manual_seed(0)
    model = Stage1Model(config.model)
    with torch.no_grad():
        q, _ = torch.linalg.qr(torch.randn(model.pca_basis.shape[1], model.pca_basis.shape[0]))
        model.pca_basis.copy_(q.T)
        model.pca_std.fill_(0.01)
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.02)
    save_checkpoint(path, {"kind": STAGE1_KIND, "version": STAGE1_VERSION, "config": config_to_dict(config),
                           "model": model.state_dict(), "ema": None, "step": 0})
    return path


def child(audio_file: Path, checkpoint: Path, threads: int) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    from facecue.cues import FaceCues, angles_to_rotation, default_template
    from facecue.data import synthetic_audio
    from facecue.stage1 import load_stage1, model_size, speech_to_cues

    points = default_template().points.astype(np.float32)
    portrait = FaceCues(normalized=points[None], scale=np.array([100.0], np.float32),
                        rotation=angles_to_rotation(np.zeros((1, 3))).astype(np.float32),
                        translation=np.array([[256.0, 256.0, 0.0]], np.float32), gaze=np.zeros((1, 2, 2), np.float32),
                        aperture=np.full((1, 2), 0.3, np.float32), valid=np.ones(1, bool), identity=points,
                        fps=25.0, image_size=(512, 512))
    warm, _ = synthetic_audio(1.0, np.random.default_rng(0))
    speech_to_cues(warm, "happy", 0.7, portrait, checkpoint=checkpoint)
    audio = np.load(audio_file)  # made by the parent: synthesizing 600 s here would dominate the peak
    seconds = len(audio) / 16_000
    params, nbytes = model_size(load_stage1(checkpoint))
    rss_before = _rss_bytes()
    tracemalloc.start()
    started = time.perf_counter()
    cues = speech_to_cues(audio, "happy", 0.7, portrait, checkpoint=checkpoint, seed=0)
    wall = time.perf_counter() - started
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out_bytes = sum(getattr(cues, f).nbytes for f in ("normalized", "scale", "rotation", "translation", "gaze", "aperture", "valid"))
    return {"seconds": seconds, "frames": cues.n_frames, "wall_s": wall, "rtf": wall / seconds, "fps": cues.n_frames / wall,
            "peak_rss_mb": peak / 1e6, "rss_growth_mb": max(0, peak - rss_before) / 1e6,
            "in_out_mb": (audio.nbytes + out_bytes) / 1e6, "tracemalloc_peak_mb": traced_peak / 1e6,
            "params": params, "state_mb": nbytes / 1e6, "threads": torch.get_num_threads()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: one core)")
    parser.add_argument("--lengths", type=float, nargs="+", default=[5.0, 60.0, 600.0])
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.checkpoint, args.threads)))
        return 0
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": str(args.threads)}
    with tempfile.TemporaryDirectory() as tmp:
        import numpy as np

        from facecue.data import synthetic_audio

        checkpoint = make_checkpoint(Path(tmp) / "random_default.pt")
        rows = []
        for seconds in args.lengths:
            audio_file = Path(tmp) / f"speech_{seconds:g}s.npy"
            rng = np.random.default_rng(1)
            np.save(audio_file, np.concatenate([synthetic_audio(min(10.0, seconds - s), rng)[0] for s in np.arange(0, seconds, 10.0)]))
            proc = subprocess.run([sys.executable, __file__, "--child", str(audio_file), "--checkpoint", str(checkpoint),
                                   "--threads", str(args.threads)], env=env, capture_output=True, text=True)
            if proc.returncode:
                print(proc.stderr, file=sys.stderr)
                return 1
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    r = rows[0]
    print(f"stage-1 inference, default config with random weights ({r['params'] / 1e6:.2f} M parameters, "
          f"{r['state_mb']:.1f} MB fp32), {r['threads']} torch thread(s), {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPU(s)")
    print(f"{'audio':>8} {'frames':>7} {'wall s':>8} {'RTF':>7} {'frames/s':>9} {'peak RSS MB':>12} {'RSS growth MB':>14} "
          f"{'in+out MB':>10} {'tracemalloc MB':>15}")
    for r in rows:
        print(f"{r['seconds']:7.0f}s {r['frames']:7d} {r['wall_s']:8.2f} {r['rtf']:7.3f} {r['fps']:9.0f} {r['peak_rss_mb']:12.0f} "
              f"{r['rss_growth_mb']:14.1f} {r['in_out_mb']:10.1f} {r['tracemalloc_peak_mb']:15.1f}")
    by_len = {r["seconds"]: r for r in rows}
    if 60.0 in by_len and 600.0 in by_len:
        a, b = by_len[60.0], by_len[600.0]
        print(f"600 s vs 60 s: peak RSS x{b['peak_rss_mb'] / a['peak_rss_mb']:.2f}, RSS growth x"
              f"{b['rss_growth_mb'] / max(a['rss_growth_mb'], 1e-9):.1f} (in+out alone x{b['in_out_mb'] / a['in_out_mb']:.1f}), "
              f"growth beyond in+out: {a['rss_growth_mb'] - a['in_out_mb']:.1f} MB vs {b['rss_growth_mb'] - b['in_out_mb']:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
