"""The one trainer every facecue model uses, and the typed configs it reads.

A model plugs in as a :class:`Task`: it builds its module (fitting whatever it derives from
data, e.g. a PCA basis, as buffers), gives a map-style training dataset and computes the loss of
one batch. The trainer does the rest, identically for every model:

* AdamW, linear warmup then cosine decay (a pure function of the step), gradient clipping,
  optional EMA of the weights, bf16 autocast on CUDA;
* one process or several (``torchrun --nproc_per_node N -m facecue.cli train ...``: DDP over
  gloo on CPU, nccl on GPU); rank 0 writes the logs and checkpoints;
* batches drawn by :class:`StepBatchSampler`: the indices of step ``s`` on rank ``r`` come from a
  generator seeded with ``(seed, s, r)``, and the torch RNG is reseeded the same way before every
  step, so a run resumed from the checkpoint of step ``s`` repeats the original run's later
  steps exactly (data order and randomness are a function of what the checkpoint stores);
* self-describing checkpoints (kind, version, config, weights with their buffers, optimizer,
  schedule, step, RNG states), written atomically and read with ``torch.load(weights_only=True)``;
* ``log.csv`` and TensorBoard scalars, a progress bar (plain lines in a log), ``config.yaml`` next to the weights.

Configs are frozen dataclasses loaded from YAML: unknown keys are an error that names them and
``--set section.key=value`` overrides are type-checked (:func:`load_config`).
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import io as _io
import logging
import math
import os
import random
import time
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from .errors import CheckpointError, InputError, OutputError

log = logging.getLogger("facecue.train")

CHECKPOINT_FORMAT_VERSION = 1  # of the trainer's envelope (the task has its own version)
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.pt"
FINAL_CHECKPOINT = "final.pt"
LOG_CSV = "log.csv"
VAL_CSV = "val.csv"  # held-out metrics at every checkpoint (tasks with a ``validate`` method)
CONFIG_FILE = "config.yaml"


# --- configs -------------------------------------------------------------------------------


class ConfigError(InputError):
    """A config file or override is invalid (unknown key, wrong type, unreadable YAML)."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping settings shared by every model.

    ``batch_size`` is per process: the global batch is ``batch_size * world_size``.
    """

    steps: int = 20_000
    batch_size: int = 32
    lr: float = 3e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_steps: int = 500
    min_lr_ratio: float = 0.05  # cosine decays to lr * min_lr_ratio at the last step
    grad_clip: float = 1.0  # max global gradient norm; 0 disables
    ema_decay: float = 0.0  # 0 disables; e.g. 0.999. Inference uses the EMA weights when present
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    checkpoint_every: int = 1000  # steps; a checkpoint is also written at the end
    keep_checkpoints: int = 3  # step checkpoints kept (last.pt and final.pt are always kept)
    log_every: int = 20  # steps between log rows
    seed: int = 0
    workers: int = 0  # DataLoader worker processes per rank
    device: str = "auto"  # auto | cpu | cuda
    out_dir: str = "runs/train"

    def __post_init__(self) -> None:
        problems = []
        if self.steps < 1:
            problems.append("train.steps must be >= 1")
        if self.batch_size < 1:
            problems.append("train.batch_size must be >= 1")
        if not self.lr > 0:
            problems.append("train.lr must be > 0")
        if self.warmup_steps < 0:
            problems.append("train.warmup_steps must be >= 0")
        if not 0 <= self.min_lr_ratio <= 1:
            problems.append("train.min_lr_ratio must be in 0..1")
        if not 0 <= self.ema_decay < 1:
            problems.append("train.ema_decay must be in [0, 1)")
        if self.checkpoint_every < 1 or self.log_every < 1:
            problems.append("train.checkpoint_every and train.log_every must be >= 1")
        if self.device not in ("auto", "cpu", "cuda"):
            problems.append(f"train.device must be auto, cpu or cuda, got {self.device!r}")
        if problems:
            raise ConfigError(None, "; ".join(problems))


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (converting lists to tuples, ints to floats)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(None, f"{where}: expected a section (mapping), got {value!r}")
        return config_from_dict(tp, value, prefix=where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(None, f"{where}: {value!r} is not a {' or '.join(_type_name(a) for a in args)}")
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(None, f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(None, f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(None, f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(None, f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(None, f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(None, f"{where}: expected a string, got {value!r}")
    raise TypeError(f"unsupported config field type {tp!r} at {where}")  # programming error


def config_from_dict(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    """Build the frozen dataclass ``cls`` from a (nested) mapping.

    Unknown keys raise :class:`ConfigError` naming each of them (with their section) and the valid
    keys; values are type-checked against the annotations; missing keys take their defaults.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        names = ", ".join(f"{prefix}.{k}" if prefix else str(k) for k in unknown)
        section = f"section {prefix!r}" if prefix else "the top level"
        raise ConfigError(None, f"unknown config key(s): {names} (valid keys in {section}: {', '.join(fields)})")
    kwargs = {}
    for name, value in data.items():
        where = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _coerce(value, hints[name], where)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(None, f"{prefix or cls.__name__}: {exc}") from None


