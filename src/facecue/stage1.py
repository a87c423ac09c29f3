"""Stage 1: speech + emotion (+ the portrait's identity) -> facial cues, generated together and
auto-regressively (expression landmarks incl. blinks, discretized gaze, head pose); and the
collaborative emotion classifier that judges the three together.

Model (:class:`Stage1Model`, ~1.5 M parameters in the default config)
---------------------------------------------------------------------
* **Audio encoder**: per video frame the ``MEL_SUBFRAMES x N_MELS`` log-mel window and the
  loudness -> linear -> 1D convs -> transformer layers with *banded* self-attention. Every layer
  is "valid" (it consumes its reach at both ends, no implicit padding), so the encoder is
  exactly translation-equivariant: long audio is encoded in chunks with margins and gives the
  same features as one pass. Frame ``t`` sees ``audio_reach`` frames each side (5 = 0.2 s by
  default, cross-attention band included).
* **Conditioning**: emotion embedding (8 MEAD classes) + intensity x a per-emotion direction +
  the identity shape (portrait's normalized landmarks minus the template) -> a vector that sets
  the scale/shift of every decoder layer norm (FiLM / adaptive layer norm) and is added to the
  input tokens.
* **Decoder**: token ``t`` = embedding of the cues of frame ``t-1`` (normalized PCA coefficients
  of the expression, normalized pose, gaze-bin embedding). Causal self-attention over the last
  ``context`` tokens and cross-attention to the audio features within ``cross_radius`` frames of
  ``t``, with learned relative-position biases (no absolute positions). The bounded context
  makes streaming generation with a KV cache *exactly* the computation done in training, for
  any length, in time linear and memory constant in the length: there are no windows to
  cross-fade and no seams.
* **Heads**: PCA coefficients of the expression offset (basis fitted on training data, stored
  as buffers), pose mean and log-std (6: yaw/pitch/roll degrees, x/y shift, log scale, all
  relative to the anchor = the portrait / the clip's start), gaze-bin logits.

Pose is predicted as the offset from the anchor, not as a per-frame delta: integrated deltas
drift without bound in free-running generation (a random walk over minutes of audio), offsets
stay bounded and still come out smooth because the previous pose is an input and the velocity
is penalised. Gaze is a classification over :class:`~facecue.cues.GazeBins` with label
smoothing to the grid neighbours; sampled with a temperature, decoded to the bin centre and
smoothed in time.

Training (:class:`Stage1Task` with :func:`facecue.train.train`): teacher forcing with
(parallel, two-pass) scheduled sampling; losses L1 landmarks (lips weighted), velocity L1,
pose L1 + velocity + Gaussian NLL of the std head, gaze cross-entropy, and the collaborative
classifier's cross-entropy on the generated (soft) cues against the requested emotion.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .constants import DEFAULT_FPS, EMOTIONS, MEL_SUBFRAMES, N_LANDMARKS, N_MELS, N_MESH_POINTS, SAMPLE_RATE
from .cues import FaceCues, GazeBins, combined_gaze, eye_aperture, place_iris, rotation_to_angles
from .data import (
    SILENCE_LOG_MEL,
    ClipData,
    CueWindows,
    DataConfig,
    PoseAnchor,
    load_cache,
    pose_features,
    pose_from_features,
    split_by_speaker,
)
from .errors import CheckpointError, InputError
from .inputs import check_intensity, check_temperature, emotion_id, parse_emotion_schedule
from .train import TrainConfig, load_checkpoint, inference_weights, unwrap

log = logging.getLogger("facecue.stage1")

STAGE1_KIND = "facecue.stage1"
STAGE1_VERSION = 1
CLASSIFIER_KIND = "facecue.emotion_classifier"
CLASSIFIER_VERSION = 1

# MediaPipe FACEMESH_LIPS: the points whose error the landmark loss weights up.
LIP_POINTS = (0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181, 185, 191, 267, 269,
              270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402, 405, 409, 415)
LANDMARK_LOSS_SCALE = 100.0  # landmark errors in % of the eye-corner distance (~1 for real errors)
N_POSE = 6
NEUTRAL_ID = EMOTIONS.index("neutral")
GAZE_SMOOTHING = 0.5  # weight of the new bin centre in the output gaze's exponential smoothing


# --- configs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage1ModelConfig:
    d_model: int = 128
    n_heads: int = 4
    ff_mult: int = 4
    cond_dim: int = 128
    audio_convs: int = 2  # kernel-3 valid convolutions (1 frame of reach each)
    audio_layers: int = 2  # banded transformer layers of the audio encoder
    audio_radius: int = 1  # frames each encoder attention layer reaches either side
    cross_radius: int = 1  # frames of encoded audio either side that decoder step t attends to
    decoder_layers: int = 4
    context: int = 32  # previous cue tokens the decoder attends to (1.28 s at 25 fps)
    dropout: float = 0.1
    pca_components: int = 48
    pca_max_frames: int = 50_000  # frames sampled to fit the PCA and the feature statistics
    gaze_yaw_range: tuple[float, float] = (-20.0, 20.0)
    gaze_pitch_range: tuple[float, float] = (-15.0, 15.0)
    gaze_n_yaw: int = 10
    gaze_n_pitch: int = 6

    def __post_init__(self) -> None:
        from .train import ConfigError

        if self.d_model % self.n_heads:
            raise ConfigError(None, "model.d_model must be a multiple of model.n_heads")
        if self.context < 1 or self.decoder_layers < 1 or self.pca_components < 1:
            raise ConfigError(None, "model.context, model.decoder_layers and model.pca_components must be >= 1")
        if min(self.audio_convs, self.audio_layers, self.audio_radius, self.cross_radius) < 0:
            raise ConfigError(None, "model.audio_* and model.cross_radius must be >= 0")

    @property
    def gaze_bins(self) -> GazeBins:
        return GazeBins(self.gaze_yaw_range, self.gaze_pitch_range, self.gaze_n_yaw, self.gaze_n_pitch)

    @property
    def encoder_reach(self) -> int:
        """Frames of audio either side one encoder output depends on."""
        return self.audio_convs + self.audio_layers * self.audio_radius

    @property
    def audio_margin(self) -> int:
        """Frames of audio either side a decoder step depends on (encoder + cross-attention)."""
        return self.encoder_reach + self.cross_radius


@dataclass(frozen=True)
class LossConfig:
    landmark: float = 1.0
    velocity: float = 1.0
    pose: float = 0.5
    pose_nll: float = 0.05
    gaze: float = 0.5
    emotion: float = 0.1  # weight of the collaborative classifier's cross-entropy (needs classifier)
    mouth_weight: float = 3.0  # lips' weight in the landmark loss (others 1)
    gaze_smoothing: float = 0.1  # probability mass moved to the neighbouring gaze bins
    classifier: str = ""  # emotion-classifier checkpoint ('' = no emotion loss)
    scheduled_sampling: float = 0.3  # max probability of feeding back the model's own prediction
    scheduled_sampling_steps: int = 5000  # steps over which that probability ramps up from 0


@dataclass(frozen=True)
class Stage1Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: Stage1ModelConfig = field(default_factory=Stage1ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(out_dir="runs/stage1"))


@dataclass(frozen=True)
class ClassifierModelConfig:
    pca_components: int = 16
    d_model: int = 64
    layers: int = 2
    kernel: int = 5
    dropout: float = 0.3
    feature_noise: float = 0.1  # std of noise added to the normalized features in training
    label_smoothing: float = 0.1


@dataclass(frozen=True)
class ClassifierConfig:
    data: DataConfig = field(default_factory=lambda: DataConfig(window=48))
    model: ClassifierModelConfig = field(default_factory=ClassifierModelConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=2000, batch_size=32, lr=1e-3, weight_decay=0.05, warmup_steps=100, checkpoint_every=500, out_dir="runs/classifier"))


# --- shared statistics ---------------------------------------------------------------------


def _sample_frames(clips: Sequence[ClipData], max_frames: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Valid frames of ``clips`` (subsampled to ``max_frames``): expression (N, 1404), pose (N, 6), gaze (N, 2)."""
    expr = np.concatenate([c.expression[c.valid].reshape(-1, N_MESH_POINTS * 3) for c in clips]).astype(np.float32)
    pose = np.concatenate([c.pose[c.valid] for c in clips])
    gaze = np.concatenate([c.gaze[c.valid] for c in clips])
    if len(expr) > max_frames:
        keep = np.sort(np.random.default_rng(seed).choice(len(expr), max_frames, replace=False))
        expr, pose, gaze = expr[keep], pose[keep], gaze[keep]
    if len(expr) < 2:
        raise InputError(None, "too few valid training frames to fit the expression PCA")
    return expr, pose, gaze


