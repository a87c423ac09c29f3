"""Stage 2, neural: a keypoint-driven generator (first-order-motion family) trained here from
scratch, the paper's self-supervised landmark-to-keypoint mapper, and the ``"neural"`` renderer.

Generator (:class:`KeypointGenerator`, FOMM-style, 4.5 M parameters at the default size)
-----------------------------------------------------------------------------------------
* **Keypoint detector**: an hourglass on the frame downscaled by ``kp_scale`` (64 px for a 256
  crop) -> K heatmaps (softmax with a temperature) -> K implicit 2D keypoints (their expected
  position, ``[-1, 1]``, x first) and K local 2x2 Jacobians (heatmap-weighted regression,
  initialised to the identity).
* **Dense motion**: around each driving keypoint the first-order motion
  ``z -> kp_s + J_s J_d^-1 (z - kp_d)`` (plus the identity for the background); an hourglass
  reads the heatmap differences and the source warped by every motion and predicts a soft
  assignment of pixels to motions (-> a dense backward flow) and an occlusion map.
* **Generator**: an encoder (two stride-2 stages) of the source, its features warped by the
  flow and multiplied by the occlusion map, residual blocks, a decoder back to RGB. The warped,
  occlusion-masked encoder features of every scale are merged into the decoder (skips, as in
  TPSMM), and the output is a learned per-pixel blend of the flow-warped source image and the
  decoder's colours: sharp where the motion explains the frame, synthesized where it does not
  (mouth interior, disocclusions). The blend matters for short trainings: on the MEAD frame
  cache at 64 px after 500 steps, held-out PSNR 28.3 dB with it, 18.1 dB without.

Everything is batch-independent (GroupNorm, no running statistics): train and eval modes match.

Training (:class:`RendererTask` with :func:`facecue.train.train`): self-reenactment pairs
(source frame, driving frame of the same clip) from a frame cache (:func:`preprocess_frames`);
losses: L1 on a 4-level image pyramid, SSIM, keypoint equivariance (random affine + thin-plate
spline warp of the driving frame: keypoints and Jacobians must follow), optionally an LSGAN patch
discriminator (no pretrained VGG exists here, so no perceptual loss). Horizontal flips.

Mapper (:class:`MapperModel`, the paper's self-supervised mapping)
------------------------------------------------------------------
An MLP (with a linear skip) from the 478 MediaPipe landmarks of a frame (pixels of its aligned
crop, normalized to ``[-1, 1]``) to the keypoints and Jacobians the *frozen* detector finds on
the same frame (L1). Training frames and their landmarks are jointly warped by small random
similarities so that the mapper covers head poses beyond the few clips. The mapper checkpoint
holds the frozen generator too: it alone drives the ``"neural"`` renderer.

Inference (:class:`NeuralRenderer`, ``get_renderer("neural", checkpoint=mapper.pt)``): the
portrait is cropped and aligned (:func:`facecue.landmarks.crop_face` geometry) at the model's
size; its source features and keypoints are computed once; per frame the relocated landmarks
are moved into the crop, the mapper turns them into driving keypoints *relative* to the
portrait's (``kp_s + M(l_t) - M(l_s)``, FOMM's relative motion, so the mapper's per-identity
bias cancels), the generator renders the crop and it is pasted back with a feathered mask.

This module imports neither OpenCV, MediaPipe nor PyAV at import time (preprocessing and the
renderer import them when called), so training runs on a machine with torch, numpy and PyYAML.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .constants import CROP_SIZE, N_LANDMARKS
from .errors import CheckpointError, InputError, check_file_header
from .train import TrainConfig, inference_weights, load_checkpoint

log = logging.getLogger("facecue.neural")

RENDERER_KIND = "facecue.renderer"
RENDERER_VERSION = 1
MAPPER_KIND = "facecue.mapper"
MAPPER_VERSION = 1
FRAMES_KIND = "facecue.frames"
FRAMES_VERSION = 1
DEFAULT_HOLDOUT_SECONDS = 1.0

# --- the frame cache ---------------------------------------------------------------------------


@dataclass
class FrameClip:
    """One clip of aligned face crops and their landmarks (a file of the frame cache).

    frames : (T, S, S, 3) uint8 RGB, the clip's frames warped by one fixed alignment ``matrix``
    landmarks : (T, 478, 3) float32, MediaPipe landmarks in the crop's pixels (z on the x scale)
    valid : (T,) bool, False where no face was found (landmarks held from a neighbour)
    fps : frames per second
    holdout_start : frames ``[holdout_start:]`` are held out of training (evaluation)
    matrix : (2, 3) source video pixels -> crop pixels
    """

    clip_id: str
    frames: np.ndarray
    landmarks: np.ndarray
    valid: np.ndarray
    fps: float
    holdout_start: int
    matrix: np.ndarray
    source: str = ""

    @property
    def n_frames(self) -> int:
        return len(self.frames)

    @property
    def size(self) -> int:
        return int(self.frames.shape[1])

    @property
    def train_indices(self) -> np.ndarray:
        """Valid frames before the held-out tail."""
        return np.flatnonzero(self.valid[: self.holdout_start])

    @property
    def heldout_indices(self) -> np.ndarray:
        """Valid frames of the held-out tail."""
        return self.holdout_start + np.flatnonzero(self.valid[self.holdout_start :])


def _encode_jpeg(frame: np.ndarray, quality: int) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(frame[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - cv2 encodes any uint8 image
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def _jpeg_decoder():
    """A function bytes -> (H, W, 3) uint8 RGB: OpenCV when installed, else Pillow."""
    try:
        import cv2

        return lambda data: cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    except ImportError:
        import io as _bytes_io

        from PIL import Image

        return lambda data: np.asarray(Image.open(_bytes_io.BytesIO(data)).convert("RGB"))


def save_frame_clip(path: str | Path, clip: FrameClip, *, jpeg_quality: int = 0, half_landmarks: bool = False) -> Path:
    """Write a clip of the frame cache atomically (``.npz``).

    jpeg_quality : 0 stores the frames raw (uint8); 1..100 stores them as JPEG bytes (about
        10x smaller; for caches that travel)
    half_landmarks : store the landmarks as float16 (0.125 px steps at 256 px)
    """
    from .io import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    if jpeg_quality:
        blobs = [_encode_jpeg(f, jpeg_quality) for f in clip.frames]
        arrays["jpeg"] = np.frombuffer(b"".join(blobs), np.uint8)
        arrays["jpeg_offsets"] = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
        arrays["frame_shape"] = np.array(clip.frames.shape, np.int64)
    else:
        arrays["frames"] = np.ascontiguousarray(clip.frames, dtype=np.uint8)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh, kind=FRAMES_KIND, version=FRAMES_VERSION, clip_id=clip.clip_id, source=clip.source,
            fps=np.float64(clip.fps), holdout_start=np.int64(clip.holdout_start), matrix=clip.matrix.astype(np.float64),
            landmarks=clip.landmarks.astype(np.float16 if half_landmarks else np.float32),
            valid=clip.valid.astype(bool),
            **arrays,
        )
    return path


def load_frame_clip(path: str | Path) -> FrameClip:
    """Read one file of the frame cache (raw or JPEG frames); :class:`InputError` when it is missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "frame cache file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            check_file_header(path, data, FRAMES_KIND, FRAMES_VERSION, "frame cache file")
            if "frames" in data.files:
                frames = data["frames"]
            else:
                blob, offsets, shape = data["jpeg"], data["jpeg_offsets"], tuple(int(v) for v in data["frame_shape"])
                decode = _jpeg_decoder()
                frames = np.empty(shape, np.uint8)
                for i in range(shape[0]):
                    frames[i] = decode(blob[offsets[i] : offsets[i + 1]].tobytes())
            clip = FrameClip(
                clip_id=str(data["clip_id"]), frames=frames, landmarks=data["landmarks"].astype(np.float32),
                valid=data["valid"].astype(bool), fps=float(data["fps"]), holdout_start=int(data["holdout_start"]),
                matrix=data["matrix"].astype(np.float64), source=str(data["source"]),
            )
    except InputError:
        raise
    except Exception as exc:  # BadZipFile, KeyError, ValueError, EOFError, decoding errors
        raise InputError(path, f"corrupt or incomplete frame cache file ({exc.__class__.__name__})") from None
    t = clip.n_frames
    if (clip.frames.ndim != 4 or clip.frames.shape[1] != clip.frames.shape[2]
            or clip.landmarks.shape != (t, N_LANDMARKS, 3) or clip.valid.shape != (t,)):
        raise InputError(path, f"inconsistent frame cache file: frames {clip.frames.shape}, "
                         f"landmarks {clip.landmarks.shape}")
    return clip


