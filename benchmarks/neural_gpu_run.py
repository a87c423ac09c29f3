"""Train and measure the neural stage 2 on one GPU, within a fixed time budget.

Run by ``scripts/gpu_neural_renderer.sh`` (read it first); needs only torch, numpy, scipy, PyYAML,
tensorboard, matplotlib/Pillow: the frame cache (``.gpu_cache``, built on the CPU machine by
``scripts/prepare_gpu_cache.py``) already holds the aligned crops and MediaPipe landmarks.

1. Generator (``configs/renderer_default.yaml``, 256 px, bf16 autocast) through the shared trainer
   for as many steps as fit ``--generator-seconds`` (a short calibration times the real step first).
2. Mapper (``configs/mapper_default.yaml``) against the frozen detector, ``--mapper-seconds``.
3. Held-out evaluation (the last 1.0 s of each of the clips, never trained on), source = each clip's
   first frame: PSNR / SSIM for the generator driven by the detector's keypoints of the real frame,
   by the mapper from the frame's landmarks (relative to the source: the renderer's path; and
   absolute), and the "copy the source frame" baseline; the same on late training frames.
4. Frames/s of the per-frame render path (mapper + dense motion + decoder; source encoded once)
   at batch 1 and 16.

PSNR is :func:`facecue.evaluate.psnr`; SSIM runs on the device (``facecue.neural.ssim_map`` on the
interior = :func:`facecue.evaluate.ssim`, checked against it at run time). samples.jpg: one row
per clip: the source, then (real, detector-driven, mapper-driven) for 4 held-out frames.

Writes to ``--out`` (8 files): metrics.json, logs.csv, loss.png, samples.jpg, sample.gif,
heldout_detector.npz and heldout_mapper.npz (JPEG bytes of the generated held-out frames, for
F-LMD back on the CPU machine: ``benchmarks/neural_lmd.py``), mapper_fp16.pt (the trained mapper
+ generator, weights in float16, loadable with ``facecue.neural.load_mapper``).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from facecue import neural  # noqa: E402
from facecue.evaluate import video_psnr, video_ssim  # noqa: E402
from facecue.train import (  # noqa: E402
    CHECKPOINT_FORMAT_VERSION,
    apply_overrides,
    learning_rate,
    load_checkpoint,
    load_config,
    read_log,
    save_checkpoint,
    train,
)

T0 = time.perf_counter()


def say(message: str) -> None:
    print(f"[{time.perf_counter() - T0:6.1f} s] {message}", flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def jpeg_bytes(frame: np.ndarray, quality: int = 90) -> bytes:
    try:
        import cv2

        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(frame[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
        return buf.tobytes()
    except ImportError:
        from PIL import Image

        out = io.BytesIO()
        Image.fromarray(frame).save(out, format="JPEG", quality=quality)
        return out.getvalue()


def time_steps(task, device: torch.device, n_warmup: int, n_timed: int, amp: bool) -> float:
    """Seconds per optimizer step of ``task`` (a throwaway copy of the model, the trainer's recipe)."""
    model = task.build_model(None).to(device)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    ds = task.train_dataset()
    rng = np.random.default_rng(0)
    bs = task.config.train.batch_size
    collate = torch.utils.data.default_collate

    def one():
        batch = collate([ds[int(i)] for i in rng.integers(len(ds), size=bs)])
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            loss, _ = task.loss(model, batch, 0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        float(loss.detach())

    for _ in range(n_warmup):
        one()
    sync(device)
    start = time.perf_counter()
    for _ in range(n_timed):
        one()
    sync(device)
    per_step = (time.perf_counter() - start) / n_timed
    del model, opt
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return per_step


def steps_for(seconds: float, per_step: float, minimum: int, safety: float = 0.88) -> int:
    return max(minimum, int(seconds * safety / per_step))


def planned_steps(name: str, task, fixed: int, seconds: float, args, device: torch.device, amp: bool,
                  metrics: dict) -> int:
    """``fixed`` steps, or as many as fit in ``seconds`` by a timed calibration of ``task``."""
    if fixed:
        return fixed
    per_step = time_steps(task, device, 3, args.calibrate_steps, amp)
    steps = steps_for(seconds, per_step, minimum=5)
    metrics[f"{name}_calibrated_s_per_step"] = per_step
    say(f"{name}: {per_step * 1000:.1f} ms/step at batch {task.config.train.batch_size} -> {steps} steps")
    return steps


METRIC_DEVICE = torch.device("cpu")


@torch.no_grad()
def ssim_per_frame(pred: np.ndarray, real: np.ndarray, batch: int = 32) -> np.ndarray:
    """Per-frame SSIM on the GPU: :func:`facecue.neural.ssim_map` is Wang et al.'s 11 x 11
    Gaussian window on the interior, which is exactly what :func:`facecue.evaluate.ssim` averages
    (it drops the 5-px border); checked against it in :func:`main` (float32 here)."""
    out = []
    for a in range(0, len(pred), batch):
        x = neural.to_image(torch.from_numpy(pred[a : a + batch]).to(METRIC_DEVICE))
        y = neural.to_image(torch.from_numpy(real[a : a + batch]).to(METRIC_DEVICE))
        out.append(neural.ssim_map(x, y).mean(dim=(1, 2, 3)).double().cpu().numpy())
    return np.concatenate(out)


def metrics_of(results: list[dict]) -> dict:
    pred = np.concatenate([r["pred"] for r in results])
    real = np.concatenate([r["real"] for r in results])
    p, s = video_psnr(pred, real), ssim_per_frame(pred, real)
    return {"psnr": float(np.mean(np.minimum(p, 100.0))), "ssim": float(np.mean(s)), "frames": int(len(pred)),
            "l1": float(np.abs(pred.astype(np.float32) - real).mean() / 255.0)}


def source_baseline(clips, indices_of, size: int) -> dict:
    """Scores of 'copy the source frame' (the clip's first training frame), at the model's size."""
    preds, reals = [], []
    for c in clips:
        idx = indices_of(c)
        if len(idx) and len(c.train_indices):
            frames = c.frames[np.concatenate([c.train_indices[:1], idx])]
            if frames.shape[1] != size:
                frames = neural.to_uint8(neural.to_image(torch.from_numpy(frames), size))
            reals.append(frames[1:])
            preds.append(np.repeat(frames[:1], len(idx), axis=0))
    return metrics_of([{"pred": np.concatenate(preds), "real": np.concatenate(reals)}])


def late_training_frames(clips, n: int = 10):
    """Clips whose 'held-out' part is their last ``n`` training frames (to compare with the real held-out score)."""
    out = []
    for c in clips:
        end = c.holdout_start
        if end - n < 2:
            continue
        out.append(dataclasses.replace(c, frames=c.frames[:end], landmarks=c.landmarks[:end], valid=c.valid[:end],
                                       holdout_start=end - n))
    return out


def save_frames_npz(path: Path, results: list[dict]) -> None:
    blobs, clip_ids, indices = [], [], []
    for r in results:
        for i, frame in zip(r["indices"], r["pred"]):
            blobs.append(jpeg_bytes(frame))
            clip_ids.append(r["clip_id"])
            indices.append(int(i))
    np.savez(path, jpeg=np.frombuffer(b"".join(blobs), np.uint8), offsets=np.cumsum([0] + [len(b) for b in blobs]),
             clip_ids=np.array(clip_ids), indices=np.array(indices, np.int64))


@torch.no_grad()
def frames_per_second(model, clips, device: torch.device, batch: int, iters: int, amp: bool) -> float:
    gen = model.generator
    clip = clips[0]
    use_depth = model.cfg.use_depth
    s = int(clip.train_indices[0])
    idx = np.resize(np.arange(clip.n_frames), batch)
    lmk = torch.from_numpy(neural.normalize_landmarks(clip.landmarks[idx], clip.size, use_depth)).to(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        src = neural.to_image(torch.from_numpy(clip.frames[s : s + 1]).to(device), gen.size)
        state = gen.prepare_source(src)
        source_landmarks = torch.from_numpy(clip.landmarks[s : s + 1]).to(device)
        m_s, mj_s = model.map(neural.normalize_landmarks(source_landmarks, clip.size, use_depth))
        st = gen.expand_state(state, batch)

        def one():
            kp, jac = model.map(lmk)
            kp, jac = neural.relative_keypoints(st["kp"], st["jacobian"], m_s.expand_as(kp), mj_s.expand_as(jac),
                                                kp, jac)
            return gen.animate(st, kp, jac)["prediction"]

        for _ in range(5):
            one()
        sync(device)
        start = time.perf_counter()
        for _ in range(iters):
            one()
        sync(device)
    return batch * iters / (time.perf_counter() - start)


def montage(results_by_mode: dict[str, list[dict]], clips, n_clips: int = 6, n_frames: int = 4) -> np.ndarray:
    """Rows: clips; per clip: source | (real, detector, mapper) for n_frames held-out frames."""
    by_id = {c.clip_id: c for c in clips}
    det, mapped = results_by_mode["detector"], results_by_mode["mapper_relative"]
    rows = []
    step = max(1, len(det) // n_clips)
    for r_det, r_map in list(zip(det, mapped))[::step][:n_clips]:
        clip = by_id[r_det["clip_id"]]
        size = r_det["pred"].shape[1]
        src = clip.frames[clip.train_indices[0]]
        if src.shape[0] != size:
            src = neural.to_uint8(neural.to_image(torch.from_numpy(src[None]), size))[0]
        tiles = [src]
        picks = np.linspace(0, len(r_det["pred"]) - 1, n_frames).round().astype(int)
        for k in picks:
            tiles += [r_det["real"][k], r_det["pred"][k], r_map["pred"][k]]
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)


def write_gif(path: Path, real: np.ndarray, det: np.ndarray, mapped: np.ndarray, fps: float = 25.0) -> None:
    from PIL import Image

    frames = [Image.fromarray(np.concatenate([a, b, c], axis=1)) for a, b, c in zip(real, det, mapped)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)


def plot_losses(path: Path, renderer_log: list[dict], mapper_log: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    steps = [r["step"] for r in renderer_log]
    for key in ("reconstruction", "ssim", "equivariance_value", "equivariance_jacobian", "gan", "discriminator"):
        if renderer_log and key in renderer_log[0]:
            axes[0].plot(steps, [r[key] for r in renderer_log], label=key)
    axes[0].set_yscale("log"); axes[0].set_title("generator loss terms"); axes[0].set_xlabel("step"); axes[0].legend()
    axes[1].plot(steps, [r["loss"] for r in renderer_log])
    axes[1].set_yscale("log"); axes[1].set_title("generator total"); axes[1].set_xlabel("step")
    mstep = [r["step"] for r in mapper_log]
    for key in ("keypoints", "jacobian"):
        if mapper_log and key in mapper_log[0]:
            axes[2].plot(mstep, [r[key] for r in mapper_log], label=key)
    axes[2].set_yscale("log"); axes[2].set_title("mapper L1 (train)"); axes[2].set_xlabel("step"); axes[2].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def slim_checkpoint(final: Path, target: Path) -> int:
    """The mapper checkpoint without optimizer / RNG state, float weights in float16."""
    data = load_checkpoint(final, neural.MAPPER_KIND, neural.MAPPER_VERSION)
    weights = data["ema"] if data.get("ema") is not None else data["model"]
    half = {k: (v.half() if v.is_floating_point() and v.numel() > 4096 else v) for k, v in weights.items()}
    payload = {"kind": data["kind"], "version": data["version"], "envelope_version": CHECKPOINT_FORMAT_VERSION,
               "config": data["config"], "model": half, "ema": None, "step": data["step"], "extra": data["extra"]}
    save_checkpoint(target, payload)
    return target.stat().st_size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", default=str(REPO / ".gpu_cache"))
    ap.add_argument("--out", default=os.environ.get("OUT") or str(REPO / "out" / "gpu_neural"))
    ap.add_argument("--work", default=None, help="run folders (checkpoints, logs); default OUT/../neural_work or /tmp")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--config", default=str(REPO / "configs" / "renderer_default.yaml"))
    ap.add_argument("--mapper-config", default=str(REPO / "configs" / "mapper_default.yaml"))
    ap.add_argument("--set", action="append", default=[], help="renderer config override (key=value)")
    ap.add_argument("--mapper-set", action="append", default=[], help="mapper config override")
    ap.add_argument("--generator-seconds", type=float, default=240.0)
    ap.add_argument("--mapper-seconds", type=float, default=50.0)
    ap.add_argument("--steps", type=int, default=0, help="fixed generator steps (skip the calibration)")
    ap.add_argument("--mapper-steps", type=int, default=0)
    ap.add_argument("--calibrate-steps", type=int, default=12,
                    help="timed steps of the calibration (after 3 warm-up steps)")
    ap.add_argument("--fps-iters", type=int, default=50)
    ap.add_argument("--max-eval-frames", type=int, default=0, help="held-out frames per clip (0: all)")
    ap.add_argument("--cpu-autocast", action="store_true", help="bf16 autocast in calibration / evaluation on CPU too "
                    "(smoke tests of the GPU's mixed-precision path; the trainer itself autocasts on CUDA only)")
    args = ap.parse_args()

    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            print("no CUDA device: run with --device cpu for a smoke test", file=sys.stderr)
            return 2
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    metrics: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                     "torch": torch.__version__, "cache": args.cache}
    try:
        return run(args, device, out, metrics)
    except Exception:  # keep what was measured, and why it stopped
        metrics["error"] = traceback.format_exc()[-4000:]
        say(f"FAILED:\n{metrics['error']}")
        return 1
    finally:
        metrics["total_s"] = time.perf_counter() - T0
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
        files = sorted(p.name for p in out.iterdir())
        say(f"{len(files)} files in {out}: {', '.join(files)}")


def run(args, device: torch.device, out: Path, metrics: dict) -> int:
    work = Path(args.work) if args.work else Path("/tmp") / f"facecue_neural_{os.getpid()}"
    say(f"device {metrics['device']}, torch {torch.__version__}, work {work}, out {out}")

    clips = neural.load_frame_cache(args.cache)
    metrics["clips"] = len(clips)
    metrics["train_frames"] = int(sum(len(c.train_indices) for c in clips))
    metrics["heldout_frames"] = int(sum(len(c.heldout_indices) for c in clips))
    say(f"{len(clips)} clips, {metrics['train_frames']} training / {metrics['heldout_frames']} held-out frames "
        f"at {clips[0].size} px")
    amp = device.type == "cuda" or args.cpu_autocast
    workers = 4 if device.type == "cuda" else 0

    # --- 1. generator ---------------------------------------------------------------------------
    rcfg = load_config(neural.RendererConfig, args.config, args.set)
    rcfg = apply_overrides(rcfg, [f"data.cache={args.cache}", f"train.device={args.device}", f"train.workers={workers}",
                                  f"train.out_dir={work / 'renderer'}", "train.checkpoint_every=1000000"])
    rtask = neural.RendererTask(rcfg, clips=clips)
    gen_params = neural.model_size(rtask.build_model(None).generator)[0]
    metrics["generator_parameters"] = gen_params
    steps = planned_steps("generator", rtask, args.steps, args.generator_seconds, args, device, amp, metrics)
    warmup = min(rcfg.train.warmup_steps, max(1, steps // 10))
    ema = max(0.0, min(rcfg.train.ema_decay, 1.0 - 10.0 / steps))  # the average spans <= a tenth of the run
    rcfg = apply_overrides(rcfg, [f"train.steps={steps}", f"train.warmup_steps={warmup}", f"train.ema_decay={ema}",
                                  f"train.log_every={max(1, min(20, steps // 50))}"])
    metrics["generator_ema_decay"] = ema
    started = time.perf_counter()
    renderer_final = train(neural.RendererTask(rcfg, clips=clips), progress=False)
    metrics["generator_train_s"] = time.perf_counter() - started
    metrics["generator_steps"] = steps
    renderer_log = read_log(renderer_final.parent)
    say(f"generator trained: {steps} steps in {metrics['generator_train_s']:.1f} s; "
        f"last loss {renderer_log[-1]['loss']:.4f}")

    # --- 2. mapper ------------------------------------------------------------------------------
    mcfg = load_config(neural.MapperConfig, args.mapper_config, args.mapper_set)
    mcfg = apply_overrides(mcfg, [f"renderer={renderer_final}", f"data.cache={args.cache}",
                                  f"train.device={args.device}", f"train.out_dir={work / 'mapper'}",
                                  "train.checkpoint_every=1000000", f"train.workers={min(workers, 2)}"])
    mtask = neural.MapperTask(mcfg, clips=clips)
    msteps = planned_steps("mapper", mtask, args.mapper_steps, args.mapper_seconds, args, device, amp, metrics)
    mwarmup = min(mcfg.train.warmup_steps, max(1, msteps // 10))
    mcfg = apply_overrides(mcfg, [f"train.steps={msteps}", f"train.warmup_steps={mwarmup}",
                                  f"train.log_every={max(1, min(20, msteps // 50))}"])
    started = time.perf_counter()
    mapper_final = train(neural.MapperTask(mcfg, clips=clips), progress=False)
    metrics["mapper_train_s"] = time.perf_counter() - started
    metrics["mapper_steps"] = msteps
    mapper_log = read_log(mapper_final.parent)
    metrics["mapper_final_train_keypoint_l1"] = mapper_log[-1].get("keypoints")
    say(f"mapper trained: {msteps} steps in {metrics['mapper_train_s']:.1f} s; "
        f"keypoint L1 {mapper_log[-1].get('keypoints'):.4f}")

    # --- 3. held-out evaluation -----------------------------------------------------------------
    global METRIC_DEVICE
    METRIC_DEVICE = device
    model = neural.load_mapper(mapper_final).to(device).eval()
    metrics["mapper_parameters"] = neural.model_size(model.net)[0]
    limit = args.max_eval_frames or None
    results = {}
    for mode in ("detector", "mapper_relative", "mapper_absolute"):
        results[mode] = neural.reenact_heldout(model, clips, mode, device=device, amp=amp, max_frames=limit)
        metrics[f"heldout_{mode}"] = metrics_of(results[mode])
        say(f"held-out {mode}: {metrics[f'heldout_{mode}']}")
    check = results["detector"][0]
    metrics["ssim_check_max_abs_diff_vs_facecue_evaluate"] = float(np.abs(
        ssim_per_frame(check["pred"][:4], check["real"][:4]) - video_ssim(check["pred"][:4], check["real"][:4])).max())
    size = model.generator.size
    def first(indices):
        return indices[:limit] if limit else indices

    metrics["heldout_copy_source"] = source_baseline(clips, lambda c: first(c.heldout_indices), size)
    say(f"held-out copy-the-source baseline: {metrics['heldout_copy_source']}")
    late = late_training_frames(clips)
    for mode in ("detector", "mapper_relative"):
        late_results = neural.reenact_heldout(model, late, mode, device=device, amp=amp, max_frames=limit)
        metrics[f"train_late_{mode}"] = metrics_of(late_results)
    metrics["train_late_copy_source"] = source_baseline(late, lambda c: first(c.heldout_indices), size)
    say(f"late training frames: detector {metrics['train_late_detector']}, "
        f"mapper {metrics['train_late_mapper_relative']}")
    # the mapper's keypoint error on held-out frames (against the detector on the real frame)
    with torch.no_grad():
        errs = []
        for c in clips:
            idx = c.heldout_indices
            if not len(idx):
                continue
            frames = neural.to_image(torch.from_numpy(c.frames[idx]).to(device), model.generator.size)
            kp, _ = model.generator.keypoints(frames)
            lmk = torch.from_numpy(neural.normalize_landmarks(c.landmarks[idx], c.size, model.cfg.use_depth)).to(device)
            errs.append((model.map(lmk)[0] - kp).abs().mean(dim=(1, 2)).cpu().numpy())
        metrics["heldout_mapper_keypoint_l1"] = float(np.concatenate(errs).mean())
        px_per_unit = (model.generator.size - 1) / 2
        metrics["heldout_mapper_keypoint_l1_px"] = metrics["heldout_mapper_keypoint_l1"] * px_per_unit

    # --- 4. speed -------------------------------------------------------------------------------
    for batch in (1, 16):
        iters = args.fps_iters if batch == 1 else max(3, args.fps_iters // 4)
        metrics[f"render_fps_batch{batch}"] = frames_per_second(model, clips, device, batch, iters, amp)
        say(f"render path, batch {batch}: {metrics[f'render_fps_batch{batch}']:.1f} frames/s")
    if device.type == "cuda":
        metrics["max_memory_allocated_gb"] = torch.cuda.max_memory_allocated(device) / 2**30

    # --- 5. outputs (each one optional: a failure is recorded, the rest still gets written) ------
    def attempt(name, fn):
        try:
            fn()
        except Exception as exc:
            metrics.setdefault("output_errors", {})[name] = f"{type(exc).__name__}: {exc}"
            say(f"could not write {name}: {type(exc).__name__}: {exc}")

    def write_logs():
        cols = sorted({k for r in renderer_log + mapper_log for k in r})
        with open(out / "logs.csv", "w") as fh:
            fh.write("run," + ",".join(cols) + "\n")
            for name, rows in (("renderer", renderer_log), ("mapper", mapper_log)):
                for r in rows:
                    fh.write(name + "," + ",".join("" if k not in r else f"{r[k]:.6g}" for k in cols) + "\n")

    def write_samples():
        from PIL import Image

        Image.fromarray(montage(results, clips)).save(out / "samples.jpg", quality=92)
        pick = max(range(len(results["detector"])), key=lambda i: len(results["detector"][i]["pred"]))
        r_det, r_map = results["detector"][pick], results["mapper_relative"][pick]
        metrics["sample_clip"] = r_det["clip_id"]
        write_gif(out / "sample.gif", r_det["real"], r_det["pred"], r_map["pred"])

    def write_checkpoint():
        metrics["mapper_fp16_bytes"] = slim_checkpoint(mapper_final, out / "mapper_fp16.pt")

    attempt("logs.csv", write_logs)
    attempt("heldout_detector.npz", lambda: save_frames_npz(out / "heldout_detector.npz", results["detector"]))
    attempt("heldout_mapper.npz", lambda: save_frames_npz(out / "heldout_mapper.npz", results["mapper_relative"]))
    attempt("samples.jpg / sample.gif", write_samples)
    attempt("loss.png", lambda: plot_losses(out / "loss.png", renderer_log, mapper_log))
    attempt("mapper_fp16.pt", write_checkpoint)
    metrics["lr_schedule_end"] = learning_rate(steps - 1, rcfg.train)
    say(f"done: {json.dumps({k: v for k, v in metrics.items() if not isinstance(v, dict)}, default=float)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