def fit_pca(expression: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA of (N, D) rows: mean (D,), basis (K, D) orthonormal rows, std (K,) of the coefficients."""
    x = torch.from_numpy(np.asarray(expression, dtype=np.float64))
    mean = x.mean(0)
    _, s, vt = torch.linalg.svd(x - mean, full_matrices=False)
    k = int(min(n_components, len(s), max(1, len(x) - 1)))
    std = s[:k] / math.sqrt(max(1, len(x) - 1))
    return mean.float().numpy(), vt[:k].float().numpy(), np.maximum(std.float().numpy(), 1e-6)


def _robust_std(x: np.ndarray, floor: float) -> np.ndarray:
    return np.maximum(np.asarray(x, dtype=np.float64).std(axis=0), floor).astype(np.float32)


# --- building blocks -----------------------------------------------------------------------


class Attention(nn.Module):
    """Multi-head attention with an additive bias (relative positions and band masks)."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dh = heads, d // heads
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, d)
        self.drop = nn.Dropout(dropout)

    def keys_values(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, d) -> keys, values (B, H, L, dh)."""
        b, n, _ = memory.shape
        k, v = self.kv(memory).view(b, n, 2, self.heads, self.dh).permute(2, 0, 3, 1, 4)
        return k, v

    def forward(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """x (B, Tq, d), k/v (B, H, Tk, dh), bias (H, Tq, Tk) (-inf where not allowed) -> (B, Tq, d)."""
        b, t, _ = x.shape
        q = self.q(x).view(b, t, self.heads, self.dh).transpose(1, 2)
        scores = (q @ k.transpose(-1, -2)) * (self.dh ** -0.5) + bias.to(q.dtype)
        weights = self.drop(torch.softmax(scores, dim=-1))
        return self.out((weights @ v).transpose(1, 2).reshape(b, t, -1))


def _feed_forward(d: int, mult: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d, mult * d), nn.GELU(), nn.Dropout(dropout), nn.Linear(mult * d, d))


def symmetric_band_bias(table: torch.Tensor, n_query: int) -> torch.Tensor:
    """Bias (H, n_query, n_query + 2r) for "valid" banded attention: query i sees keys i..i+2r
    (the key at i + r is the query's own frame); ``table`` (H, 2r + 1)."""
    width = table.shape[1]
    i = torch.arange(n_query, device=table.device)[:, None]
    j = torch.arange(n_query + width - 1, device=table.device)[None, :]
    rel = j - i
    allowed = (rel >= 0) & (rel < width)
    bias = table[:, rel.clamp(0, width - 1)]
    return bias.masked_fill(~allowed, float("-inf"))


def causal_band_bias(table: torch.Tensor, n: int) -> torch.Tensor:
    """Bias (H, n, n) for causal attention over the last C tokens; ``table[:, o]`` for offset o = i - j."""
    context = table.shape[1]
    i = torch.arange(n, device=table.device)[:, None]
    j = torch.arange(n, device=table.device)[None, :]
    rel = i - j
    allowed = (rel >= 0) & (rel < context)
    return table[:, rel.clamp(0, context - 1)].masked_fill(~allowed, float("-inf"))


class EncoderLayer(nn.Module):
    """Pre-norm transformer layer with banded self-attention, valid at the ends: (B, L, d) -> (B, L - 2r, d)."""

    def __init__(self, d: int, heads: int, radius: int, ff_mult: int, dropout: float):
        super().__init__()
        self.radius = radius
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = Attention(d, heads, dropout)
        self.ff = _feed_forward(d, ff_mult, dropout)
        self.bias = nn.Parameter(torch.zeros(heads, 2 * radius + 1))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r, n = self.radius, x.shape[1] - 2 * self.radius
        h = self.norm1(x)
        k, v = self.attn.keys_values(h)
        x = x[:, r : r + n] + self.drop(self.attn(h[:, r : r + n], k, v, symmetric_band_bias(self.bias, n)))
        return x + self.drop(self.ff(self.norm2(x)))


class AudioEncoder(nn.Module):
    """Per-frame audio features (B, L, MEL_SUBFRAMES, N_MELS) + loudness (B, L) -> (B, L - 2 reach, d)."""

    def __init__(self, cfg: Stage1ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.register_buffer("mel_mean", torch.zeros(N_MELS))
        self.register_buffer("mel_std", torch.ones(N_MELS))
        self.inp = nn.Linear(MEL_SUBFRAMES * N_MELS + 1, d)
        self.convs = nn.ModuleList(nn.Conv1d(d, d, 3) for _ in range(cfg.audio_convs))
        self.conv_norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(cfg.audio_convs))
        self.layers = nn.ModuleList(EncoderLayer(d, cfg.n_heads, cfg.audio_radius, cfg.ff_mult, cfg.dropout) for _ in range(cfg.audio_layers))
        self.norm = nn.LayerNorm(d)
        self.reach = cfg.encoder_reach

    def forward(self, mel: torch.Tensor, loudness: torch.Tensor) -> torch.Tensor:
        b, n = mel.shape[:2]
        x = ((mel - self.mel_mean) / self.mel_std).reshape(b, n, -1)
        loud = (torch.log10(loudness.clamp_min(0) + 1e-5) + 3.0)[..., None] / 2.0
        x = self.inp(torch.cat([x, loud], dim=-1))
        for conv, norm in zip(self.convs, self.conv_norms):
            x = x[:, 1:-1] + conv(F.gelu(norm(x)).transpose(1, 2)).transpose(1, 2)
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


class DecoderLayer(nn.Module):
    """Adaptive-norm decoder layer: causal band self-attention, banded cross-attention, FFN."""

    def __init__(self, cfg: Stage1ModelConfig):
        super().__init__()
        d, h = cfg.d_model, cfg.n_heads
        self.norm = nn.LayerNorm(d, elementwise_affine=False)
        self.modulation = nn.Linear(cfg.cond_dim, 6 * d)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)
        self.self_attn = Attention(d, h, cfg.dropout)
        self.cross_attn = Attention(d, h, cfg.dropout)
        self.ff = _feed_forward(d, cfg.ff_mult, cfg.dropout)
        self.self_bias = nn.Parameter(torch.zeros(h, cfg.context))
        self.cross_bias = nn.Parameter(torch.zeros(h, 2 * cfg.cross_radius + 1))
        self.drop = nn.Dropout(cfg.dropout)

    def _mod(self, cond: torch.Tensor) -> list[torch.Tensor]:
        return list(self.modulation(cond)[:, None].chunk(6, dim=-1))  # each (B, 1, d)

    def forward(self, x: torch.Tensor, enc_kv: tuple[torch.Tensor, torch.Tensor], cond: torch.Tensor) -> torch.Tensor:
        s1, b1, s2, b2, s3, b3 = self._mod(cond)
        n = x.shape[1]
        h = self.norm(x) * (1 + s1) + b1
        k, v = self.self_attn.keys_values(h)
        x = x + self.drop(self.self_attn(h, k, v, causal_band_bias(self.self_bias, n)))
        h = self.norm(x) * (1 + s2) + b2
        x = x + self.drop(self.cross_attn(h, enc_kv[0], enc_kv[1], symmetric_band_bias(self.cross_bias, n)))
        h = self.norm(x) * (1 + s3) + b3
        return x + self.drop(self.ff(h))

    def step(self, x: torch.Tensor, cache: dict, cross_k: torch.Tensor, cross_v: torch.Tensor, mods: list[torch.Tensor],
             self_bias_rev: torch.Tensor, cross_bias: torch.Tensor) -> torch.Tensor:
        """One token (B, 1, d) with a KV cache of at most ``context`` previous tokens."""
        s1, b1, s2, b2, s3, b3 = mods
        h = self.norm(x) * (1 + s1) + b1
        k, v = self.self_attn.keys_values(h)
        if cache:
            k = torch.cat([cache["k"], k], dim=2)[:, :, -self.self_bias.shape[1]:]
            v = torch.cat([cache["v"], v], dim=2)[:, :, -self.self_bias.shape[1]:]
        cache["k"], cache["v"] = k, v
        n = k.shape[2]
        x = x + self.self_attn(h, k, v, self_bias_rev[:, None, -n:])
        h = self.norm(x) * (1 + s2) + b2
        x = x + self.cross_attn(h, cross_k, cross_v, cross_bias[:, None, :])
        h = self.norm(x) * (1 + s3) + b3
        return x + self.ff(h)


# --- the stage-1 model ---------------------------------------------------------------------