def load_frame_cache(cache: str | Path | Sequence[str | Path]) -> list[FrameClip]:
    """All clips of a frame cache folder (``*.npz``, sorted), or of a list of files."""
    if isinstance(cache, (str, Path)):
        folder = Path(cache)
        if not folder.is_dir():
            raise InputError(folder, "frame cache folder not found (make one with 'facecue preprocess-frames')")
        files = sorted(folder.glob("*.npz"))
        if not files:
            raise InputError(folder, "no frame cache files (*.npz) in the folder")
    else:
        files = [Path(f) for f in cache]
    clips = [load_frame_clip(f) for f in files]
    sizes = {c.size for c in clips}
    if len(sizes) > 1:
        raise InputError(None, f"frame cache clips have different crop sizes {sorted(sizes)}")
    return clips


def holdout_start_index(n_frames: int, fps: float, holdout_seconds: float) -> int:
    """First held-out frame when the last ``holdout_seconds`` of a clip are kept out of training."""
    if holdout_seconds < 0:
        raise InputError(None, f"holdout seconds must be >= 0, got {holdout_seconds}")
    return max(0, n_frames - int(round(holdout_seconds * fps)))


def preprocess_frames(
    videos: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    *,
    size: int = CROP_SIZE,
    holdout_seconds: float = DEFAULT_HOLDOUT_SECONDS,
    fps: float | None = None,
    jpeg_quality: int = 0,
    overwrite: bool = False,
    progress: bool = False,
) -> list[Path]:
    """Talking videos -> a frame cache of aligned face crops + landmarks, one ``.npz`` per clip.

    Landmarks are tracked with MediaPipe on the full frames; one similarity per clip (from the
    clip's median landmarks, :func:`facecue.landmarks.alignment_matrix`) aligns every frame, so
    the head still moves inside the crop as it did in the video.

    Parameters
    ----------
    videos : a folder (its video files, sorted) or a list of video files
    out_dir : cache folder, created; existing clips are skipped unless ``overwrite``
    size : crop side, pixels
    holdout_seconds : the last seconds of every clip are marked held out (not trained on)
    fps : resample the videos to this rate (default: their own)
    jpeg_quality : 0 raw uint8 frames, else JPEG quality of the stored frames

    Returns
    -------
    The written (or kept) cache files.
    """
    import cv2

    from .io import SUPPORTED_VIDEO, iter_video_frames, probe_video
    from .landmarks import alignment_matrix, track_landmarks, transform_landmarks

    if isinstance(videos, (str, Path)) and Path(videos).is_dir():
        files = sorted(p for p in Path(videos).iterdir() if p.suffix.lower() in SUPPORTED_VIDEO)
        if not files:
            raise InputError(videos, f"no videos ({', '.join(SUPPORTED_VIDEO)}) in the folder")
    elif isinstance(videos, (str, Path)):
        files = [Path(videos)]
    else:
        files = [Path(v) for v in videos]
    if size < 32:
        raise InputError(None, f"crop size must be at least 32 px, got {size}")
    holdout_start_index(1, 25.0, holdout_seconds)  # validates
    out = Path(out_dir)
    written = []
    iterator: Iterable[Path] = files
    if progress:
        from .progress import progress_bar

        iterator = progress_bar(files, desc="clips", unit="clip")
    for video in iterator:
        target = out / f"{video.stem}.npz"
        if target.exists() and not overwrite:
            try:
                load_frame_clip(target)
                written.append(target)
                continue
            except InputError:
                pass  # redo a corrupt file
        info = probe_video(video)
        rate = float(fps or info.fps)
        landmarks, valid = track_landmarks(iter_video_frames(video, fps), source=video)
        matrix = alignment_matrix(np.median(landmarks[valid], axis=0), size)
        interpolation = cv2.INTER_AREA if abs(np.linalg.det(matrix[:, :2])) < 1 else cv2.INTER_LINEAR
        frames = np.stack([
            cv2.warpAffine(frame, matrix, (size, size), flags=interpolation, borderMode=cv2.BORDER_REFLECT101)
            for frame in iter_video_frames(video, fps)
        ])
        n = min(len(frames), len(landmarks))
        clip = FrameClip(video.stem, frames[:n], transform_landmarks(landmarks[:n], matrix), valid[:n], rate,
                         holdout_start_index(n, rate, holdout_seconds), matrix, str(video))
        if len(clip.train_indices) < 2:
            log.warning("%s: fewer than 2 valid frames before the held-out %.2f s; it will not be trained on",
                        video, holdout_seconds)
        written.append(save_frame_clip(target, clip, jpeg_quality=jpeg_quality))
    return written


# --- configs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameDataConfig:
    cache: str = "cache/frames"  # folder of the frame cache (facecue preprocess-frames)


@dataclass(frozen=True)
class GeneratorConfig:
    size: int = 256  # side of the generated crop, pixels (cache frames are resized to it)
    num_keypoints: int = 10
    jacobian: bool = True  # local 2x2 Jacobians (first-order motion); False: zeroth order
    kp_scale: float = 0.25  # detector and dense-motion resolution / size
    kp_temperature: float = 0.1
    kp_variance: float = 0.01  # of the Gaussian heatmaps fed to the dense-motion network
    kp_channels: int = 32
    kp_max_channels: int = 128
    kp_blocks: int = 5
    motion_channels: int = 32
    motion_max_channels: int = 128
    motion_blocks: int = 5
    channels: int = 32  # generator's first-stage channels
    max_channels: int = 256
    down_blocks: int = 2
    res_blocks: int = 4
    occlusion: bool = True
    skips: bool = True  # warped source features of every encoder scale feed the decoder (TPSMM-style)
    blend_warped_source: bool = True  # output = per-pixel blend of the flow-warped source image and the decoder's

    def __post_init__(self) -> None:
        from .train import ConfigError

        small = round(self.size * self.kp_scale)
        problems = []
        if self.size < 32 or self.num_keypoints < 1:
            problems.append("model.size must be >= 32 and model.num_keypoints >= 1")
        if small % (2 ** self.kp_blocks) or small % (2 ** self.motion_blocks):
            problems.append(f"model.size * model.kp_scale = {small} must be divisible by 2^kp_blocks and "
                            "2^motion_blocks")
        if self.size % (2 ** self.down_blocks):
            problems.append("model.size must be divisible by 2^down_blocks")
        if problems:
            raise ConfigError(None, "; ".join(problems))

    @property
    def kp_size(self) -> int:
        return round(self.size * self.kp_scale)


@dataclass(frozen=True)
class RendererLossConfig:
    reconstruction: float = 10.0  # L1 summed over the pyramid levels
    pyramid_levels: int = 4
    ssim: float = 1.0  # weight of 1 - SSIM
    equivariance_value: float = 10.0
    equivariance_jacobian: float = 1.0
    tps_sigma_affine: float = 0.05
    tps_sigma_tps: float = 0.005
    tps_points: int = 5
    gan: float = 0.0  # LSGAN patch discriminator (generator-side weight; 0: no discriminator)
    discriminator_channels: int = 64
    discriminator_layers: int = 3
    flip: bool = True  # random horizontal flips of the (source, driving) pair