def config_to_dict(config: Any) -> dict[str, Any]:
    """A config as plain dicts / lists / scalars (YAML- and ``weights_only``-safe)."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(config)


def apply_overrides(config: Any, overrides: Sequence[str]) -> Any:
    """Apply ``section.key=value`` overrides (values parsed as YAML scalars/lists, type-checked)."""
    import yaml

    data = config_to_dict(config)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(None, f"--set {item!r}: expected key=value, e.g. train.lr=1e-3")
        key, text = item.split("=", 1)
        key = key.strip()
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        if isinstance(value, str) and _looks_like_float(value):
            value = float(value)  # YAML 1.1 reads 1e-3 as a string
        node = data
        parts = key.split(".")
        cls = type(config)
        for depth, part in enumerate(parts):
            names = [f.name for f in dataclasses.fields(cls)]
            if part not in names:
                where = ".".join(parts[:depth]) or "the top level"
                raise ConfigError(None, f"--set {key}: unknown config key {part!r} in {where} (valid: {', '.join(names)})")
            if depth == len(parts) - 1:
                node[part] = value
            else:
                cls = typing.get_type_hints(cls)[part]
                if not dataclasses.is_dataclass(cls):
                    raise ConfigError(None, f"--set {key}: {'.'.join(parts[: depth + 1])} is not a section")
                node = node[part]
    return config_from_dict(type(config), data)


def _looks_like_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return any(c in text.lower() for c in ".e") and text.strip().lower() not in ("inf", "nan", "-inf")


def load_config(cls: type, path: str | Path | None, overrides: Sequence[str] = ()) -> Any:
    """Load a YAML config into the frozen dataclass ``cls`` (defaults without a file), then
    apply ``overrides``. Errors are :class:`ConfigError` naming the file and the key."""
    import yaml

    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(p, "config file not found")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigError(p, f"not valid YAML ({exc.__class__.__name__})") from None
        if not isinstance(data, dict):
            raise ConfigError(p, "a config file must be a mapping of sections")
        try:
            config = config_from_dict(cls, data)
        except ConfigError as exc:
            raise ConfigError(p, str(exc)) from None
    else:
        config = cls()
    return apply_overrides(config, overrides) if overrides else config


def save_config(config: Any, path: str | Path) -> Path:
    """Write a config as YAML, atomically."""
    import yaml

    from .io import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    return path


# --- the task interface --------------------------------------------------------------------


class Task(Protocol):
    """What a model gives the trainer.

    Attributes
    ----------
    kind : checkpoint kind, e.g. ``"facecue.stage1"``; checked on load.
    version : the model's checkpoint version; newer files are refused on load.
    config : the full frozen config; must have a ``train`` field of type :class:`TrainConfig`.
    """

    kind: str
    version: int
    config: Any

    def build_model(self, checkpoint: dict | None) -> nn.Module:
        """The model, on CPU. ``checkpoint`` is given when resuming (shapes come from it, weights
        are loaded by the trainer); otherwise fit data-derived buffers here."""

    def train_dataset(self) -> torch.utils.data.Dataset:
        """Map-style dataset of training items (collated with ``default_collate``)."""

    def loss(self, model: nn.Module, batch: dict, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Scalar loss of one batch and the terms to log. ``model`` may be DDP-wrapped: call it,
        reach its own methods through ``unwrap(model)``."""

    # Optional: ``validate(model) -> dict[str, float]``, held-out metrics computed on rank 0 at
    # every checkpoint (with the EMA weights when kept), written to val.csv and TensorBoard.


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (or the module itself)."""
    return model.module if hasattr(model, "module") and isinstance(model, nn.parallel.DistributedDataParallel) else model


# --- schedule, sampling, seeding -----------------------------------------------------------


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warmup over ``warmup_steps``, then cosine from ``lr`` to ``lr * min_lr_ratio``."""
    if config.warmup_steps and step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    floor = config.lr * config.min_lr_ratio
    return floor + (config.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def step_seed(seed: int, step: int, rank: int, stream: int = 0) -> int:
    """A 63-bit seed that is a pure function of (seed, step, rank, stream)."""
    return int(np.random.SeedSequence([seed, step, rank, stream]).generate_state(1, np.uint64)[0]) & ((1 << 63) - 1)


class StepBatchSampler(torch.utils.data.Sampler):
    """Per-rank, per-step seeded batches of dataset indices, drawn uniformly with replacement.

    The batch of step ``s`` on rank ``r`` depends only on ``(seed, s, r)``: resuming at
    ``start_step`` yields exactly the batches the uninterrupted run would have drawn, and ranks
    draw different windows without a DistributedSampler.
    """

    def __init__(self, n_items: int, batch_size: int, seed: int, rank: int, start_step: int, end_step: int):
        if n_items < 1:
            raise InputError(None, "the training set is empty (no windows to draw)")
        self.n_items, self.batch_size, self.seed, self.rank = n_items, batch_size, seed, rank
        self.start_step, self.end_step = start_step, end_step

    def __len__(self) -> int:
        return max(0, self.end_step - self.start_step)

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start_step, self.end_step):
            rng = np.random.default_rng([self.seed, step, self.rank, 1])
            yield rng.integers(self.n_items, size=self.batch_size).tolist()