class Stage1Model(nn.Module):
    """Speech + emotion + identity -> per-frame cues; see the module docstring.

    Buffers (saved in the checkpoint): ``pca_mean`` (1404,), ``pca_basis`` (K, 1404),
    ``pca_std`` (K,), ``pose_mean``/``pose_std`` (6,), ``template`` (468, 3) identity reference,
    ``point_weights`` (468,), ``gaze_centers`` (n_bins, 2), ``gaze_targets`` (n_bins, n_bins)
    label-smoothed targets; the audio encoder's ``mel_mean``/``mel_std``.
    """

    def __init__(self, cfg: Stage1ModelConfig, n_components: int | None = None, mouth_weight: float = 3.0, gaze_smoothing: float = 0.1):
        super().__init__()
        self.cfg = cfg
        k = n_components or cfg.pca_components
        d, dc = cfg.d_model, cfg.cond_dim
        bins = cfg.gaze_bins
        self.n_bins = bins.n_bins
        self.register_buffer("pca_mean", torch.zeros(N_MESH_POINTS * 3))
        self.register_buffer("pca_basis", torch.zeros(k, N_MESH_POINTS * 3))
        self.register_buffer("pca_std", torch.ones(k))
        self.register_buffer("pose_mean", torch.zeros(N_POSE))
        self.register_buffer("pose_std", torch.ones(N_POSE))
        from .cues import default_template

        self.register_buffer("template", torch.from_numpy(default_template().points[:N_MESH_POINTS].astype(np.float32)))
        weights = torch.ones(N_MESH_POINTS)
        weights[list(LIP_POINTS)] = mouth_weight
        self.register_buffer("point_weights", weights / weights.mean())
        self.register_buffer("gaze_centers", torch.from_numpy(bins.centers))
        self.register_buffer("gaze_targets", _neighbour_smoothed_targets(bins, gaze_smoothing))
        self.encoder = AudioEncoder(cfg)
        self.emotion_embed = nn.Embedding(len(EMOTIONS), dc)
        self.intensity_embed = nn.Embedding(len(EMOTIONS), dc)
        self.identity_proj = nn.Linear(N_MESH_POINTS * 3, dc)
        self.cond_mlp = nn.Sequential(nn.Linear(dc, dc), nn.GELU(), nn.Linear(dc, dc))
        self.token = nn.Linear(k + N_POSE, d)
        self.gaze_embed = nn.Embedding(self.n_bins, d)
        self.cond_token = nn.Linear(dc, d)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.decoder_layers))
        self.final_norm = nn.LayerNorm(d, elementwise_affine=False)
        self.final_mod = nn.Linear(dc, 2 * d)
        nn.init.zeros_(self.final_mod.weight)
        nn.init.zeros_(self.final_mod.bias)
        self.coeff_head = nn.Linear(d, k)
        self.pose_head = nn.Linear(d, 2 * N_POSE)
        self.gaze_head = nn.Linear(d, self.n_bins)
        nn.init.zeros_(self.coeff_head.weight)
        nn.init.zeros_(self.coeff_head.bias)

    @property
    def n_components(self) -> int:
        return int(self.pca_basis.shape[0])

    @property
    def audio_margin(self) -> int:
        return self.cfg.audio_margin

    # -- statistics ----------------------------------------------------------------------------
    def fit_statistics(self, clips: Sequence[ClipData]) -> None:
        """Fit the PCA basis and the feature normalisation on training clips (in place)."""
        expr, pose, _ = _sample_frames(clips, self.cfg.pca_max_frames)
        mean, basis, std = fit_pca(expr, self.n_components)
        if len(std) < self.n_components:
            raise InputError(None, f"only {len(expr)} training frames: fewer than model.pca_components={self.n_components}")
        self.pca_mean.copy_(torch.from_numpy(mean))
        self.pca_basis.copy_(torch.from_numpy(basis))
        self.pca_std.copy_(torch.from_numpy(std))
        self.pose_mean.copy_(torch.from_numpy(pose.mean(0).astype(np.float32)))
        self.pose_std.copy_(torch.from_numpy(_robust_std(pose, 1e-3)))
        mel = np.concatenate([c.mel.reshape(-1, N_MELS) for c in clips]).astype(np.float32)
        self.encoder.mel_mean.copy_(torch.from_numpy(mel.mean(0)))
        self.encoder.mel_std.copy_(torch.from_numpy(_robust_std(mel, 0.1)))

    # -- representations -----------------------------------------------------------------------
    def encode_expression(self, expression: torch.Tensor) -> torch.Tensor:
        """(..., 468, 3) canonical units -> (..., K) normalized PCA coefficients."""
        flat = expression.reshape(*expression.shape[:-2], -1)
        return ((flat - self.pca_mean) @ self.pca_basis.T) / self.pca_std

    def decode_expression(self, coeffs: torch.Tensor) -> torch.Tensor:
        """(..., K) normalized coefficients -> (..., 468, 3) canonical units."""
        flat = (coeffs * self.pca_std) @ self.pca_basis + self.pca_mean
        return flat.reshape(*coeffs.shape[:-1], N_MESH_POINTS, 3)

    def normalize_pose(self, pose: torch.Tensor) -> torch.Tensor:
        return (pose - self.pose_mean) / self.pose_std

    def denormalize_pose(self, pose: torch.Tensor) -> torch.Tensor:
        return pose * self.pose_std + self.pose_mean

    def gaze_to_bin(self, gaze: torch.Tensor) -> torch.Tensor:
        """(..., 2) degrees -> (...,) int64 bins, as :meth:`GazeBins.encode`."""
        c = self.cfg
        wy = (c.gaze_yaw_range[1] - c.gaze_yaw_range[0]) / c.gaze_n_yaw
        wp = (c.gaze_pitch_range[1] - c.gaze_pitch_range[0]) / c.gaze_n_pitch
        yb = torch.floor((gaze[..., 0] - c.gaze_yaw_range[0]) / wy).clamp(0, c.gaze_n_yaw - 1)
        pb = torch.floor((gaze[..., 1] - c.gaze_pitch_range[0]) / wp).clamp(0, c.gaze_n_pitch - 1)
        return (pb * c.gaze_n_yaw + yb).long()

    def expected_gaze(self, logits: torch.Tensor) -> torch.Tensor:
        """(..., n_bins) logits -> (..., 2) softmax-weighted bin centres (differentiable)."""
        return torch.softmax(logits.float(), dim=-1) @ self.gaze_centers

    # -- network -------------------------------------------------------------------------------
    def condition(self, emotion: torch.Tensor, intensity: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        """emotion (B,) int64, intensity (B,) 0..1, identity (B, 478, 3) -> (B, cond_dim)."""
        shape = (identity[:, :N_MESH_POINTS] - self.template).reshape(identity.shape[0], -1)
        # neutral has no intensity (MEAD records it at level 1 only): the model ignores the value
        strength = torch.where(emotion == NEUTRAL_ID, torch.zeros_like(intensity), intensity).to(shape.dtype)
        c = self.emotion_embed(emotion) + strength[:, None] * self.intensity_embed(emotion)
        return self.cond_mlp(c + self.identity_proj(shape * 10.0))

    def embed(self, coeffs: torch.Tensor, pose: torch.Tensor, bins: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Input tokens from the previous frames' cues: (B, T, K), (B, T, 6) normalized, (B, T) -> (B, T, d)."""
        return self.token(torch.cat([coeffs, pose], dim=-1)) + self.gaze_embed(bins) + self.cond_token(cond)[:, None]

    def heads(self, x: torch.Tensor, cond: torch.Tensor) -> dict[str, torch.Tensor]:
        shift, scale = self.final_mod(cond)[:, None].chunk(2, dim=-1)
        h = self.final_norm(x) * (1 + scale) + shift
        pose = self.pose_head(h)
        return {
            "coeffs": self.coeff_head(h),
            "pose": pose[..., :N_POSE],
            "pose_log_std": pose[..., N_POSE:].clamp(-7.0, 3.0),
            "gaze_logits": self.gaze_head(h),
        }

    def forward(self, mel, loudness, prev_coeffs, prev_pose, prev_bins, emotion, intensity, identity) -> dict[str, torch.Tensor]:
        """Teacher-forced pass over a window.

        Parameters
        ----------
        mel : (B, T + 2M, MEL_SUBFRAMES, N_MELS), loudness (B, T + 2M): audio of the T frames with
            ``M = audio_margin`` frames of context each side
        prev_coeffs (B, T, K), prev_pose (B, T, 6) normalized, prev_bins (B, T): the cues of frames
            t-1 (the input tokens)
        emotion (B,), intensity (B,), identity (B, 478, 3)

        Returns
        -------
        dict: coeffs (B, T, K) normalized, pose / pose_log_std (B, T, 6) normalized, gaze_logits (B, T, n_bins)
        """
        enc = self.encoder(mel, loudness)
        cond = self.condition(emotion, intensity, identity)
        x = self.embed(prev_coeffs, prev_pose, prev_bins, cond)
        for layer in self.layers:
            x = layer(x, layer.cross_attn.keys_values(enc), cond)
        return self.heads(x, cond)

    # -- streaming generation ------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        mel: np.ndarray,
        loudness: np.ndarray,
        emotion: int,
        intensity: float,
        identity: np.ndarray,
        initial: tuple[np.ndarray, np.ndarray, np.ndarray],
        *,
        temperature: float = 1.0,
        seed: int = 0,
        chunk: int = 250,
        progress: bool = False,
        decode: bool = True,
    ) -> dict[str, np.ndarray]:
        """Generate cues frame by frame for ``T = len(mel)`` frames of audio features.

        Audio is encoded in chunks of ``chunk`` frames (with exact margins) and the decoder keeps a
        KV cache of ``context`` tokens: time is linear and working memory constant in ``T``.

        Parameters
        ----------
        mel (T, MEL_SUBFRAMES, N_MELS), loudness (T,) : :func:`facecue.audio.mel_frames` and
            :func:`facecue.audio.loudness_envelope` of the audio
        identity (478, 3) : normalized shape of the portrait
        initial : (expression (468, 3), pose (6,), gaze (2,)) of the frame before the first one
            (the portrait: zero expression offset and pose)
        temperature : gaze logits are divided by it and the pose std multiplied; 0 = most likely

        Returns
        -------
        dict: coeffs (T, K) normalized PCA coefficients, expression (T, 468, 3) float32 (only with
        ``decode``; long sequences can decode blocks with :meth:`expression_of` instead), pose (T, 6),
        gaze (T, 2) smoothed bin centres (degrees), gaze_bins (T,)
        """
        self.eval()
        n = len(mel)
        m, rc = self.audio_margin, self.cfg.cross_radius
        dev = self.pca_basis.device
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        mel_p = np.full((n + 2 * m, MEL_SUBFRAMES, N_MELS), SILENCE_LOG_MEL, np.float32)
        loud_p = np.zeros(n + 2 * m, np.float32)
        mel_p[m : m + n], loud_p[m : m + n] = mel, loudness
        cond = self.condition(torch.tensor([emotion], device=dev), torch.tensor([float(intensity)], device=dev),
                              torch.from_numpy(np.asarray(identity, np.float32))[None].to(dev))
        cond_tok = self.cond_token(cond)[:, None]
        mods = [layer._mod(cond) for layer in self.layers]
        self_biases = [layer.self_bias.flip(-1) for layer in self.layers]
        caches: list[dict] = [{} for _ in self.layers]
        shift, scale = self.final_mod(cond)[:, None].chunk(2, dim=-1)
        prev_c = self.encode_expression(torch.from_numpy(np.asarray(initial[0], np.float32)).to(dev))[None, None]
        prev_p = self.normalize_pose(torch.from_numpy(np.asarray(initial[1], np.float32)).to(dev))[None, None]
        prev_b = self.gaze_to_bin(torch.from_numpy(np.asarray(initial[2], np.float32)).to(dev))[None, None]
        out_c = np.empty((n, self.n_components), np.float32)
        out_p = np.empty((n, N_POSE), np.float32)
        out_b = np.empty(n, np.int64)
        out_g = np.empty((n, 2), np.float32)
        gaze_state = np.asarray(initial[2], np.float64)
        centers = self.gaze_centers.cpu().numpy()
        bar = None
        if progress:
            from .progress import progress_bar

            bar = progress_bar(total=n, desc="speech to cues", unit="frame", leave=False)
        for a in range(0, n, chunk):
            b = min(n, a + chunk)
            mel_c = torch.from_numpy(mel_p[a : b + 2 * m])[None].to(dev)
            loud_c = torch.from_numpy(loud_p[a : b + 2 * m])[None].to(dev)
            enc = self.encoder(mel_c, loud_c)  # (1, b - a + 2 rc, d): frames a - rc .. b + rc - 1
            cross = [layer.cross_attn.keys_values(enc) for layer in self.layers]
            for t in range(a, b):
                x = self.token(torch.cat([prev_c, prev_p], dim=-1)) + self.gaze_embed(prev_b) + cond_tok
                o = t - a
                for i, layer in enumerate(self.layers):
                    ck, cv = cross[i]
                    x = layer.step(x, caches[i], ck[:, :, o : o + 2 * rc + 1], cv[:, :, o : o + 2 * rc + 1],
                                   mods[i], self_biases[i], layer.cross_bias)
                h = self.final_norm(x) * (1 + scale) + shift
                coeffs = self.coeff_head(h)
                pose_out = self.pose_head(h)
                mean, log_std = pose_out[..., :N_POSE], pose_out[..., N_POSE:].clamp(-7.0, 3.0)
                logits = self.gaze_head(h)[0, 0].float()
                if temperature > 0:
                    noise = torch.randn(mean.shape, generator=gen).to(dev)
                    pose = mean + temperature * log_std.exp() * noise
                    probs = torch.softmax(logits / temperature, dim=-1).cpu()
                    bin_id = int(torch.multinomial(probs, 1, generator=gen))
                else:
                    pose = mean
                    bin_id = int(logits.argmax())
                prev_c, prev_p = coeffs, pose
                prev_b = torch.tensor([[bin_id]], device=dev)
                out_c[t] = coeffs[0, 0].cpu().numpy()
                out_p[t] = pose[0, 0].cpu().numpy()
                out_b[t] = bin_id
                gaze_state = GAZE_SMOOTHING * centers[bin_id] + (1 - GAZE_SMOOTHING) * gaze_state
                out_g[t] = gaze_state
            if bar is not None:
                bar.update(b - a)
        if bar is not None:
            bar.close()
        pose_raw = (out_p * self.pose_std.cpu().numpy() + self.pose_mean.cpu().numpy()).astype(np.float32)
        out = {"pose": pose_raw, "gaze": out_g, "gaze_bins": out_b, "coeffs": out_c}
        if decode:
            out["expression"] = self.expression_of(out_c)
        return out

    @torch.no_grad()
    def expression_of(self, coeffs: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Expression offsets (T', 468, 3) float32 of frames ``start:stop`` of normalized coefficients (T, K)."""
        block = torch.from_numpy(np.ascontiguousarray(coeffs[start:stop])).to(self.pca_basis.device)
        return self.decode_expression(block).cpu().numpy().astype(np.float32)


def _neighbour_smoothed_targets(bins: GazeBins, smoothing: float) -> torch.Tensor:
    """(n_bins, n_bins): row b = 1 - smoothing on b, smoothing shared by b's 4 grid neighbours."""
    n = bins.n_bins
    out = torch.zeros(n, n)
    for b in range(n):
        py, px = divmod(b, bins.n_yaw)
        nbrs = [(py + dy) * bins.n_yaw + (px + dx) for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0))
                if 0 <= px + dx < bins.n_yaw and 0 <= py + dy < bins.n_pitch]
        out[b, b] = 1.0 - (smoothing if nbrs else 0.0)
        for j in nbrs:
            out[b, j] = smoothing / len(nbrs)
    return out


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` (B, T, ...) over frames where ``mask`` (B, T) is true."""
    m = mask.to(values.dtype)
    while m.dim() < values.dim():
        m = m.unsqueeze(-1)
    m = m.expand_as(values)
    return (values * m).sum() / m.sum().clamp_min(1.0)


# --- the collaborative emotion classifier ----------------------------------------------------


class EmotionClassifier(nn.Module):
    """Sequence classifier on the joint cues (expression PCA coefficients + gaze + pose, and their
    frame-to-frame changes) -> emotion logits. Temporal convolutions, masked mean+max pooling.

    Buffers: its own ``pca_mean``/``pca_basis``/``pca_std`` and ``feature_mean``/``feature_std``.
    """

    def __init__(self, cfg: ClassifierModelConfig, n_components: int | None = None):
        super().__init__()
        self.cfg = cfg
        k = n_components or cfg.pca_components
        self.n_features = k + 2 + N_POSE
        self.register_buffer("pca_mean", torch.zeros(N_MESH_POINTS * 3))
        self.register_buffer("pca_basis", torch.zeros(k, N_MESH_POINTS * 3))
        self.register_buffer("pca_std", torch.ones(k))
        self.register_buffer("feature_mean", torch.zeros(self.n_features))
        self.register_buffer("feature_std", torch.ones(self.n_features))
        d = cfg.d_model
        self.inp = nn.Linear(2 * self.n_features, d)
        self.convs = nn.ModuleList(nn.Conv1d(d, d, cfg.kernel, padding=cfg.kernel // 2) for _ in range(cfg.layers))
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(2 * d, len(EMOTIONS))

    def fit_statistics(self, clips: Sequence[ClipData]) -> None:
        expr, pose, gaze = _sample_frames(clips, 50_000)
        mean, basis, std = fit_pca(expr, self.pca_basis.shape[0])
        if len(std) < self.pca_basis.shape[0]:
            raise InputError(None, f"only {len(expr)} frames: fewer than the classifier's pca_components")
        self.pca_mean.copy_(torch.from_numpy(mean))
        self.pca_basis.copy_(torch.from_numpy(basis))
        self.pca_std.copy_(torch.from_numpy(std))
        with torch.no_grad():
            feats = self.raw_features(torch.from_numpy(expr.reshape(-1, N_MESH_POINTS, 3)), torch.from_numpy(gaze), torch.from_numpy(pose))
        self.feature_mean.copy_(feats.mean(0))
        self.feature_std.copy_(feats.std(0).clamp_min(1e-3))

    def raw_features(self, expression: torch.Tensor, gaze: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        """(..., 468, 3), (..., 2) degrees, (..., 6) pose features -> (..., K + 8)."""
        flat = expression.reshape(*expression.shape[:-2], -1).float()
        coeffs = ((flat - self.pca_mean) @ self.pca_basis.T) / self.pca_std
        return torch.cat([coeffs, gaze.float(), pose.float()], dim=-1)

    def forward(self, expression: torch.Tensor, gaze: torch.Tensor, pose: torch.Tensor, mask: torch.Tensor | None = None,
                feature_noise: float = 0.0) -> torch.Tensor:
        """expression (B, T, 468, 3), gaze (B, T, 2), pose (B, T, 6), mask (B, T) -> logits (B, 8)."""
        f = (self.raw_features(expression, gaze, pose) - self.feature_mean) / self.feature_std
        if feature_noise > 0:
            f = f + feature_noise * torch.randn_like(f)
        velocity = torch.cat([torch.zeros_like(f[:, :1]), f[:, 1:] - f[:, :-1]], dim=1)
        x = F.gelu(self.inp(torch.cat([f, velocity], dim=-1))).transpose(1, 2)  # (B, d, T)
        for conv in self.convs:
            x = x + self.drop(F.gelu(conv(x)))
        x = x.transpose(1, 2)
        m = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if mask is None else mask.bool()
        mean = (x * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp_min(1)
        peak = x.masked_fill(~m[..., None], float("-inf")).amax(1)
        return self.out(self.drop(torch.cat([mean, peak], dim=-1)))


def _training_split(data: DataConfig, clips: Sequence[ClipData] | None) -> tuple[list[ClipData], list[ClipData]]:
    """(train, held-out) clips of a task: the given clips, else the cache, split by speaker."""
    all_clips = list(clips) if clips is not None else load_cache(data.cache, data.identity, data.min_valid_fraction)
    train_clips, test_clips = split_by_speaker(all_clips, data.held_out_speakers)
    if not train_clips:
        raise InputError(None, f"no training clips left after holding out speakers {', '.join(data.held_out_speakers)}")
    return train_clips, test_clips


class ClassifierTask:
    """Trains :class:`EmotionClassifier` on real cue windows (cross-entropy with label smoothing)."""

    kind = CLASSIFIER_KIND
    version = CLASSIFIER_VERSION

    def __init__(self, config: ClassifierConfig, clips: Sequence[ClipData] | None = None):
        self.config = config
        self.train_clips, self.test_clips = _training_split(config.data, clips)

    def build_model(self, checkpoint: dict | None) -> EmotionClassifier:
        if checkpoint is not None:
            return EmotionClassifier(self.config.model, checkpoint["model"]["pca_basis"].shape[0])
        model = EmotionClassifier(self.config.model)
        model.fit_statistics(self.train_clips)
        return model

    def train_dataset(self) -> CueWindows:
        return CueWindows(self.train_clips, self.config.data.window)

    def loss(self, model, batch, step):
        logits = model(batch["expression"], batch["gaze"], batch["pose"], batch["valid"], feature_noise=self.config.model.feature_noise)
        loss = F.cross_entropy(logits.float(), batch["emotion"], label_smoothing=self.config.model.label_smoothing)
        accuracy = (logits.detach().argmax(-1) == batch["emotion"]).float().mean()
        return loss, {"accuracy": float(accuracy)}

    def validate(self, model: EmotionClassifier) -> dict[str, float]:
        """Accuracy on the held-out speakers' whole clips."""
        if not self.test_clips:
            return {}
        return {"clip_accuracy": float(np.mean([int(classify_clip(model, c).argmax()) == c.emotion for c in self.test_clips]))}

    def extra_state(self) -> dict:
        return {"emotions": list(EMOTIONS), "train_speakers": sorted({c.speaker for c in self.train_clips}),
                "held_out_speakers": sorted({c.speaker for c in self.test_clips})}


@torch.no_grad()
def classify_clip(model: EmotionClassifier, clip: ClipData) -> np.ndarray:
    """Emotion probabilities (8,) of a whole training-data clip."""
    device = model.pca_basis.device
    args = [torch.from_numpy(np.asarray(a, np.float32)).to(device)[None] for a in (clip.expression, clip.gaze, clip.pose)]
    logits = model(*args, torch.from_numpy(clip.valid).to(device)[None])
    return torch.softmax(logits.float(), dim=-1)[0].cpu().numpy()


_MODEL_CACHE: dict[tuple, nn.Module] = {}
_MODEL_CACHE_LOCK = threading.Lock()


def _cached(path: str | Path, loader) -> nn.Module:
    p = Path(path)
    try:
        st = p.stat()
        key = (str(p.resolve()), st.st_mtime_ns, st.st_size, loader.__name__)
    except OSError:
        raise CheckpointError(p, "checkpoint not found") from None
    with _MODEL_CACHE_LOCK:
        if key not in _MODEL_CACHE:
            if len(_MODEL_CACHE) > 4:
                _MODEL_CACHE.clear()
            _MODEL_CACHE[key] = loader(p)
        return _MODEL_CACHE[key]


def _config_from_checkpoint(cls: type, data: dict, path: Path):
    from .train import ConfigError, config_from_dict

    try:
        return config_from_dict(cls, data["config"])
    except ConfigError as exc:
        raise CheckpointError(path, f"checkpoint config does not fit this facecue ({exc})") from None


def load_classifier(checkpoint: str | Path) -> EmotionClassifier:
    """An emotion classifier in eval mode (EMA weights when present)."""
    path = Path(checkpoint)
    data = load_checkpoint(path, CLASSIFIER_KIND, CLASSIFIER_VERSION)
    config = _config_from_checkpoint(ClassifierConfig, data, path)
    weights = inference_weights(data)
    try:
        model = EmotionClassifier(config.model, weights["pca_basis"].shape[0])
        model.load_state_dict(weights)
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(path, f"weights do not match the classifier ({str(exc).splitlines()[0]})") from None
    return model.eval()


def cue_sequence_features(cues: FaceCues) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(expression (T, 468, 3), gaze (T, 2), pose (T, 6)) of a FaceCues, as the data pipeline
    derives them (expression relative to ``cues.identity``; pose relative to the start)."""
    expression = cues.normalized[:, :N_MESH_POINTS] - cues.identity[None, :N_MESH_POINTS]
    anchor = PoseAnchor.of(cues.scale, cues.rotation, cues.translation)
    return expression.astype(np.float32), cues.combined_gaze, pose_features(cues.scale, cues.rotation, cues.translation, anchor)


def classify_emotion(checkpoint: str | Path, cues: FaceCues | Sequence[FaceCues]) -> np.ndarray:
    """Emotion probabilities of cue sequences by the collaborative classifier.

    Parameters
    ----------
    checkpoint : an emotion-classifier checkpoint (``facecue train classifier``)
    cues : one FaceCues or a sequence of them. Expression is measured from ``cues.identity``:
        generated cues carry the portrait's shape; for cues extracted from a real video, set
        ``identity`` to the speaker's neutral shape for a fair reading.

    Returns
    -------
    (8,) float32 probabilities in :data:`~facecue.constants.EMOTIONS` order, or (N, 8) for a sequence.
    """
    single = isinstance(cues, FaceCues)
    items = [cues] if single else list(cues)
    if not items or not all(isinstance(c, FaceCues) for c in items):
        raise InputError(None, "classify_emotion needs FaceCues (or a list of them)")
    model = _cached(checkpoint, load_classifier)
    out = []
    with torch.no_grad():
        for c in items:
            e, g, p = (torch.from_numpy(a)[None] for a in cue_sequence_features(c))
            out.append(torch.softmax(model(e, g, p).float(), dim=-1)[0].numpy())
    probs = np.stack(out).astype(np.float32)
    return probs[0] if single else probs


# --- the stage-1 task ----------------------------------------------------------------------


class Stage1Task:
    """Trains :class:`Stage1Model` (see the module docstring for the losses)."""

    kind = STAGE1_KIND
    version = STAGE1_VERSION

    def __init__(self, config: Stage1Config, clips: Sequence[ClipData] | None = None):
        self.config = config
        self.train_clips, self.test_clips = _training_split(config.data, clips)
        self.classifier: EmotionClassifier | None = None
        if config.loss.classifier and config.loss.emotion > 0:
            self.classifier = load_classifier(config.loss.classifier)
            for p in self.classifier.parameters():
                p.requires_grad_(False)

    def build_model(self, checkpoint: dict | None) -> Stage1Model:
        cfg = self.config
        if checkpoint is not None:
            return Stage1Model(cfg.model, checkpoint["model"]["pca_basis"].shape[0], cfg.loss.mouth_weight, cfg.loss.gaze_smoothing)
        model = Stage1Model(cfg.model, None, cfg.loss.mouth_weight, cfg.loss.gaze_smoothing)
        model.fit_statistics(self.train_clips)
        return model

    def train_dataset(self) -> CueWindows:
        return CueWindows(self.train_clips, self.config.data.window, self.config.model.audio_margin)

    def scheduled_sampling_probability(self, step: int) -> float:
        lc = self.config.loss
        if lc.scheduled_sampling <= 0:
            return 0.0
        return lc.scheduled_sampling * min(1.0, step / max(1, lc.scheduled_sampling_steps))

    @staticmethod
    def targets(m: Stage1Model, batch: dict) -> dict[str, torch.Tensor]:
        """Normalized targets and teacher-forcing inputs of a batch."""
        coeffs = m.encode_expression(batch["expression"])
        pose = m.normalize_pose(batch["pose"])
        bins = m.gaze_to_bin(batch["gaze"])
        prev_c = torch.cat([m.encode_expression(batch["prev_expression"])[:, None], coeffs[:, :-1]], dim=1)
        prev_p = torch.cat([m.normalize_pose(batch["prev_pose"])[:, None], pose[:, :-1]], dim=1)
        prev_b = torch.cat([m.gaze_to_bin(batch["prev_gaze"])[:, None], bins[:, :-1]], dim=1)
        return {"coeffs": coeffs, "pose": pose, "bins": bins, "prev_coeffs": prev_c, "prev_pose": prev_p, "prev_bins": prev_b}

    def loss(self, model, batch, step):
        m: Stage1Model = unwrap(model)
        with torch.autocast(batch["mel"].device.type, enabled=False):  # targets and losses in fp32, not bf16
            tg = self.targets(m, batch)
        cond_args = (batch["emotion"], batch["intensity"], batch["identity"])
        prev_c, prev_p, prev_b = tg["prev_coeffs"], tg["prev_pose"], tg["prev_bins"]
        p = self.scheduled_sampling_probability(step)
        if p > 0:
            with torch.no_grad():
                first = m(batch["mel"], batch["loudness"], prev_c, prev_p, prev_b, *cond_args)
                sampled_bins = torch.distributions.Categorical(logits=first["gaze_logits"].float()).sample()
                swap = torch.rand(prev_b.shape, device=prev_b.device) < p
                swap[:, 0] = False
                prev_c = torch.where(swap[..., None], torch.roll(first["coeffs"].to(prev_c.dtype), 1, dims=1), prev_c)
                prev_p = torch.where(swap[..., None], torch.roll(first["pose"].to(prev_p.dtype), 1, dims=1), prev_p)
                prev_b = torch.where(swap, torch.roll(sampled_bins, 1, dims=1), prev_b)
        out = model(batch["mel"], batch["loudness"], prev_c, prev_p, prev_b, *cond_args)
        with torch.autocast(batch["mel"].device.type, enabled=False):
            return self._losses(m, batch, tg, {k: v.float() for k, v in out.items()}, p)

    def _losses(self, m: Stage1Model, batch: dict, tg: dict, out: dict, p: float) -> tuple[torch.Tensor, dict]:
        lc = self.config.loss
        valid = batch["valid"]
        pair = valid[:, 1:] & valid[:, :-1]
        expr_hat = m.decode_expression(out["coeffs"])
        expr = batch["expression"]
        w = m.point_weights[:, None]
        err = (expr_hat - expr).abs() * w * LANDMARK_LOSS_SCALE
        l_lmk = masked_mean(err, valid)
        vel = ((expr_hat[:, 1:] - expr_hat[:, :-1]) - (expr[:, 1:] - expr[:, :-1])).abs() * w * LANDMARK_LOSS_SCALE
        l_vel = masked_mean(vel, pair)
        pose_hat, log_std = out["pose"], out["pose_log_std"]
        l_pose = masked_mean((pose_hat - tg["pose"]).abs(), valid)
        l_pose_vel = masked_mean(((pose_hat[:, 1:] - pose_hat[:, :-1]) - (tg["pose"][:, 1:] - tg["pose"][:, :-1])).abs(), pair)
        nll = 0.5 * ((pose_hat.detach() - tg["pose"]) / log_std.exp()) ** 2 + log_std
        l_nll = masked_mean(nll, valid)
        logp = F.log_softmax(out["gaze_logits"], dim=-1)
        l_gaze = masked_mean(-(m.gaze_targets[tg["bins"]] * logp).sum(-1), valid)
        total = (lc.landmark * l_lmk + lc.velocity * l_vel + lc.pose * (l_pose + l_pose_vel) + lc.pose_nll * l_nll
                 + lc.gaze * l_gaze)
        terms = {"landmark": l_lmk, "velocity": l_vel, "pose": l_pose, "pose_velocity": l_pose_vel, "pose_nll": l_nll, "gaze": l_gaze}
        if self.classifier is not None:
            clf = self.classifier.to(expr_hat.device).eval()
            logits = clf(expr_hat, m.expected_gaze(out["gaze_logits"]), m.denormalize_pose(pose_hat), valid)
            l_emo = F.cross_entropy(logits.float(), batch["emotion"])
            total = total + lc.emotion * l_emo
            terms["emotion"] = l_emo
            terms["emotion_accuracy"] = (logits.argmax(-1) == batch["emotion"]).float().mean()
        terms = {k: float(v.detach()) for k, v in terms.items()}
        terms["scheduled_sampling"] = p
        return total, terms

    def validate(self, model: Stage1Model) -> dict[str, float]:
        """Teacher-forced errors on the held-out speakers (see :func:`evaluate_teacher_forced`)."""
        return evaluate_teacher_forced(model, self.test_clips, self.config.data.window) if self.test_clips else {}

    def extra_state(self) -> dict:
        return {
            "emotions": list(EMOTIONS),
            "fps": DEFAULT_FPS,
            "train_speakers": sorted({c.speaker for c in self.train_clips}),
            "held_out_speakers": sorted({c.speaker for c in self.test_clips}),
            "pose_features": ["yaw", "pitch", "roll", "tx", "ty", "log_scale"],
            "teacher": read_teacher_settings(self.config.data.cache),
        }


@torch.no_grad()
def evaluate_teacher_forced(model: Stage1Model, clips: Sequence[ClipData], window: int, max_windows: int = 256) -> dict[str, float]:
    """Teacher-forced errors on clips (held-out speakers): landmark L1 (% of eye distance), lip
    L1, pose L1 (degrees for the angles), gaze-bin accuracy. Non-overlapping windows."""
    model.eval()
    ds = CueWindows(clips, window, model.audio_margin)
    if len(ds) == 0:
        return {}
    starts = []
    for k, c in enumerate(ds.clips):
        starts += [int(ds.offsets[k]) + s for s in range(0, c.n_frames - window + 1, window)]
    starts = starts[:max_windows]
    device = model.pca_basis.device
    batch = {k: v.to(device) for k, v in torch.utils.data.default_collate([ds[i] for i in starts]).items()}
    task_like = Stage1Task.targets(model, batch)
    out = model(batch["mel"], batch["loudness"], task_like["prev_coeffs"], task_like["prev_pose"], task_like["prev_bins"],
                batch["emotion"], batch["intensity"], batch["identity"])
    expr_hat = model.decode_expression(out["coeffs"])
    err = (expr_hat - batch["expression"]).abs() * LANDMARK_LOSS_SCALE
    valid = batch["valid"]
    pose_err = (model.denormalize_pose(out["pose"]) - batch["pose"]).abs()
    return {
        "landmark_l1": float(masked_mean(err, valid)),
        "lip_l1": float(masked_mean(err[:, :, list(LIP_POINTS)], valid)),
        "pose_angle_l1_deg": float(masked_mean(pose_err[..., :3], valid)),
        "gaze_bin_accuracy": float(masked_mean((out["gaze_logits"].argmax(-1) == task_like["bins"]).float(), valid)),
    }


# --- inference -----------------------------------------------------------------------------


def load_stage1(checkpoint: str | Path) -> Stage1Model:
    """A stage-1 model in eval mode (EMA weights when the run kept them)."""
    path = Path(checkpoint)
    data = load_checkpoint(path, STAGE1_KIND, STAGE1_VERSION)
    config = _config_from_checkpoint(Stage1Config, data, path)
    weights = inference_weights(data)
    try:
        model = Stage1Model(config.model, weights["pca_basis"].shape[0], config.loss.mouth_weight, config.loss.gaze_smoothing)
        model.load_state_dict(weights)
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(path, f"weights do not match the stage-1 model ({str(exc).splitlines()[0]})") from None
    model.checkpoint_step = int(data["step"])
    model.teacher_expression = teacher_expression(data)
    return model.eval()


TEACHER_FILE = "teacher.json"  # in a teacher cache (scripts/make_teacher_data.py): the teacher's emotion settings


def read_teacher_settings(cache: str | Path) -> dict:
    """The phonetic teacher's emotion settings recorded in a training cache folder (its
    ``TEACHER_FILE``, or that file itself: ``phonetic.emotion_settings()`` as the cache was
    made), or {} for a cache without them."""
    import json

    path = Path(cache)
    if path.is_dir():
        path = path / TEACHER_FILE
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise InputError(path, f"not a teacher settings file ({exc})") from None


def teacher_actions(checkpoint_data: dict) -> dict[str, dict[str, float]]:
    """The ``phonetic.EMOTION_ACTIONS`` a stage-1 checkpoint's teacher had (so the network learnt
    them): recorded by the trainer under ``extra["teacher"]``; {} for checkpoints without the
    record (the first bundled networks' teacher had no action shapes)."""
    actions = (checkpoint_data.get("extra") or {}).get("teacher", {}).get("actions", {})
    return {str(e): {str(k): float(v) for k, v in a.items()} for e, a in actions.items()}


def teacher_expression(checkpoint_data: dict) -> dict:
    """The emotion settings a stage-1 checkpoint's teacher drew its expressions with
    (``phonetic.emotion_settings()``' ``gains``, ``emphasis``, ``actions`` and ``speech_widening``),
    for ``phonetic.expression_offsets``: the recorded ones, the action shapes as
    :func:`teacher_actions`; gains or emphasis not recorded are None (taken as those set now); a
    speech widening not recorded is 0 (teachers before ``phonetic.SPEECH_WIDENING`` had none)."""
    teacher = (checkpoint_data.get("extra") or {}).get("teacher", {})
    gains = teacher.get("gains")
    emphasis = teacher.get("emphasis")
    return {"gains": None if gains is None else {str(k): float(v) for k, v in gains.items()},
            "emphasis": None if emphasis is None else {str(e): {str(k): float(v) for k, v in f.items()}
                                                        for e, f in emphasis.items()},
            "actions": teacher_actions(checkpoint_data),
            "speech_widening": float(teacher.get("speech_widening", 0.0))}


def stage1_checkpoint(checkpoint: str | Path | None = None) -> Path:
    """The stage-1 checkpoint to use: ``checkpoint``, or the one bundled in the package.
    :class:`InputError` when neither exists (nothing is loaded here)."""
    from . import assets

    if checkpoint is None:
        checkpoint = assets.bundled_checkpoint()
        if checkpoint is None:
            raise InputError(None, "no stage-1 checkpoint is bundled with this build: pass a checkpoint (train one "
                             "with 'facecue train stage1 --config configs/stage1_default.yaml') or use the phonetic "
                             "cue model")
    path = Path(checkpoint)
    if not path.is_file():
        raise CheckpointError(path, "checkpoint not found")
    return path


def check_stage1_checkpoint(checkpoint: str | Path | None = None) -> Path:
    """:func:`stage1_checkpoint`, loaded once (and cached) so that a wrong, corrupt or malicious
    file is refused before any other work."""
    path = stage1_checkpoint(checkpoint)
    _cached(path, load_stage1)
    return path


def speech_to_cues(
    audio: str | Path | np.ndarray,
    emotion: str,
    intensity: float,
    portrait_cues: FaceCues,
    *,
    seed: int = 0,
    checkpoint: str | Path | None = None,
    temperature: float = 1.0,
    progress: bool = False,
) -> FaceCues:
    """Facial cues (expression, blinks, gaze, head pose) that speak ``audio`` with ``emotion``.

    The network's own output. ``facecue generate --cue-model network`` and ``facecue
    cues-from-speech`` go through :func:`network_cues`, which also anchors the portrait without its
    smile, scales the mouth, adds what the expression set draws unlike the network's teacher,
    brings the drifting head pose and gaze back to the teacher's means and applies the controls.

    Parameters
    ----------
    audio : an audio/video file, or (N,) float32 samples at 16 kHz in [-1, 1]
    emotion : one of :data:`~facecue.constants.EMOTIONS` (case-insensitive)
    intensity : 0..1 (MEAD level n corresponds to n / 3)
    portrait_cues : FaceCues of the portrait (:func:`facecue.extract_cues` of the image): its
        identity shape, first-frame pose, gaze and image size anchor the output
    seed, temperature : sampling of gaze (and pose noise); temperature 0 is deterministic
    checkpoint : a stage-1 checkpoint; default: the one bundled in the package

    Returns
    -------
    FaceCues at 25 fps with ``n_video_frames(len(audio), 25)`` frames, in the portrait's image space.
    """
    from . import io
    from .audio import loudness_envelope, mel_frames, n_video_frames

    eid = emotion_id(emotion)
    intensity = check_intensity(intensity)
    temperature = check_temperature(temperature)
    if not isinstance(portrait_cues, FaceCues):
        raise InputError(None, "portrait_cues must be the FaceCues of the portrait (facecue.extract_cues(image))")
    ckpt_path = stage1_checkpoint(checkpoint)
    if isinstance(audio, (str, Path)):
        samples = io.read_audio(audio)
        source = str(audio)
    else:
        samples = np.asarray(audio)
        if samples.ndim != 1 or not np.issubdtype(samples.dtype, np.floating):
            raise InputError(None, f"audio must be a 1-D float array at {SAMPLE_RATE} Hz, got {samples.dtype} {samples.shape}")
        samples = samples.astype(np.float32, copy=False)
        source = "array"
    fps = DEFAULT_FPS
    n = n_video_frames(len(samples), fps)
    if n < 1:
        raise InputError(None if source == "array" else source, "audio is shorter than one video frame")
    model = _cached(ckpt_path, load_stage1)
    mel = mel_frames(samples, fps, n)
    loud = loudness_envelope(samples, fps, n)
    identity = portrait_cues.identity.astype(np.float32)
    first = portrait_cues.slice(0, 1)
    anchor = PoseAnchor.of(first.scale, first.rotation, first.translation, 1)
    initial = (first.normalized[0, :N_MESH_POINTS] - identity[:N_MESH_POINTS], np.zeros(N_POSE, np.float32), first.combined_gaze[0])
    out = model.generate(mel, loud, eid, intensity, identity, initial, temperature=temperature, seed=seed, progress=progress,
                         decode=False)
    del mel, loud
    return assemble_cues(lambda a, b: model.expression_of(out["coeffs"], a, b), out["pose"], out["gaze"], identity, anchor, fps, portrait_cues.image_size, meta={
        "source": "facecue.stage1", "audio": source, "emotion": EMOTIONS[eid], "intensity": intensity, "seed": int(seed),
        "temperature": temperature, "checkpoint": str(ckpt_path), "checkpoint_step": getattr(model, "checkpoint_step", None),
    })



# --- the network cue path: the one function behind generate --cue-model network and cues-from-speech ----------

#: The network's lower-face speech movement is scaled by this to match the phonetic teacher's
#: amplitude. The first bundled networks regressed toward the mean lip shape and needed 1.5; the
#: one retrained on 2026-12-04 does not: with 1.5 its inner-lip gap on 12 s of each of the 4
#: calibration speakers' speech (bundled portrait, neutral) came out 1.52-1.93 x the teacher's at
#: p50 and 1.43-1.62 x at p90; with 1.0, 1.03-1.32 and 0.97-1.10.
NETWORK_MOUTH_GAIN = 1.0


def network_portrait(portrait_cues: FaceCues) -> FaceCues:
    """The portrait as the network's anchor: mouth closed and its own smile taken off, as the
    identities of the network's training data were (facecue.phonetic's rest shape). The one place
    the network's smile handling lives."""
    from dataclasses import replace

    from .phonetic import portrait_rest_shape

    rest = portrait_rest_shape(portrait_cues.normalized[0]).astype(np.float32)
    return replace(portrait_cues, normalized=rest[None], identity=rest)


def teacher_head_and_gaze(head: np.ndarray, gaze_target: np.ndarray, frame_weights: np.ndarray, intensity: float,
                          portrait_gaze: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The network's head pose and gaze brought back to where its teacher (facecue.phonetic) holds them.

    The network drifts away from the portrait's pose and stays there: measured on the bundled
    network (a smiling portrait, two speech clips), neutral settled 5 degrees rolled and 4-6
    degrees pitched where its teacher's mean is 0, happy 10-12 degrees pitched (teacher -0.9),
    angry looked 16 degrees off the camera (teacher 5). So each emotion's mean head offset and mean
    gaze target (weighted by how much of the clip the emotion holds) are replaced by the teacher's.
    The motion around them (nods, turns, tilts, saccades) stays the network's own.

    Parameters
    ----------
    head : (T, 3) head angle offsets (yaw, pitch, roll) degrees from the portrait's pose
    gaze_target : (T, 2) where the eyes look, (yaw, pitch) degrees in camera space (eye-in-head
        gaze plus the head offset's yaw and pitch)
    frame_weights : (T, len(EMOTIONS)) emotion weights per frame (rows sum to 1)
    intensity : 0..1, as the emotion's
    portrait_gaze : (2,) the portrait's own gaze, degrees (the teacher's gaze targets are offsets from it)

    Returns
    -------
    (head, gaze_target): (T, 3) and (T, 2) float64, degrees, as the inputs.
    """
    from .phonetic import load_priors

    priors = load_priors()
    weights = np.asarray(frame_weights, np.float64)
    share = np.maximum(weights.sum(axis=0), 1e-9)[:, None]

    def own_mean(x: np.ndarray) -> np.ndarray:  # (T, k): each emotion's weighted mean, back per frame
        return weights @ ((weights.T @ x) / share)

    head = np.asarray(head, np.float64)
    gaze_target = np.asarray(gaze_target, np.float64)
    teacher_head = weights @ priors.pose_mean.astype(np.float64) * intensity
    teacher_target = (np.asarray(portrait_gaze, np.float64)[None]
                      + weights @ priors.gaze_mean.astype(np.float64) * intensity)
    return head - own_mean(head) + teacher_head, gaze_target - own_mean(gaze_target) + teacher_target


def scale_mouth(cues: FaceCues, gain: float | np.ndarray, rest: np.ndarray | None = None) -> FaceCues:
    """Scale the lower face's movement away from its rest by ``gain`` (a scalar, or (T,) per frame:
    0 puts the lower face at rest).

    rest : (478, 3) or (T, 478, 3) the closed-lip shape(s) the speech moves away from (the
        emotion's own mouth included, so that only the speech is scaled); default
        ``cues.identity``
    """
    gain = np.asarray(gain, np.float64)
    if np.all(gain == 1.0):
        return cues
    from dataclasses import replace

    from .phonetic import load_priors

    weight = load_priors().lower_face_weight.astype(np.float64)[None, :, None]
    rest = (cues.identity if rest is None else rest).astype(np.float64)
    rest = rest[None] if rest.ndim == 2 else rest
    gain = gain.reshape(-1, 1, 1) if gain.ndim else gain
    normalized = rest + (cues.normalized - rest) * (1.0 + (gain - 1.0) * weight)
    return replace(cues, normalized=normalized.astype(np.float32))


def emotion_rest(identity: np.ndarray, weights: np.ndarray, intensity: float, *,
                 settings: dict | None = None) -> np.ndarray:
    """(T, 478, 3) the closed-lip rest shape of each frame: ``identity`` with the emotions'
    expression (per-frame ``weights`` (T, 8), ``intensity``) as the phonetic teacher builds it
    with these emotion ``settings`` (``phonetic.expression_offsets``; default: those set now).
    Distinct weight rows are computed once (memory and time stay small for long audio)."""
    from .phonetic import closed_mouth, expression_offsets, expression_scale

    identity = np.asarray(identity, np.float64)
    ratio = expression_scale(identity)
    rows, inverse = np.unique(np.round(weights, 4), axis=0, return_inverse=True)
    expression = intensity * np.einsum("te,ekd->tkd", rows, expression_offsets(settings))
    shapes = np.stack([closed_mouth(identity + offsets * ratio) for offsets in expression])
    return shapes[np.asarray(inverse).ravel()].astype(np.float32)


def add_expression_changes(cues: FaceCues, weights: np.ndarray, intensity: float, teacher: dict | None = None
                           ) -> FaceCues:
    """``cues`` with what the emotions' expression set now (per-frame ``weights`` (T, 8),
    ``intensity``) draws unlike the ``teacher``'s (the settings the network's teacher had,
    :func:`teacher_expression`: the network draws those already): a changed action shape
    (fear's stretched lips), region gain or brow/eye emphasis, scaled to the face like the rest
    of its expression. Distinct weight rows are computed once. When anything is added the
    aperture is re-measured (an eye may have moved); gaze is kept (the irises move with their
    eyes' points)."""
    from dataclasses import replace

    from .phonetic import expression_offsets, expression_scale

    offsets = expression_offsets() - expression_offsets(teacher)
    if not offsets.any():
        return cues
    rows, inverse = np.unique(np.round(weights, 4), axis=0, return_inverse=True)
    table = intensity * np.einsum("te,ekd->tkd", rows, offsets) * expression_scale(cues.identity)
    normalized = cues.normalized + table[np.asarray(inverse).ravel()].astype(np.float32)
    return replace(cues, normalized=normalized, aperture=eye_aperture(normalized))


def _blend_runs(runs: dict[str, FaceCues], weights: np.ndarray, emotion: str) -> FaceCues:
    """Frame-by-frame blend of one network run per emotion with the schedule's (T, n) weights."""
    from .cues import angles_to_rotation, gaze_from_normalized, rotation_to_angles

    names = list(runs)
    first = runs[names[0]]
    weights = weights / weights.sum(axis=1, keepdims=True)

    def blend(field: str) -> np.ndarray:
        values = [getattr(runs[n], field) for n in names]
        return sum(w.reshape(-1, *([1] * (v.ndim - 1))) * v for w, v in zip(weights.T, values))

    normalized = blend("normalized")
    angles = sum(w[:, None] * rotation_to_angles(runs[n].rotation) for n, w in zip(names, weights.T))
    return FaceCues(normalized=normalized.astype(np.float32), scale=blend("scale").astype(np.float32),
                    rotation=angles_to_rotation(angles).astype(np.float32),
                    translation=blend("translation").astype(np.float32), gaze=gaze_from_normalized(normalized),
                    aperture=eye_aperture(normalized), valid=first.valid, identity=first.identity, fps=first.fps,
                    image_size=first.image_size, meta={**first.meta, "emotion": emotion})


def network_runs(
    audio: np.ndarray,
    portrait_cues: FaceCues,
    emotion: str | list[tuple[float, str]] = "neutral",
    intensity: float = 1.0,
    *,
    checkpoint: str | Path | None = None,
    seed: int = 0,
    temperature: float = 1.0,
    fps: float = DEFAULT_FPS,
    progress: bool = False,
) -> FaceCues:
    """The network's own cues, before :func:`network_cues` scales the mouth and applies the
    controls: one run per emotion of the schedule (one torch thread), blended frame by frame and
    resampled to ``fps``. The costly part of the network path."""
    from .audio import n_video_frames
    from .cues import resample_cues
    from .inputs import schedule_text
    from .phonetic import emotion_weights

    schedule = parse_emotion_schedule(emotion)
    anchor = network_portrait(portrait_cues)
    names = sorted({name for _, name in schedule}, key=EMOTIONS.index)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runs = {name: speech_to_cues(audio, name, intensity, anchor, seed=seed, checkpoint=checkpoint,
                                     temperature=temperature, progress=progress) for name in names}
    finally:
        torch.set_num_threads(threads)
    first = runs[names[0]]
    if len(names) > 1:
        weights = emotion_weights(schedule, first.n_frames, first.fps)[:, [EMOTIONS.index(n) for n in names]]
        first = _blend_runs(runs, weights, schedule_text(schedule))
    return resample_cues(first, fps, n_video_frames(len(audio), fps))


def network_cues(
    audio: np.ndarray,
    portrait_cues: FaceCues,
    emotion: str | list[tuple[float, str]] = "neutral",
    intensity: float = 1.0,
    *,
    checkpoint: str | Path | None = None,
    seed: int = 0,
    temperature: float = 1.0,
    fps: float = DEFAULT_FPS,
    controls=None,
    progress: bool = False,
    runs: FaceCues | None = None,
    phones: list | None = None,
) -> FaceCues:
    """The stage-1 network's cues for a portrait, ready to render: the single network path of
    ``facecue generate --cue-model network`` and ``facecue cues-from-speech``.

    The portrait is anchored with its mouth closed and its smile taken off
    (:func:`network_portrait`); the network runs with one torch thread (frame-by-frame decoding of
    a small model: more threads only add overhead), once per emotion of a schedule, the runs
    blended frame by frame; the cues are resampled to ``fps``, the mouth movement scaled by
    :data:`NETWORK_MOUTH_GAIN` (times ``controls.mouth_scale``), the head pose and gaze, which the
    network lets drift, brought back to its teacher's means (:func:`teacher_head_and_gaze`), and the
    per-cue ``controls`` (:class:`facecue.phonetic.CueControls`) applied. The network averages blinks away, so unless
    ``controls.blink_rate`` says otherwise blinks are drawn at the emotion's typical rate.

    Parameters
    ----------
    audio : (N,) float32 mono at SAMPLE_RATE
    portrait_cues : FaceCues of the portrait (one frame is used)
    emotion : an emotion name or schedule (text or parsed, see :func:`facecue.inputs.parse_emotion_schedule`)
    intensity, seed, temperature : as :func:`speech_to_cues`
    checkpoint : a stage-1 checkpoint; default: the bundled one
    runs : :func:`network_runs` of the same arguments, made before (the network is not run again:
        e.g. to try several mouth scales)
    phones : the speech's phones (:func:`facecue.audio.recognize_phones`), for ``controls.mouth_rest``:
        the lips held parted at rest still close where they say m/b/p or f/v (recognized when not given)

    Returns
    -------
    FaceCues of ``n_video_frames(len(audio), fps)`` frames in the portrait's image space.
    """
    from dataclasses import replace

    from .phonetic import (SPEECH_WIDENING, CueControls, apply_controls, default_blink_rate, emotion_weights,
                           lift_thin_lips, limit_eye_narrowing, loudness_gain, rest_parting, speaking_weight,
                           speech_widening, viseme_weights, widen_with_opening)

    schedule = parse_emotion_schedule(emotion)
    controls = controls or CueControls()
    cues = runs if runs is not None else network_runs(audio, portrait_cues, schedule, intensity, checkpoint=checkpoint,
                                                       seed=seed, temperature=temperature, fps=fps, progress=progress)
    # the speech's movement is scaled, not the emotion's own mouth (its width, corners, lip raise)
    # as the network learnt it; what the expression set now draws unlike its teacher's (action
    # shapes such as fear's stretched lips, region gains, brow and eye emphasis) is added
    teacher = _cached(stage1_checkpoint(checkpoint), load_stage1).teacher_expression
    frame_weights = emotion_weights(schedule, cues.n_frames, cues.fps)
    rest = emotion_rest(cues.identity, frame_weights, intensity, settings=teacher)
    # the pauses close as the teacher's do: the network keeps moving the mouth in a noisy
    # recording's pauses (JFK's, 28-30 dB down), which the teacher now treats as silence
    speaking = speaking_weight(loudness_gain(audio, cues.n_frames, cues.fps))
    cues = scale_mouth(cues, NETWORK_MOUTH_GAIN * controls.mouth_scale * speaking, rest)
    if controls.mouth_rest:  # the network learnt closed lips at rest: the phones say where to keep them closed
        from .audio import recognize_phones

        phones = recognize_phones(audio) if phones is None else phones
        parted = rest_parting(viseme_weights(phones, cues.n_frames, cues.fps), controls.mouth_rest)
        cues = replace(cues, normalized=cues.normalized + parted.reshape(cues.normalized.shape).astype(np.float32))
    cues = add_expression_changes(cues, frame_weights, intensity, teacher)
    # neutral speech's mouth widens as it opens: by the widening set now less its teacher's (the
    # network's mouth already widens as its teacher's did)
    widening = speech_widening(frame_weights, intensity, SPEECH_WIDENING - teacher["speech_widening"])
    # float64 first: the gap is then measured at the phonetic path's precision (float32 gaps differ in the last bits)
    widened = widen_with_opening(cues.normalized.astype(np.float64), widening)
    # as in the phonetic model, an expression never narrows the eyes below MIN_EYE_OPENING nor thins
    # a lip below MIN_LIP_HEIGHT
    shapes = limit_eye_narrowing(cues.identity, widened)  # a new float64 array
    lift_thin_lips(cues.identity, shapes)
    cues = replace(cues, normalized=shapes.astype(np.float32))
    if controls.blink_rate is None:
        controls = replace(controls, blink_rate=default_blink_rate(frame_weights))
    # the network's drift in head pose and gaze (see teacher_head_and_gaze); apply_controls then
    # turns the eyes to keep the new targets as the head moves
    head = rotation_to_angles(cues.rotation) - rotation_to_angles(portrait_cues.rotation[0])[None]
    target = combined_gaze(cues.gaze, cues.aperture) + head[:, :2]
    portrait_gaze = combined_gaze(portrait_cues.gaze[0], portrait_cues.aperture[0])
    head, new_target = teacher_head_and_gaze(head, target, frame_weights, intensity, portrait_gaze)
    cues = replace(cues, gaze=(cues.gaze + (new_target - target)[:, None]).astype(np.float32))
    if controls.pose_angles is None:
        controls = replace(controls, pose_angles=head)
    return apply_controls(cues, portrait_cues, controls, seed=seed)


def assemble_cues(expression: np.ndarray | Callable[[int, int], np.ndarray], pose: np.ndarray, gaze: np.ndarray,
                  identity: np.ndarray, anchor: PoseAnchor, fps: float, image_size: tuple[int, int], meta: dict | None = None,
                  chunk: int = 2048) -> FaceCues:
    """FaceCues from generated expression offsets (T, 468, 3) (or a function giving frames a..b of
    them), pose features (T, 6) relative to ``anchor`` and gaze (T, 2) degrees (both eyes), on
    ``identity`` (478, 3). Built in chunks so the temporaries stay bounded for long sequences."""
    n = len(pose)
    offsets = expression if callable(expression) else (lambda a, b: expression[a:b])
    normalized = np.empty((n, N_LANDMARKS, 3), np.float32)
    aperture = np.empty((n, 2), np.float32)
    gaze2 = np.repeat(np.asarray(gaze, np.float32)[:, None, :], 2, axis=1)
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        block = np.broadcast_to(identity, (b - a, N_LANDMARKS, 3)).copy()
        block[:, :N_MESH_POINTS] += offsets(a, b)
        block = place_iris(block, gaze2[a:b])
        normalized[a:b] = block
        aperture[a:b] = eye_aperture(block)
    scale, rotation, translation = pose_from_features(pose, anchor)
    return FaceCues(normalized=normalized, scale=scale, rotation=rotation, translation=translation, gaze=gaze2,
                    aperture=aperture, valid=np.ones(n, bool), identity=np.asarray(identity, np.float32), fps=float(fps),
                    image_size=tuple(image_size), meta=dict(meta or {}))


def model_size(model: nn.Module) -> tuple[int, int]:
    """(parameters, bytes of the fp32 state dict incl. buffers)."""
    params = sum(p.numel() for p in model.parameters())
    nbytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    return params, nbytes


__all__ = [
    "ClassifierConfig", "ClassifierTask", "EmotionClassifier", "LossConfig", "Stage1Config", "Stage1Model", "Stage1ModelConfig",
    "Stage1Task", "NETWORK_MOUTH_GAIN", "assemble_cues", "check_intensity", "classify_emotion", "evaluate_teacher_forced",
    "emotion_rest", "load_classifier", "load_stage1", "network_cues", "network_portrait", "scale_mouth", "speech_to_cues",
    "stage1_checkpoint", "teacher_head_and_gaze",
]