@dataclass(frozen=True)
class RendererConfig:
    data: FrameDataConfig = field(default_factory=FrameDataConfig)
    model: GeneratorConfig = field(default_factory=GeneratorConfig)
    loss: RendererLossConfig = field(default_factory=RendererLossConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=20_000, batch_size=16, lr=5e-4, weight_decay=0.0, betas=(0.9, 0.999), warmup_steps=200, ema_decay=0.999,
        checkpoint_every=2000, out_dir="runs/renderer"))


@dataclass(frozen=True)
class MapperModelConfig:
    hidden: int = 256
    layers: int = 2
    dropout: float = 0.1
    use_depth: bool = False  # feed MediaPipe's z as well as x, y
    jacobian_weight: float = 1.0
    landmark_noise: float = 0.002  # std added to the normalized landmarks in training
    augment_rotation_deg: float = 8.0  # random similarity applied to frame + landmarks in training
    augment_scale: float = 0.08
    augment_shift: float = 0.04  # fraction of the crop's half-width


@dataclass(frozen=True)
class MapperConfig:
    renderer: str = "runs/renderer/final.pt"  # the trained renderer whose frozen detector gives the targets
    data: FrameDataConfig = field(default_factory=FrameDataConfig)
    model: MapperModelConfig = field(default_factory=MapperModelConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=3000, batch_size=64, lr=1e-3, weight_decay=0.01, warmup_steps=100, checkpoint_every=1000,
        out_dir="runs/mapper"))


# --- geometry helpers --------------------------------------------------------------------------


def _no_autocast(t: torch.Tensor):
    return torch.autocast(device_type=t.device.type, enabled=False)


def coordinate_grid(height: int, width: int, device=None) -> torch.Tensor:
    """(H, W, 2) float32 grid of (x, y) in [-1, 1], corners on the corner pixel centres."""
    ys = torch.linspace(-1.0, 1.0, height, device=device)
    xs = torch.linspace(-1.0, 1.0, width, device=device)
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)


def gaussian_heatmaps(kp: torch.Tensor, size: int, variance: float) -> torch.Tensor:
    """(B, K, 2) keypoints -> (B, K, size, size) Gaussians of ``variance`` (in [-1, 1] units)."""
    grid = coordinate_grid(size, size, kp.device)
    d = grid[None, None] - kp[:, :, None, None, :]
    return torch.exp(-0.5 * (d * d).sum(-1) / variance)


def inverse_2x2(m: torch.Tensor) -> torch.Tensor:
    """Inverse of (..., 2, 2) matrices (closed form; the determinant is kept away from 0)."""
    a, b, c, d = m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1]
    det = a * d - b * c
    det = torch.where(det.abs() < 1e-4, torch.full_like(det, 1e-4) * torch.where(det < 0, -1.0, 1.0), det)
    return torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2) / det[..., None, None]


def to_image(frames: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, size, size) float32 in [0, 1] (antialiased resize)."""
    x = frames.permute(0, 3, 1, 2).float().div_(255.0)
    if size is not None and x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) float in [0, 1] -> (B, H, W, 3) uint8 numpy."""
    return (images.float().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def normalize_landmarks(landmarks: np.ndarray | torch.Tensor, size: int, use_depth: bool = False):
    """Landmarks in a crop's pixels -> the mapper's input: x, y in [-1, 1] (image edges at +-1),
    z scaled like x. ``(..., 478, 3)`` -> ``(..., 478, 2 or 3)``."""
    pts = landmarks[..., : 3 if use_depth else 2]
    scale = 2.0 / size
    if isinstance(pts, torch.Tensor):
        out = pts.float() * scale
        shift = torch.tensor([1.0, 1.0, 0.0][: out.shape[-1]], device=out.device)
        return out - shift
    out = np.asarray(pts, np.float32) * scale
    return out - np.array([1.0, 1.0, 0.0][: out.shape[-1]], np.float32)


# --- building blocks ---------------------------------------------------------------------------


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, channels), channels)


class DownBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv, self.norm = nn.Conv2d(cin, cout, 3, padding=1), _norm(cout)

    def forward(self, x):
        return F.avg_pool2d(F.relu(self.norm(self.conv(x))), 2)


class UpBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv, self.norm = nn.Conv2d(cin, cout, 3, padding=1), _norm(cout)

    def forward(self, x):
        return F.relu(self.norm(self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))))


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(channels), nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2, self.conv2 = _norm(channels), nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(F.relu(self.norm2(self.conv1(F.relu(self.norm1(x))))))


class Hourglass(nn.Module):
    """U-Net: ``blocks`` down stages (channels ``base * 2^(i+1)``, capped) and up stages with skips.
    (B, cin, H, W) -> (B, base + cin, H, W)."""

    def __init__(self, cin: int, base: int, max_channels: int, blocks: int):
        super().__init__()

        def ch(i: int) -> int:
            return min(max_channels, base * 2**i)

        self.down = nn.ModuleList(DownBlock(cin if i == 0 else ch(i), ch(i + 1)) for i in range(blocks))
        self.up = nn.ModuleList(
            UpBlock((1 if i == blocks - 1 else 2) * ch(i + 1), ch(i)) for i in reversed(range(blocks))
        )
        self.out_channels = base + cin

    def forward(self, x):
        skips = [x]
        for block in self.down:
            skips.append(block(skips[-1]))
        out = skips.pop()
        for block in self.up:
            out = torch.cat([block(out), skips.pop()], dim=1)
        return out


# --- the generator -----------------------------------------------------------------------------