def _rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": _python_state_to_tensor(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _python_state_to_tensor(state: tuple) -> list:
    version, internal, gauss = state
    return [version, torch.tensor(internal, dtype=torch.int64), gauss]


def _restore_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(int(v) for v in internal.tolist()), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --- checkpoints ---------------------------------------------------------------------------


def save_checkpoint(path: str | Path, payload: dict) -> Path:
    """``torch.save`` to a temp file next to ``path``, then rename (never a half-written file)."""
    from .io import atomic_path

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
    except OSError as exc:
        raise OutputError(path, f"cannot write checkpoint ({exc})") from None
    return path


def torch_load_weights(path: str | Path):
    """``torch.load(path, weights_only=True)`` on the CPU, with torch's warnings silenced: a file
    torch refuses (a malicious or foreign pickle) raises, and the caller reports it on one line;
    torch's UserWarnings about the file's pickle protocol must not leak to stderr around it."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(Path(path), map_location="cpu", weights_only=True)


def load_checkpoint(path: str | Path, kind: str | Sequence[str], max_version: int | None = None) -> dict:
    """Read a checkpoint with ``torch.load(weights_only=True)`` and check its kind and version.

    Raises
    ------
    CheckpointError
        Missing, corrupt or truncated file; not a facecue checkpoint; another kind; a version
        newer than ``max_version``.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(p, "checkpoint not found")
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    try:
        data = torch_load_weights(p)
    except Exception as exc:  # zip errors, unpickling errors, EOF: all mean "not usable"
        raise CheckpointError(p, f"corrupt or not a facecue checkpoint ({exc.__class__.__name__})") from None
    if not isinstance(data, dict) or "kind" not in data:
        raise CheckpointError(p, "not a facecue checkpoint (no 'kind')")
    if data["kind"] not in kinds:
        raise CheckpointError(p, f"checkpoint of kind {data['kind']!r}, expected {' or '.join(repr(k) for k in kinds)}")
    version = data.get("version")
    if not isinstance(version, int):
        raise CheckpointError(p, "checkpoint has no version")
    if max_version is not None and version > max_version:
        raise CheckpointError(p, f"checkpoint version {version} is newer than this facecue supports ({max_version}); upgrade facecue")
    for key in ("config", "model", "step"):
        if key not in data:
            raise CheckpointError(p, f"incomplete checkpoint (no {key!r})")
    return data


