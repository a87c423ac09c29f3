"""The shared trainer: configs, schedule, checkpoints, exact resume, two-process DDP."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from facecue.cli import main
from facecue.data import synthesize_cache
from facecue.errors import CheckpointError
from facecue.stage1 import ClassifierConfig, Stage1Config
from facecue.train import (
    ConfigError,
    TrainConfig,
    apply_overrides,
    learning_rate,
    load_checkpoint,
    load_config,
    read_log,
    save_checkpoint,
    train,
)

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "stage1_tiny.yaml"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def synthetic_cache(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("synthetic_cache")
    synthesize_cache(cache, speakers=("S01", "S02", "S03"), seconds=3.0, seed=1)
    return cache


def tiny_config(cache: Path, out: Path, **train_overrides) -> Stage1Config:
    cfg = load_config(Stage1Config, TINY, [f"data.cache={cache}"])
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, out_dir=str(out), **train_overrides))


# --- configs -------------------------------------------------------------------------------


def test_shipped_configs_load():
    for name in ("stage1_tiny.yaml", "stage1_default.yaml"):
        cfg = load_config(Stage1Config, REPO / "configs" / name)
        assert isinstance(cfg.train, TrainConfig)
    assert load_config(ClassifierConfig, REPO / "configs" / "classifier_default.yaml").data.window == 48
    default = load_config(Stage1Config, REPO / "configs" / "stage1_default.yaml")
    assert default.model.audio_margin == 5  # +-0.2 s of audio per frame at 25 fps


def test_unknown_keys_are_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  d_modle: 64\ntrian:\n  steps: 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(Stage1Config, path)
    assert "trian" in str(info.value) and str(path) in str(info.value)
    path.write_text("model:\n  d_modle: 64\n")
    with pytest.raises(ConfigError, match=r"model\.d_modle.*valid keys.*d_model"):
        load_config(Stage1Config, path)


def test_overrides_are_type_checked():
    cfg = Stage1Config()
    out = apply_overrides(cfg, ["train.lr=1e-3", "train.steps=7", "data.held_out_speakers=[A, B]", "train.amp=false"])
    assert out.train.lr == pytest.approx(1e-3) and out.train.steps == 7
    assert out.data.held_out_speakers == ("A", "B") and out.train.amp is False
    assert out.model == cfg.model  # untouched sections stay equal
    with pytest.raises(ConfigError, match="expected an integer"):
        apply_overrides(cfg, ["train.steps=many"])
    with pytest.raises(ConfigError, match="unknown config key 'nope'"):
        apply_overrides(cfg, ["train.nope=1"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(cfg, ["train.steps"])
    with pytest.raises(ConfigError, match="must be"):
        apply_overrides(cfg, ["data.identity=bogus"])


def test_cli_config_errors_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  stepz: 1\n")
    assert main(["train", "stage1", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train.stepz" in err
    assert main(["train", "stage1", "--config", str(bad.with_name("missing.yaml"))]) == 2


def test_learning_rate_schedule():
    cfg = TrainConfig(steps=100, lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    lrs = [learning_rate(s, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))  # monotone cosine decay after warmup
    assert learning_rate(100, cfg) == pytest.approx(0.1)


# --- checkpoints ---------------------------------------------------------------------------


def test_checkpoint_kind_version_and_corruption(tmp_path):
    payload = {"kind": "facecue.emotion_classifier", "version": 1, "config": {}, "model": {"w": torch.zeros(2)}, "step": 3}
    path = save_checkpoint(tmp_path / "c.pt", payload)
    assert load_checkpoint(path, "facecue.emotion_classifier")["step"] == 3
    with pytest.raises(CheckpointError, match="kind 'facecue.emotion_classifier', expected 'facecue.stage1'"):
        load_checkpoint(path, "facecue.stage1")
    with pytest.raises(CheckpointError, match="newer"):
        load_checkpoint(save_checkpoint(tmp_path / "v.pt", {**payload, "version": 9}), "facecue.emotion_classifier", 1)
    truncated = tmp_path / "t.pt"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(truncated, "facecue.emotion_classifier")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "none.pt", "facecue.stage1")
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temp files


# --- the loop ------------------------------------------------------------------------------


def test_resume_repeats_the_loss_curve(synthetic_cache, tmp_path):
    """Train 16 steps (checkpoint at 8); restart from the step-8 checkpoint: steps 9..16 repeat
    the uninterrupted run's losses and end in the same weights (data order, RNG, optimizer,
    EMA and schedule all come back)."""
    from facecue.stage1 import Stage1Task

    steps = dict(steps=16, checkpoint_every=8, log_every=1, ema_decay=0.9, keep_checkpoints=5)
    full = tiny_config(synthetic_cache, tmp_path / "full", **steps)
    # scheduled sampling from step 1 so the resumed part uses the RNG (sampled gaze, coin flips)
    full = dataclasses.replace(full, loss=dataclasses.replace(full.loss, scheduled_sampling=0.5, scheduled_sampling_steps=4))
    final_full = train(Stage1Task(full), progress=False)
    resumed_cfg = dataclasses.replace(full, train=dataclasses.replace(full.train, out_dir=str(tmp_path / "resumed")))
    final_resumed = train(Stage1Task(resumed_cfg), resume=tmp_path / "full" / "checkpoints" / "step_0000008.pt", progress=False)

    a, b = read_log(tmp_path / "full"), read_log(tmp_path / "resumed")
    assert [r["step"] for r in a] == list(range(1, 17))
    assert [r["step"] for r in b] == list(range(9, 17))
    for ra, rb in zip(a[8:], b):
        for key in ("loss", "landmark", "pose", "gaze"):
            assert rb[key] == pytest.approx(ra[key], rel=1e-5, abs=1e-7), (ra["step"], key)
    wa = torch.load(final_full, weights_only=True)
    wb = torch.load(final_resumed, weights_only=True)
    assert wa["step"] == wb["step"] == 16
    for key in wa["model"]:
        torch.testing.assert_close(wa["model"][key], wb["model"][key], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(wa["ema"][key], wb["ema"][key], rtol=1e-5, atol=1e-6)
    # the checkpoint is self-describing
    assert wa["kind"] == "facecue.stage1" and wa["config"]["model"]["d_model"] == 32
    assert {"pca_basis", "pca_mean", "pca_std"} <= set(wa["model"]) and wa["optimizer"]["state"]
    assert (tmp_path / "full" / "config.yaml").is_file() and list((tmp_path / "full" / "tb").iterdir())


def test_resume_auto_continues_a_finished_run(synthetic_cache, tmp_path):
    from facecue.stage1 import Stage1Task

    cfg = tiny_config(synthetic_cache, tmp_path / "run", steps=4, checkpoint_every=2, log_every=1)
    train(Stage1Task(cfg), progress=False)
    longer = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=6))
    train(Stage1Task(longer), resume="auto", progress=False)
    assert [r["step"] for r in read_log(tmp_path / "run")] == [1, 2, 3, 4, 5, 6]


def test_training_progress_in_a_log_is_a_few_plain_lines(synthetic_cache, tmp_path, stderr_log):
    """A run logging every step, stderr a log file: the bar's first and final lines only (with the
    last loss), no redraws and no line per step or per loss update."""
    from facecue.stage1 import Stage1Task

    cfg = tiny_config(synthetic_cache, tmp_path / "run", steps=6, checkpoint_every=3, log_every=1)
    train(Stage1Task(cfg), progress=True)
    text = stderr_log.getvalue()
    lines = stderr_log.bar_lines("train stage1")
    assert "\r" not in text and "\x1b" not in text, text
    assert len(lines) == 2, text
    assert "0/6" in lines[0] and "6/6" in lines[1]
    assert f"loss={read_log(tmp_path / 'run')[-1]['loss']:.4f}" in lines[1]


def test_two_process_ddp_run_learns(synthetic_cache, tmp_path):
    """torchrun --nproc_per_node 2 (gloo on CPU) through the CLI: finishes, loss falls, rank 0
    alone writes the logs, the checkpoint holds both ranks' RNG states."""
    out = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "facecue.cli",
           "train", "stage1", "--config", str(TINY), "--set", f"data.cache={synthetic_cache}", "--set", "train.steps=80",
           "--set", "train.log_every=10", "--set", "train.checkpoint_every=40", "--out", str(out), "-q"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_log(out)
    assert [r["step"] for r in rows] == list(range(10, 81, 10))
    first, last = np.mean([r["loss"] for r in rows[:2]]), np.mean([r["loss"] for r in rows[-2:]])
    assert last < 0.7 * first, (first, last)
    ckpt = torch.load(out / "final.pt", weights_only=True)
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]["per_rank"]) == 2
    assert proc.stdout.count("trained to step 80") == 1  # only rank 0 reports