class KeypointDetector(nn.Module):
    """(B, 3, S, S) in [0, 1] -> keypoints (B, K, 2) in [-1, 1] and Jacobians (B, K, 2, 2) (or None)."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.size, self.k, self.temperature = cfg.kp_size, cfg.num_keypoints, cfg.kp_temperature
        self.hourglass = Hourglass(3, cfg.kp_channels, cfg.kp_max_channels, cfg.kp_blocks)
        self.heatmap = nn.Conv2d(self.hourglass.out_channels, cfg.num_keypoints, 7, padding=3)
        self.jacobian = None
        if cfg.jacobian:
            self.jacobian = nn.Conv2d(self.hourglass.out_channels, 4 * cfg.num_keypoints, 7, padding=3)
            nn.init.zeros_(self.jacobian.weight)
            with torch.no_grad():
                self.jacobian.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0]).repeat(cfg.num_keypoints))

    def forward(self, image: torch.Tensor):
        x = image.float()
        if x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        feat = self.hourglass(x)
        b = x.shape[0]
        logits = self.heatmap(feat)  # convolutions under the caller's autocast, the rest in float32
        j = self.jacobian(feat) if self.jacobian is not None else None
        with _no_autocast(x):
            heat = torch.softmax(logits.float().flatten(2) / self.temperature, dim=-1)
            heat = heat.view(b, self.k, self.size, self.size)
            grid = coordinate_grid(self.size, self.size, x.device)
            value = (heat[..., None] * grid).sum(dim=(2, 3))
            jac = None
            if j is not None:
                j = j.float().view(b, self.k, 4, self.size, self.size)
                jac = (heat[:, :, None] * j).sum(dim=(3, 4)).view(b, self.k, 2, 2)
        return value, jac


class DenseMotion(nn.Module):
    """Sparse first-order motions around the keypoints -> dense backward flow and occlusion."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.size, self.k, self.variance = cfg.kp_size, cfg.num_keypoints, cfg.kp_variance
        self.hourglass = Hourglass((cfg.num_keypoints + 1) * 4, cfg.motion_channels, cfg.motion_max_channels,
                                   cfg.motion_blocks)
        self.mask = nn.Conv2d(self.hourglass.out_channels, cfg.num_keypoints + 1, 7, padding=3)
        n_occlusion = cfg.down_blocks + 1 if cfg.skips else 1  # one map per warped encoder scale
        self.occlusion = nn.Conv2d(self.hourglass.out_channels, n_occlusion, 7, padding=3) if cfg.occlusion else None

    def sparse_motions(self, kp_s, jac_s, kp_d, jac_d) -> torch.Tensor:
        """(B, K+1, h, w, 2) source coordinates of every driving pixel under each motion (0: identity)."""
        b = kp_s.shape[0]
        grid = coordinate_grid(self.size, self.size, kp_s.device)
        rel = grid[None, None] - kp_d[:, :, None, None, :]  # (B, K, h, w, 2)
        if jac_s is not None and jac_d is not None:
            a = jac_s @ inverse_2x2(jac_d)  # (B, K, 2, 2)
            rel = torch.einsum("bkij,bkhwj->bkhwi", a, rel)
        motions = kp_s[:, :, None, None, :] + rel
        return torch.cat([grid[None, None].expand(b, 1, -1, -1, -1), motions], dim=1)

    def forward(self, source_small, kp_s, jac_s, kp_d, jac_d):
        b, h = source_small.shape[0], self.size
        with _no_autocast(source_small):
            kp_s, kp_d = kp_s.float(), kp_d.float()
            jac_s = None if jac_s is None else jac_s.float()
            jac_d = None if jac_d is None else jac_d.float()
            heat = gaussian_heatmaps(kp_d, h, self.variance) - gaussian_heatmaps(kp_s, h, self.variance)
            heat = torch.cat([torch.zeros_like(heat[:, :1]), heat], dim=1)  # (B, K+1, h, w)
            motions = self.sparse_motions(kp_s, jac_s, kp_d, jac_d)
            src = source_small.float()[:, None].expand(-1, self.k + 1, -1, -1, -1).reshape(b * (self.k + 1), 3, h, h)
            deformed = F.grid_sample(src, motions.reshape(b * (self.k + 1), h, h, 2), align_corners=True)
            inp = torch.cat([heat[:, :, None], deformed.view(b, self.k + 1, 3, h, h)], dim=2).view(b, -1, h, h)
        feat = self.hourglass(inp)
        mask_logits = self.mask(feat)
        occlusion_logits = self.occlusion(feat) if self.occlusion is not None else None
        with _no_autocast(source_small):
            mask = torch.softmax(mask_logits.float(), dim=1)
            flow = (mask[..., None] * motions).sum(dim=1)  # (B, h, w, 2)
            occlusion = torch.sigmoid(occlusion_logits.float()) if occlusion_logits is not None else None
        return flow, occlusion


class ImageGenerator(nn.Module):
    """Source encoder, feature warping, residual bottleneck and decoder. With ``skips`` the warped
    (and occlusion-masked) source features of every encoder scale are merged into the decoder,
    so fine detail is copied from the source instead of being re-synthesized from 1/4 size."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        c, self.skips = cfg.channels, cfg.skips

        def ch(i: int) -> int:
            return min(cfg.max_channels, c * 2**i)

        self.first = nn.Sequential(nn.Conv2d(3, c, 7, padding=3), _norm(c), nn.ReLU())
        self.down = nn.ModuleList(DownBlock(ch(i), ch(i + 1)) for i in range(cfg.down_blocks))
        self.bottleneck = nn.Sequential(*[ResBlock(ch(cfg.down_blocks)) for _ in range(cfg.res_blocks)])
        self.up = nn.ModuleList(UpBlock(ch(i + 1), ch(i)) for i in reversed(range(cfg.down_blocks)))
        self.merge = nn.ModuleList(
            nn.Sequential(nn.Conv2d(2 * ch(i), ch(i), 3, padding=1), _norm(ch(i)), nn.ReLU())
            for i in reversed(range(cfg.down_blocks))
        ) if cfg.skips else None
        self.blend = cfg.blend_warped_source
        self.final = nn.Conv2d(c, 4 if self.blend else 3, 7, padding=3)

    def encode(self, image) -> tuple[torch.Tensor, ...]:
        """Source features of every scale, full size first."""
        feats = [self.first(image)]
        for block in self.down:
            feats.append(block(feats[-1]))
        return tuple(feats)

    @staticmethod
    def _warp(features, flow, occlusion):
        h, w = features.shape[-2:]
        with _no_autocast(features):
            if flow.shape[1:3] != (h, w):
                flow = F.interpolate(flow.permute(0, 3, 1, 2), size=(h, w), mode="bilinear", align_corners=True)
                flow = flow.permute(0, 2, 3, 1)
            x = F.grid_sample(features.float(), flow.float(), align_corners=True)
            if occlusion is not None:
                if occlusion.shape[-2:] != (h, w):
                    occlusion = F.interpolate(occlusion, size=(h, w), mode="bilinear", align_corners=True)
                x = x * occlusion
        return x

    def decode(self, features: Sequence[torch.Tensor], flow, occlusion, source=None):
        """Warped ``features`` (from :meth:`encode`) -> image (B, 3, S, S) in [0, 1]. ``occlusion``
        (B, n, h, w): with skips one map per scale (full size first), else one for the bottleneck.
        With ``blend_warped_source`` the ``source`` image (B, 3, S, S) warped by the flow is blended
        in per pixel (a learned mask): sharp where the motion explains the frame, synthesized where
        it does not (mouth interior, disocclusions)."""
        n = len(features) - 1

        def occ(i):
            if occlusion is None:
                return None
            return occlusion[:, i : i + 1] if self.skips else occlusion

        x = self.bottleneck(self._warp(features[n], flow, occ(n)))
        for j, block in enumerate(self.up):
            x = block(x)
            if self.skips:
                i = n - 1 - j
                x = self.merge[j](torch.cat([x, self._warp(features[i], flow, occ(i)).to(x.dtype)], dim=1))
        out = self.final(x).float()
        if not self.blend:
            return torch.sigmoid(out)
        warped = self._warp(source, flow, None)
        alpha = torch.sigmoid(out[:, 3:])
        return alpha * warped + (1.0 - alpha) * torch.sigmoid(out[:, :3])


class KeypointGenerator(nn.Module):
    """The full generator: detector + dense motion + image generator (see the module docstring)."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.config = cfg
        self.detector = KeypointDetector(cfg)
        self.motion = DenseMotion(cfg)
        self.generator = ImageGenerator(cfg)

    @property
    def size(self) -> int:
        return self.config.size

    def keypoints(self, image):
        """(B, 3, S, S) -> keypoints (B, K, 2), Jacobians (B, K, 2, 2) or None."""
        return self.detector(image)

    def prepare_source(self, source) -> dict:
        """What depends only on the source (B, 3, S, S): its features, small copy and keypoints."""
        kp, jac = self.detector(source)
        small = F.interpolate(source.float(), size=(self.config.kp_size,) * 2, mode="bilinear", align_corners=False,
                              antialias=True)
        return {"features": self.generator.encode(source), "small": small, "kp": kp, "jacobian": jac,
                "image": source.float()}

    @staticmethod
    def expand_state(state: dict, batch: int) -> dict:
        """A batch-1 source state broadcast to ``batch`` driving frames (views, no copies)."""
        def grow(v):
            if v is None:
                return None
            if isinstance(v, (tuple, list)):
                return tuple(grow(x) for x in v)
            return v.expand(batch, *v.shape[1:])

        return {k: grow(v) for k, v in state.items()}

    def animate(self, state: dict, kp_driving, jac_driving=None) -> dict:
        """The source of ``state`` moved to the driving keypoints: prediction (B, 3, S, S) in [0, 1]."""
        flow, occlusion = self.motion(state["small"], state["kp"], state["jacobian"], kp_driving, jac_driving)
        prediction = self.generator.decode(state["features"], flow, occlusion, state["image"])
        return {"prediction": prediction, "flow": flow, "occlusion": occlusion}

    def forward(self, source, driving) -> dict:
        state = self.prepare_source(source)
        kp, jac = self.detector(driving)
        out = self.animate(state, kp, jac)
        out.update(kp_source=state["kp"], jacobian_source=state["jacobian"], kp_driving=kp, jacobian_driving=jac)
        return out