def inference_weights(checkpoint: dict) -> dict:
    """The state dict inference should use: the EMA weights when the run kept them."""
    return checkpoint["ema"] if checkpoint.get("ema") is not None else checkpoint["model"]


# --- distributed ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _setup_distributed(device_pref: str) -> tuple[DistInfo, bool]:
    """Read torchrun's environment and initialise the process group; returns (info, we_created_it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device_pref in ("auto", "cuda")
    if device_pref == "cuda" and not torch.cuda.is_available():
        raise InputError(None, "train.device is 'cuda' but no CUDA device is available")
    device = torch.device("cuda", local_rank % max(1, torch.cuda.device_count())) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    created = False
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if use_cuda else "gloo")
        created = True
    if torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    return DistInfo(rank, world, local_rank, device), created


def _all_mean(values: dict[str, float], dist: DistInfo) -> dict[str, float]:
    if dist.world_size == 1 or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=dist.device)
    torch.distributed.all_reduce(t)
    t /= dist.world_size
    return dict(zip(keys, t.tolist()))


def _barrier(dist: DistInfo) -> None:
    if dist.world_size > 1:
        torch.distributed.barrier()


# --- logging -------------------------------------------------------------------------------


class _RunLog:
    """``log.csv`` (columns fixed at the first row) and TensorBoard scalars, rank 0 only."""

    def __init__(self, out_dir: Path, start_step: int, enabled: bool, name: str = LOG_CSV, tensorboard: bool = True):
        self.enabled = enabled
        self.path = out_dir / name
        self.columns: list[str] | None = None
        self.writer = None
        if not enabled:
            return
        if self.path.exists():
            rows = list(csv.DictReader(self.path.open(newline="")))
            if rows:
                self.columns = list(rows[0].keys())
            kept = [r for r in rows if int(float(r["step"])) <= start_step]
            if self.columns:
                self._rewrite(kept)
        if not tensorboard:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out_dir / "tb"), purge_step=start_step + 1 if start_step else None)
        except Exception as exc:  # pragma: no cover - tensorboard is in the requirements
            log.warning("TensorBoard logging disabled (%s)", exc)

    def _rewrite(self, rows: list[dict]) -> None:
        from .io import atomic_path

        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=self.columns)
            w.writeheader()
            w.writerows(rows)

    def write(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        row = {"step": step, **values}
        if self.columns is None:
            self.columns = ["step"] + sorted(values)
            with self.path.open("w", newline="") as fh:
                csv.DictWriter(fh, fieldnames=self.columns).writeheader()
        with self.path.open("a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=self.columns, extrasaction="ignore").writerow(
                {k: (f"{row[k]:.8g}" if isinstance(row.get(k), float) else row.get(k, "")) for k in self.columns}
            )
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_log(path: str | Path) -> list[dict[str, float]]:
    """Rows of a run's ``log.csv`` (or of the run folder) as floats."""
    path = Path(path)
    if path.is_dir():
        path = path / LOG_CSV
    with path.open(newline="") as fh:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(fh)]


# --- the loop ------------------------------------------------------------------------------