# --- losses ------------------------------------------------------------------------------------


class RandomTPS:
    """Random affine + thin-plate-spline warps of [-1, 1] coordinates (one per batch item)."""

    def __init__(self, batch: int, sigma_affine: float, sigma_tps: float, points: int, device):
        self.theta = torch.randn(batch, 2, 3, device=device) * sigma_affine + torch.eye(2, 3, device=device)
        self.control = coordinate_grid(points, points, device).view(-1, 2)
        self.params = torch.randn(batch, points * points, 2, device=device) * sigma_tps

    def _deltas(self, coords):
        d = coords[:, :, None, :] - self.control[None, None]  # (B, N, P, 2)
        return d, (d * d).sum(-1)

    def warp(self, coords: torch.Tensor) -> torch.Tensor:
        """(B, N, 2) -> (B, N, 2)."""
        out = torch.einsum("bij,bnj->bni", self.theta[:, :, :2], coords) + self.theta[:, None, :, 2]
        _, r2 = self._deltas(coords)
        basis = 0.5 * r2 * torch.log(r2 + 1e-6)  # r^2 log r
        return out + torch.einsum("bnp,bpk->bnk", basis, self.params)

    def jacobian(self, coords: torch.Tensor) -> torch.Tensor:
        """(B, N, 2) -> (B, N, 2, 2) d warp / d coords."""
        d, r2 = self._deltas(coords)
        grad = d * (torch.log(r2 + 1e-6) + 1.0)[..., None]  # d(r^2 log r)/dz
        return self.theta[:, None, :, :2] + torch.einsum("bpk,bnpj->bnkj", self.params, grad)


def _gaussian_window(sigma: float = 1.5, radius: int = 5, device=None) -> torch.Tensor:
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def ssim_map(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """SSIM map (Wang et al. 2004: 11x11 Gaussian, sigma 1.5) of (B, C, H, W) images in [0, 1]."""
    c = x.shape[1]
    w = _gaussian_window(device=x.device)
    wx = w.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    wy = w.view(1, 1, -1, 1).repeat(c, 1, 1, 1)

    def blur(z):
        return F.conv2d(F.conv2d(z, wx, groups=c), wy, groups=c)

    c1, c2 = 0.01**2, 0.03**2
    mx, my = blur(x), blur(y)
    vx, vy, vxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    return ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))


def pyramid_l1(pred: torch.Tensor, target: torch.Tensor, levels: int) -> torch.Tensor:
    """L1 summed over an image pyramid (full size, 1/2, 1/4, ...: average pooling)."""
    total = pred.new_zeros(())
    for level in range(levels):
        if level:
            pred, target = F.avg_pool2d(pred, 2), F.avg_pool2d(target, 2)
        total = total + (pred - target).abs().mean()
    return total


class PatchDiscriminator(nn.Module):
    """Patch discriminator (pix2pix-style), (B, 3, H, W) -> (B, 1, h, w) scores."""

    def __init__(self, channels: int = 64, layers: int = 3):
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(3, channels, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = channels
        for _ in range(layers - 1):
            mods += [nn.Conv2d(c, min(512, 2 * c), 4, 2, 1), _norm(min(512, 2 * c)), nn.LeakyReLU(0.2)]
            c = min(512, 2 * c)
        mods.append(nn.Conv2d(c, 1, 4, 1, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, x):
        return self.net(x)


class RendererTrainingModel(nn.Module):
    """The generator (and optional discriminator) with its training losses in ``forward`` (one
    forward per step, as DDP wants). Returns the unweighted loss terms."""

    def __init__(self, model_cfg: GeneratorConfig, loss_cfg: RendererLossConfig):
        super().__init__()
        self.loss_cfg = loss_cfg
        self.generator = KeypointGenerator(model_cfg)
        self.discriminator = None
        if loss_cfg.gan > 0:
            self.discriminator = PatchDiscriminator(loss_cfg.discriminator_channels, loss_cfg.discriminator_layers)

    def forward(self, source: torch.Tensor, driving: torch.Tensor) -> dict[str, torch.Tensor]:
        lc, gen = self.loss_cfg, self.generator
        size = gen.size
        src, drv = to_image(source, size), to_image(driving, size)
        if self.training and lc.flip:
            flip = (torch.rand(src.shape[0], device=src.device) < 0.5)[:, None, None, None]
            src, drv = torch.where(flip, src.flip(-1), src), torch.where(flip, drv.flip(-1), drv)
        out = gen(src, drv)
        pred = out["prediction"]
        terms = {"reconstruction": pyramid_l1(pred, drv, lc.pyramid_levels)}
        with _no_autocast(pred):
            terms["ssim"] = 1.0 - ssim_map(pred.float(), drv).mean()
        if lc.equivariance_value > 0 or lc.equivariance_jacobian > 0:
            b = drv.shape[0]
            with _no_autocast(drv):
                tps = RandomTPS(b, lc.tps_sigma_affine, lc.tps_sigma_tps, lc.tps_points, drv.device)
                grid = coordinate_grid(size, size, drv.device).view(1, -1, 2).expand(b, -1, -1)
                grid = tps.warp(grid).view(b, size, size, 2)
                warped = F.grid_sample(drv, grid, padding_mode="reflection", align_corners=True)
            kp_t, jac_t = gen.keypoints(warped)
            with _no_autocast(drv):
                kp_d = out["kp_driving"].float()
                terms["equivariance_value"] = (tps.warp(kp_t.float()) - kp_d).abs().mean()
                if jac_t is not None:
                    jac = tps.jacobian(kp_t.float()) @ jac_t.float()
                    eye = torch.eye(2, device=drv.device)
                    normed = inverse_2x2(out["jacobian_driving"].float()) @ jac
                    terms["equivariance_jacobian"] = (eye - normed).abs().mean()
        if self.discriminator is not None:
            d = self.discriminator
            real, fake = d(drv), d(pred.detach())
            terms["discriminator"] = ((1.0 - real.float()) ** 2).mean() + (fake.float() ** 2).mean()
            # the generator's adversarial term through the discriminator's *detached* weights, so
            # that one backward pass trains each network on its own objective
            frozen = {name: p.detach() for name, p in d.named_parameters()}
            judged = torch.func.functional_call(d, frozen, (pred,))
            terms["gan"] = ((1.0 - judged.float()) ** 2).mean()
        return terms


# --- datasets ----------------------------------------------------------------------------------


class FramePairs(torch.utils.data.Dataset):
    """Every (source, driving) pair of training frames of the same clip: item ``i`` ->
    ``{"source", "driving"}`` (S, S, 3) uint8 tensors."""

    def __init__(self, clips: Sequence[FrameClip]):
        self.clips = [c for c in clips if len(c.train_indices) >= 2]
        if not self.clips:
            raise InputError(None, "no clip has 2 or more training frames (before the held-out tail)")
        self.indices = [c.train_indices for c in self.clips]
        self.offsets = np.cumsum([0] + [len(i) ** 2 for i in self.indices])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, item: int) -> dict:
        c = int(np.searchsorted(self.offsets, item, side="right") - 1)
        idx = self.indices[c]
        s, d = divmod(int(item - self.offsets[c]), len(idx))
        frames = self.clips[c].frames
        return {"source": torch.from_numpy(frames[idx[s]]), "driving": torch.from_numpy(frames[idx[d]])}


class FrameLandmarks(torch.utils.data.Dataset):
    """Training frames with their landmarks: ``{"frame": (S, S, 3) uint8, "landmarks": (478, D)
    float32 normalized}``."""

    def __init__(self, clips: Sequence[FrameClip], use_depth: bool = False):
        self.clips = [c for c in clips if len(c.train_indices)]
        if not self.clips:
            raise InputError(None, "no clip has training frames (before the held-out tail)")
        self.items = [(k, int(i)) for k, c in enumerate(self.clips) for i in c.train_indices]
        self.use_depth = use_depth

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, item: int) -> dict:
        k, i = self.items[item]
        clip = self.clips[k]
        return {"frame": torch.from_numpy(clip.frames[i]),
                "landmarks": torch.from_numpy(normalize_landmarks(clip.landmarks[i], clip.size, self.use_depth))}