class _Ema:
    """Exponential moving average of parameters and buffers (buffers copied)."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.averaged = {name for name, p in model.named_parameters() if p.dtype.is_floating_point}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        own = self.module.state_dict()
        for name, value in model.state_dict().items():
            if name in self.averaged:
                own[name].mul_(self.decay).add_(value.detach(), alpha=1 - self.decay)
            else:
                own[name].copy_(value)


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 and "embed" not in name else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def train(
    task: Task,
    *,
    out_dir: str | Path | None = None,
    resume: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """Train ``task`` and return the path of the final checkpoint (``out_dir/final.pt``).

    Parameters
    ----------
    task : the model's :class:`Task`
    out_dir : run folder; default ``task.config.train.out_dir``
    resume : a checkpoint to continue from, or ``"auto"`` for ``out_dir/last.pt``. The step,
        weights, EMA, optimizer, schedule and RNG state are restored; batches continue with the
        step's seeded draw, so the run repeats the uninterrupted run's later steps.
    progress : progress bar on rank 0 (:func:`facecue.progress.progress_bar`)
    """
    cfg: TrainConfig = task.config.train
    out = Path(out_dir or cfg.out_dir)
    dist, created_group = _setup_distributed(cfg.device)
    try:
        final = _train(task, cfg, out, resume, progress, dist)
        if created_group and torch.distributed.is_initialized():
            # every rank has finished its last collective before any rank tears its group down:
            # a rank destroying gloo's pairs while a peer still sends on them aborts the peer
            torch.distributed.barrier()
        return final
    finally:
        if created_group and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _train(task: Task, cfg: TrainConfig, out: Path, resume, progress: bool, dist: DistInfo) -> Path:
    checkpoint = None
    if resume is not None:
        path = out / LAST_CHECKPOINT if str(resume) == "auto" else Path(resume)
        checkpoint = load_checkpoint(path, task.kind, task.version)
        log.info("resuming from %s (step %d)", path, checkpoint["step"])
    if dist.is_main:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(out, f"cannot create the run folder ({exc})") from None
        save_config(task.config, out / CONFIG_FILE)
    _barrier(dist)

    torch.manual_seed(cfg.seed)  # identical initial weights on every rank (DDP also broadcasts)
    np.random.seed(cfg.seed % (1 << 32))
    random.seed(cfg.seed)
    model = task.build_model(checkpoint)
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
    model.to(dist.device)
    ema = _Ema(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    if ema is not None and checkpoint is not None and checkpoint.get("ema") is not None:
        ema.module.load_state_dict(checkpoint["ema"])
    trained: nn.Module = model
    if dist.world_size > 1:
        trained = nn.parallel.DistributedDataParallel(
            model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None
        )
    optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=cfg.betas)
    start_step = 0
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        start_step = int(checkpoint["step"])
        rng = checkpoint.get("rng", {}).get("per_rank", [])
        if dist.rank < len(rng):
            _restore_rng_state(rng[dist.rank])

    dataset = task.train_dataset()
    sampler = StepBatchSampler(len(dataset), cfg.batch_size, cfg.seed, dist.rank, start_step, cfg.steps)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, num_workers=cfg.workers, pin_memory=dist.device.type == "cuda",
        collate_fn=getattr(task, "collate", None),
    )
    run_log = _RunLog(out, start_step, dist.is_main)
    val_log = _RunLog(out, start_step, dist.is_main, name=VAL_CSV, tensorboard=False)
    use_amp = cfg.amp and dist.device.type == "cuda"
    bar = None
    if progress and dist.is_main:
        from .progress import progress_bar

        bar = progress_bar(total=cfg.steps, initial=start_step, desc=f"train {task.kind.split('.')[-1]}", unit="step",
                           dynamic_ncols=True)

    def checkpoint_payload(step: int) -> dict:
        rng_states = [_rng_state()]
        if dist.world_size > 1:
            gathered: list = [None] * dist.world_size
            torch.distributed.all_gather_object(gathered, rng_states[0])
            rng_states = gathered
        return {
            "kind": task.kind,
            "version": task.version,
            "envelope_version": CHECKPOINT_FORMAT_VERSION,
            "config": config_to_dict(task.config),
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "ema": None if ema is None else {k: v.detach().cpu() for k, v in ema.module.state_dict().items()},
            "optimizer": _optimizer_state_cpu(optimizer),
            "scheduler": {"name": "warmup_cosine", "step": step, "lr": learning_rate(min(step, cfg.steps - 1), cfg)},
            "step": step,
            "world_size": dist.world_size,
            "rng": {"per_rank": rng_states},
            "extra": dict(getattr(task, "extra_state", lambda: {})()),
        }

    def write_checkpoint(step: int, final: bool) -> Path:
        payload = checkpoint_payload(step)  # collective: every rank takes part
        target = out / (FINAL_CHECKPOINT if final else LAST_CHECKPOINT)
        if dist.is_main:
            step_file = save_checkpoint(out / CHECKPOINT_DIR / f"step_{step:07d}.pt", payload)
            save_checkpoint(out / LAST_CHECKPOINT, payload)
            if final:
                save_checkpoint(target, payload)
            _prune_checkpoints(out / CHECKPOINT_DIR, cfg.keep_checkpoints, keep=step_file)
            validate(step)
        _barrier(dist)
        return target

    def validate(step: int) -> None:
        """Task's held-out metrics (EMA weights when kept) -> val.csv and TensorBoard ``val/*``."""
        if not hasattr(task, "validate"):
            return
        evaluated = ema.module if ema is not None else model
        was_training = evaluated.training
        rng = torch.get_rng_state()
        try:
            evaluated.eval()
            with torch.no_grad():
                metrics = {k: float(v) for k, v in task.validate(evaluated).items()}
        finally:
            torch.set_rng_state(rng)  # validation must not change the training run
            evaluated.train(was_training)
        if metrics:
            val_log.write(step, metrics)
            if run_log.writer is not None:
                for key, value in metrics.items():
                    run_log.writer.add_scalar(f"val/{key}", value, step)

    step = start_step
    started = time.perf_counter()
    trained.train()
    try:
        for batch in loader:
            torch.manual_seed(step_seed(cfg.seed, step, dist.rank))
            lr = learning_rate(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = _to_device(batch, dist.device)
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_amp):
                loss, terms = task.loss(trained, batch, step)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
            optimizer.step()
            if ema is not None:
                ema.update(model)
            step += 1
            if step % cfg.log_every == 0 or step == cfg.steps:
                values = {"loss": float(loss.detach()), "grad_norm": float(grad_norm), **{k: float(v) for k, v in terms.items()}}
                values = _all_mean(values, dist)
                values["lr"] = lr
                values["seconds"] = time.perf_counter() - started
                run_log.write(step, values)
                if bar is not None:
                    bar.set_postfix(loss=f"{values['loss']:.4f}")
            if bar is not None:
                bar.update(1)
            if step % cfg.checkpoint_every == 0 and step < cfg.steps:
                write_checkpoint(step, final=False)
        final = write_checkpoint(step, final=True)
    finally:
        if bar is not None:
            bar.close()
        run_log.close()
    return final


def _optimizer_state_cpu(optimizer: torch.optim.Optimizer) -> dict:
    state = optimizer.state_dict()

    def cpu(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return v.detach().cpu()
        if isinstance(v, dict):
            return {k: cpu(x) for k, x in v.items()}
        if isinstance(v, list):
            return [cpu(x) for x in v]
        if isinstance(v, tuple):
            return tuple(cpu(x) for x in v)
        return v

    return cpu(state)


def _prune_checkpoints(folder: Path, keep_n: int, keep: Path) -> None:
    files = sorted(folder.glob("step_*.pt"))
    for old in files[: max(0, len(files) - max(1, keep_n))]:
        if old != keep:
            old.unlink(missing_ok=True)


def checkpoint_bytes(payload: dict) -> int:
    """Size in bytes a payload would take on disk (for size budgets in tests/benchmarks)."""
    buffer = _io.BytesIO()
    torch.save(payload, buffer)
    return buffer.tell()