# --- the renderer task -------------------------------------------------------------------------


class RendererTask:
    """Trains :class:`KeypointGenerator` on self-reenactment pairs (see the module docstring)."""

    kind = RENDERER_KIND
    version = RENDERER_VERSION

    def __init__(self, config: RendererConfig, clips: Sequence[FrameClip] | None = None):
        self.config = config
        self.clips = list(clips) if clips is not None else load_frame_cache(config.data.cache)

    def build_model(self, checkpoint: dict | None) -> RendererTrainingModel:
        return RendererTrainingModel(self.config.model, self.config.loss)

    def train_dataset(self) -> FramePairs:
        return FramePairs(self.clips)

    def loss(self, model, batch, step):
        lc = self.config.loss
        terms = model(batch["source"], batch["driving"])
        weights = {"reconstruction": lc.reconstruction, "ssim": lc.ssim, "equivariance_value": lc.equivariance_value,
                   "equivariance_jacobian": lc.equivariance_jacobian, "gan": lc.gan, "discriminator": 1.0}
        total = sum(weights[k] * v for k, v in terms.items())
        return total, {k: v.detach() for k, v in terms.items()}

    def extra_state(self) -> dict:
        return {"clips": [c.clip_id for c in self.clips], "crop_size": self.clips[0].size,
                "train_frames": int(sum(len(c.train_indices) for c in self.clips))}


def _config_from(cls: type, data: dict, path: Path):
    from .train import ConfigError, config_from_dict

    try:
        return config_from_dict(cls, data)
    except ConfigError as exc:
        raise CheckpointError(path, f"checkpoint config does not fit this facecue ({exc})") from None


def _load_weights(model: nn.Module, weights: dict, path: Path, what: str) -> None:
    try:
        model.load_state_dict(weights)
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(path, f"weights do not match the {what} ({str(exc).splitlines()[0]})") from None


def load_generator(checkpoint: str | Path) -> KeypointGenerator:
    """The generator of a renderer checkpoint (``facecue train renderer``), eval mode, on CPU
    (EMA weights when the run kept them)."""
    path = Path(checkpoint)
    data = load_checkpoint(path, RENDERER_KIND, RENDERER_VERSION)
    config = _config_from(RendererConfig, data["config"], path)
    weights = {k[len("generator."):]: v for k, v in inference_weights(data).items() if k.startswith("generator.")}
    model = KeypointGenerator(config.model)
    _load_weights(model, weights, path, "renderer's generator")
    model.checkpoint_step = int(data["step"])
    return model.eval()


# --- the mapper --------------------------------------------------------------------------------


class MapperNet(nn.Module):
    """(B, 478, D) normalized landmarks -> keypoints (B, K, 2), Jacobians (B, K, 2, 2)."""

    def __init__(self, cfg: MapperModelConfig, num_keypoints: int):
        super().__init__()
        dims = 3 if cfg.use_depth else 2
        self.k = num_keypoints
        n_in, n_out, h = N_LANDMARKS * dims, num_keypoints * 6, cfg.hidden
        self.register_buffer("mean", torch.zeros(N_LANDMARKS, dims))
        self.register_buffer("scale", torch.ones(dims))
        self.inp = nn.Linear(n_in, h)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(h), nn.Linear(h, 2 * h), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(2 * h, h))
            for _ in range(cfg.layers)
        )
        self.norm = nn.LayerNorm(h)
        self.out = nn.Linear(h, n_out)
        self.linear = nn.Linear(n_in, n_out)  # a linear path: most of the mapping is close to linear
        for layer in (self.out, self.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def fit_statistics(self, landmarks: np.ndarray) -> None:
        """Input normalization from (N, 478, D) training landmarks."""
        x = torch.as_tensor(np.asarray(landmarks, np.float32))
        mean = x.mean(0)
        self.mean.copy_(mean)
        self.scale.copy_((x - mean).reshape(-1, x.shape[-1]).std(0).clamp_min(1e-4))

    def forward(self, landmarks: torch.Tensor):
        x = ((landmarks.float() - self.mean) / self.scale).flatten(1)
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        o = (self.out(self.norm(h)) + self.linear(x)).float()
        b = o.shape[0]
        kp = o[:, : 2 * self.k].view(b, self.k, 2)
        jac = torch.eye(2, device=o.device) + o[:, 2 * self.k :].view(b, self.k, 2, 2)
        return kp, jac


class MapperModel(nn.Module):
    """The mapper and the frozen generator whose detector it imitates (the generator rides
    along in the checkpoint so that a mapper checkpoint alone drives the renderer)."""

    def __init__(self, cfg: MapperModelConfig, num_keypoints: int, generator: KeypointGenerator | None = None):
        super().__init__()
        self.cfg = cfg
        self.net = MapperNet(cfg, num_keypoints)
        self.generator = generator
        if generator is not None:
            for p in generator.parameters():
                p.requires_grad_(False)
            generator.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.generator is not None:
            self.generator.eval()  # frozen
        return self

    def map(self, landmarks: torch.Tensor):
        """(B, 478, D) normalized landmarks -> keypoints, Jacobians."""
        return self.net(landmarks)

    def _augment(self, frame: torch.Tensor, landmarks: torch.Tensor):
        """The same random similarity applied to images (B, 3, S, S) and normalized landmarks."""
        cfg, b, dev = self.cfg, frame.shape[0], frame.device
        angle = (torch.rand(b, device=dev) * 2 - 1) * math.radians(cfg.augment_rotation_deg)
        scale = 1.0 + (torch.rand(b, device=dev) * 2 - 1) * cfg.augment_scale
        shift = (torch.rand(b, 2, device=dev) * 2 - 1) * cfg.augment_shift
        cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
        a = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # (B, 2, 2)
        inv = inverse_2x2(a)
        # output pixel z shows input pixel a^-1 (z - shift)
        theta = torch.cat([inv, -(inv @ shift[..., None])], dim=-1)
        grid = F.affine_grid(theta, list(frame.shape), align_corners=False)
        frame = F.grid_sample(frame, grid, padding_mode="reflection", align_corners=False)
        moved = landmarks.clone()
        moved[..., :2] = torch.einsum("bij,bnj->bni", a, landmarks[..., :2]) + shift[:, None]
        if landmarks.shape[-1] > 2:
            moved[..., 2:] = landmarks[..., 2:] * scale[:, None, None]
        return frame, moved

    def forward(self, landmarks, frame=None, keypoints=None, jacobians=None) -> dict[str, torch.Tensor]:
        """Loss terms of a batch: targets from the frozen detector on ``frame`` (B, S, S, 3)
        uint8, or given as ``keypoints`` (B, K, 2) / ``jacobians`` (B, K, 2, 2)."""
        landmarks = landmarks.float()
        if keypoints is None:
            if self.generator is None or frame is None:
                raise ValueError("the mapper needs frames and a generator, or target keypoints")
            image = to_image(frame, self.generator.size)
            cfg = self.cfg
            if self.training and (cfg.augment_rotation_deg > 0 or cfg.augment_scale > 0 or cfg.augment_shift > 0):
                with _no_autocast(image):
                    image, landmarks = self._augment(image, landmarks)
            with torch.no_grad():
                keypoints, jacobians = self.generator.keypoints(image)
        if self.training and self.cfg.landmark_noise > 0:
            landmarks = landmarks + torch.randn_like(landmarks) * self.cfg.landmark_noise
        kp, jac = self.net(landmarks)
        terms = {"keypoints": (kp - keypoints.float()).abs().mean()}
        if jacobians is not None:
            terms["jacobian"] = (jac - jacobians.float()).abs().mean()
        return terms


class MapperTask:
    """Trains the landmark-to-keypoint mapper against a frozen renderer's detector.

    ``generator`` / ``dataset`` replace the renderer checkpoint / the frame cache (tests, or
    precomputed targets: items with ``landmarks`` and ``keypoints`` (+ ``jacobians``)).
    """

    kind = MAPPER_KIND
    version = MAPPER_VERSION

    def __init__(self, config: MapperConfig, clips: Sequence[FrameClip] | None = None, *,
                 generator: KeypointGenerator | None = None, dataset: torch.utils.data.Dataset | None = None,
                 num_keypoints: int | None = None):
        self.config = config
        self.renderer_path = ""
        if generator is None and dataset is None:
            path = Path(config.renderer)
            generator = load_generator(path)
            self.renderer_path = str(path)
        self.generator = generator
        if generator is not None:
            num_keypoints = generator.config.num_keypoints
        if num_keypoints is None:
            raise ValueError("num_keypoints is needed without a generator")
        self.num_keypoints = num_keypoints
        self.dataset = dataset
        self.clips: list[FrameClip] = []
        if dataset is None:
            self.clips = list(clips) if clips is not None else load_frame_cache(config.data.cache)

    def train_dataset(self):
        return self.dataset if self.dataset is not None else FrameLandmarks(self.clips, self.config.model.use_depth)

    def build_model(self, checkpoint: dict | None) -> MapperModel:
        import copy

        frozen = None if self.generator is None else copy.deepcopy(self.generator)
        model = MapperModel(self.config.model, self.num_keypoints, frozen)
        if checkpoint is None:
            ds = self.train_dataset()
            n = len(ds)
            take = np.random.default_rng(0).choice(n, size=min(n, 4096), replace=False)
            model.net.fit_statistics(np.stack([ds[int(i)]["landmarks"].numpy() for i in take]))
        return model

    def loss(self, model, batch, step):
        terms = model(batch["landmarks"], batch.get("frame"), batch.get("keypoints"), batch.get("jacobians"))
        total = terms["keypoints"] + self.config.model.jacobian_weight * terms.get("jacobian", 0.0)
        return total, {k: v.detach() for k, v in terms.items()}

    def extra_state(self) -> dict:
        extra = {"num_keypoints": self.num_keypoints, "renderer_checkpoint": self.renderer_path,
                 "has_generator": self.generator is not None, "clips": [c.clip_id for c in self.clips]}
        if self.generator is not None:
            from .train import config_to_dict

            extra["generator_model"] = config_to_dict(self.generator.config)
        return extra


def load_mapper(checkpoint: str | Path) -> MapperModel:
    """A mapper checkpoint (``facecue train mapper``) with its generator, eval mode, on CPU."""
    path = Path(checkpoint)
    data = load_checkpoint(path, MAPPER_KIND, MAPPER_VERSION)
    config = _config_from(MapperConfig, data["config"], path)
    extra = data.get("extra") or {}
    if not extra.get("has_generator") or "generator_model" not in extra:
        raise CheckpointError(path, "mapper checkpoint holds no generator (it was trained on precomputed targets)")
    gen_cfg = _config_from(GeneratorConfig, extra["generator_model"], path)
    model = MapperModel(config.model, int(extra["num_keypoints"]), KeypointGenerator(gen_cfg))
    _load_weights(model, inference_weights(data), path, "mapper")
    model.checkpoint_step = int(data["step"])
    return model.eval()


def relative_keypoints(kp_source, jac_source, mapped_source, mapped_source_jac, mapped, mapped_jac):
    """FOMM's relative motion: the source's own keypoints moved by the change of the mapped
    keypoints from the source's landmarks to the driving ones (Jacobians likewise)."""
    kp = kp_source + (mapped - mapped_source)
    if jac_source is None:
        return kp, None
    return kp, mapped_jac @ inverse_2x2(mapped_source_jac) @ jac_source


# --- evaluation on held-out frames -------------------------------------------------------------


@torch.no_grad()
def reenact_heldout(model: MapperModel, clips: Sequence[FrameClip], mode: str = "mapper_relative", *,
                    device: str | torch.device = "cpu", batch_size: int = 16, amp: bool = False,
                    max_frames: int | None = None) -> list[dict]:
    """Self-reenactment of every clip's held-out frames from its first training frame.

    mode : ``"detector"`` (driving keypoints found on the real frame: the generator's own
        quality), ``"mapper_relative"`` (from the frame's landmarks, relative to the source: the
        neural renderer's path) or ``"mapper_absolute"``
    Returns one dict per clip: ``clip_id``, ``indices`` (N,), ``pred`` and ``real`` (N, S, S, 3) uint8.
    """
    if mode not in ("detector", "mapper_relative", "mapper_absolute"):
        raise ValueError(f"unknown mode {mode!r}")
    gen = model.generator
    device = torch.device(device)
    use_depth = model.cfg.use_depth
    out = []
    for clip in clips:
        train, held = clip.train_indices, clip.heldout_indices
        if not len(train) or not len(held):
            continue
        if max_frames:
            held = held[:max_frames]
        s = int(train[0])
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            src = to_image(torch.from_numpy(clip.frames[s : s + 1]).to(device), gen.size)
            state = gen.prepare_source(src)
            lmk_s = torch.from_numpy(normalize_landmarks(clip.landmarks[s : s + 1], clip.size, use_depth)).to(device)
            m_s, mj_s = model.map(lmk_s)
            preds = []
            for a in range(0, len(held), batch_size):
                idx = held[a : a + batch_size]
                b = len(idx)
                st = gen.expand_state(state, b)
                if mode == "detector":
                    kp, jac = gen.keypoints(to_image(torch.from_numpy(clip.frames[idx]).to(device), gen.size))
                else:
                    lmk = torch.from_numpy(normalize_landmarks(clip.landmarks[idx], clip.size, use_depth)).to(device)
                    kp, jac = model.map(lmk)
                    if mode == "mapper_relative":
                        kp, jac = relative_keypoints(st["kp"], st["jacobian"], m_s.expand_as(kp), mj_s.expand_as(jac),
                                                     kp, jac)
                    if st["jacobian"] is None:
                        jac = None
                preds.append(to_uint8(gen.animate(st, kp, jac)["prediction"]))
        pred = np.concatenate(preds)
        real = clip.frames[held]
        if real.shape[1] != gen.size:
            real = to_uint8(to_image(torch.from_numpy(real), gen.size))
        out.append({"clip_id": clip.clip_id, "indices": held, "pred": pred, "real": real})
    return out


# --- the renderer ------------------------------------------------------------------------------

_MODEL_CACHE: dict[tuple, MapperModel] = {}
_MODEL_CACHE_LOCK = threading.Lock()


def _cached_mapper(path: Path) -> MapperModel:
    try:
        st = path.stat()
    except OSError:
        raise CheckpointError(path, "checkpoint not found") from None
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    with _MODEL_CACHE_LOCK:
        if key not in _MODEL_CACHE:
            if len(_MODEL_CACHE) > 2:
                _MODEL_CACHE.clear()
            _MODEL_CACHE[key] = load_mapper(path)
        return _MODEL_CACHE[key]


def feathered_box_mask(size: int, feather: float) -> np.ndarray:
    """(size, size) float32 mask: 1 inside, falling smoothly to 0 over ``feather * size`` px at the edges."""
    ramp = max(1.0, feather * size)
    coords = np.arange(size, dtype=np.float32) + 0.5
    edge = np.minimum(coords, size - coords) / ramp
    t = np.clip(edge, 0.0, 1.0)
    one_d = t * t * (3 - 2 * t)
    return np.outer(one_d, one_d).astype(np.float32)


def _make_neural_renderer_class():
    from .render import Renderer, check_landmarks, check_portrait

    class NeuralRenderer(Renderer):
        """The trained generator driven by landmarks through the mapper (see the module docstring).

        Parameters
        ----------
        checkpoint : a mapper checkpoint (``facecue train mapper``; it holds the generator too)
        device : "cpu", "cuda" or "auto"
        relative : drive with the change of the mapped keypoints from the portrait's landmarks
            (default; cancels the mapper's per-face bias) instead of the mapped keypoints themselves
        source_keypoints : "detector" (the portrait's keypoints found on it) or "mapper"
        feather : width of the paste-back blend at the crop's border, fraction of the crop
        batch_size : frames generated per forward pass by :func:`facecue.render.render`; default
            16 on a GPU (launch-bound at batch 1), 1 on the CPU (no gain there, more latency)
        """

        name = "neural"

        def __init__(self, *, checkpoint: str | Path | None = None, device: str = "cpu", relative: bool = True,
                     source_keypoints: str = "detector", feather: float = 0.12, batch_size: int | None = None):
            if checkpoint is None:
                raise InputError(None, "the neural renderer needs checkpoint= a mapper checkpoint "
                                 "(train one with 'facecue train renderer', then 'facecue train mapper')")
            if source_keypoints not in ("detector", "mapper"):
                raise InputError(None, f"source_keypoints must be 'detector' or 'mapper', got {source_keypoints!r}")
            if device not in ("cpu", "cuda", "auto"):
                raise InputError(None, f"device must be cpu, cuda or auto, got {device!r}")
            if device == "auto":
                device = "cuda" if torch.cuda.is_available() else "cpu"
            elif device == "cuda" and not torch.cuda.is_available():
                raise InputError(None, "device cuda was asked for, but torch sees no CUDA GPU here: use cpu or auto")
            if batch_size is None:
                batch_size = 16 if device == "cuda" else 1
            if int(batch_size) < 1:
                raise InputError(None, f"batch_size must be at least 1, got {batch_size}")
            self.batch_size = int(batch_size)
            self.model = _cached_mapper(Path(checkpoint))
            self.device = torch.device(device)
            self.model.to(self.device)
            self.relative, self.source_keypoints, self.feather = relative, source_keypoints, float(feather)
            self._state = None

        @torch.no_grad()
        def prepare(self, portrait: np.ndarray, portrait_landmarks: np.ndarray) -> None:
            import cv2

            from .landmarks import alignment_matrix, transform_landmarks

            image = check_portrait(portrait)
            points = check_landmarks(portrait_landmarks, "portrait landmarks")
            gen = self.model.generator
            size = gen.size
            self.matrix = alignment_matrix(points, size)
            shrink = abs(np.linalg.det(self.matrix[:, :2])) < 1
            flags = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
            crop = cv2.warpAffine(image, self.matrix, (size, size), flags=flags, borderMode=cv2.BORDER_REFLECT101)
            self.crop = crop
            src = to_image(torch.from_numpy(crop[None]).to(self.device))
            self._state = gen.prepare_source(src)
            self._mapped_source = self.model.map(self._landmarks_in(points, transform_landmarks))
            if self.source_keypoints == "mapper":
                self._state["kp"], jac = self._mapped_source
                self._state["jacobian"] = jac if self._state["jacobian"] is not None else None
            self.image = image
            height, width = image.shape[:2]
            mask = cv2.warpAffine(feathered_box_mask(size, self.feather), self.matrix, (width, height),
                                  flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                                  borderValue=0)
            ys, xs = np.nonzero(mask > 1e-3)
            if len(xs) == 0:
                raise InputError(None, "the face crop lies outside the portrait")
            self.box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
            x0, y0, x1, y1 = self.box
            self.mask = mask[y0:y1, x0:x1, None]

        def _landmarks_in(self, points: np.ndarray, transform) -> torch.Tensor:
            crop_points = transform(points, self.matrix)
            norm = normalize_landmarks(crop_points, self.model.generator.size, self.model.cfg.use_depth)
            return torch.from_numpy(np.ascontiguousarray(norm[None])).to(self.device)

        @torch.no_grad()
        def render_crops(self, landmarks: Sequence[np.ndarray]) -> np.ndarray:
            """B ``(478, 3)`` landmark arrays (portrait pixels) -> generated aligned crops ``(B, S, S, 3)`` uint8,
            in one forward pass."""
            from .landmarks import transform_landmarks

            if self._state is None:
                raise RuntimeError("call prepare(portrait, portrait_landmarks) before rendering")
            lmk = torch.cat([self._landmarks_in(np.asarray(p, np.float32), transform_landmarks) for p in landmarks])
            kp, jac = self.model.map(lmk)
            gen = self.model.generator
            st = self._state if len(lmk) == 1 else gen.expand_state(self._state, len(lmk))
            if self.relative:
                kp_s, jac_s = self._mapped_source
                kp, jac = relative_keypoints(st["kp"], st["jacobian"], kp_s.expand_as(kp),
                                             None if jac_s is None else jac_s.expand_as(jac), kp, jac)
            if st["jacobian"] is None:
                jac = None
            return to_uint8(gen.animate(st, kp, jac)["prediction"])

        def render_crop(self, landmarks: np.ndarray) -> np.ndarray:
            """``(478, 3)`` landmarks (portrait pixels) -> the generated aligned crop ``(S, S, 3)`` uint8."""
            return self.render_crops([landmarks])[0]

        def _paste(self, crop: np.ndarray) -> np.ndarray:
            import cv2

            x0, y0, x1, y1 = self.box
            shifted = self.matrix.copy()
            shifted[:, 2] += shifted[:, :2] @ np.array([x0, y0], np.float64)  # crop <- box-local pixels
            patch = cv2.warpAffine(crop, shifted, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_REPLICATE)
            frame = self.image.copy()
            region = frame[y0:y1, x0:x1].astype(np.float32)
            frame[y0:y1, x0:x1] = (region + self.mask * (patch.astype(np.float32) - region) + 0.5).astype(np.uint8)
            return frame

        def render_frame(self, landmarks: np.ndarray) -> np.ndarray:
            return self._paste(self.render_crop(landmarks))

        def render_batch(self, landmarks: Sequence[np.ndarray]) -> list[np.ndarray]:
            if not len(landmarks):
                return []
            return [self._paste(crop) for crop in self.render_crops(landmarks)]

    return NeuralRenderer


def __getattr__(name: str):
    # NeuralRenderer subclasses facecue.render.Renderer, whose module imports OpenCV: built on
    # first use so that training needs neither (render.py registers "facecue.neural:NeuralRenderer").
    if name == "NeuralRenderer":
        cls = _make_neural_renderer_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def model_size(model: nn.Module) -> tuple[int, int]:
    """(parameters, bytes of the fp32 state dict incl. buffers)."""
    params = sum(p.numel() for p in model.parameters())
    nbytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    return params, nbytes


__all__ = [
    "FrameClip", "FrameDataConfig", "GeneratorConfig", "KeypointGenerator", "MapperConfig", "MapperModel",
    "MapperModelConfig", "MapperTask", "RendererConfig", "RendererLossConfig", "RendererTask", "load_frame_cache",
    "load_frame_clip", "load_generator", "load_mapper", "preprocess_frames", "reenact_heldout", "relative_keypoints",
    "save_frame_clip",
]
