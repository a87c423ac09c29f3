"""Export a stage-1 training checkpoint as the small inference checkpoint bundled in the package.

Usage: python scripts/export_stage1.py RUN/last.pt [--out src/facecue/assets/stage1.pt] [--half]
           [--teacher cache/teacher/teacher.json]

Keeps what inference needs (kind, version, config, step, the EMA weights stored as "model", the
trainer's extra state with the teacher's emotion settings) and
drops the optimizer, scheduler, RNG and EMA copies; with --half stores floating weights as
float16 (they are cast back to float32 when loaded).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from facecue.io import atomic_path  # noqa: E402
from facecue.stage1 import STAGE1_KIND, STAGE1_VERSION, load_stage1, read_teacher_settings  # noqa: E402
from facecue.train import inference_weights, load_checkpoint  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "src" / "facecue" / "assets" / "stage1.pt")
    parser.add_argument("--half", action="store_true")
    parser.add_argument("--teacher", type=Path, help="the training cache's teacher settings (teacher.json), stored "
                        "in the export when the run's checkpoint lacks them (runs made before the trainer kept them)")
    args = parser.parse_args()
    data = load_checkpoint(args.checkpoint, STAGE1_KIND, STAGE1_VERSION)
    weights = {k: v.detach().clone() for k, v in inference_weights(data).items()}
    if args.half:
        weights = {k: (v.half() if v.is_floating_point() else v) for k, v in weights.items()}
    slim = {"kind": data["kind"], "version": data["version"], "config": data["config"], "step": data["step"],
            "model": weights, "ema": None, "exported_from": str(args.checkpoint)}
    for key in ("metrics", "extra"):
        if key in data:
            slim[key] = data[key]
    if args.teacher is not None and not slim.get("extra", {}).get("teacher"):
        slim["extra"] = {**slim.get("extra", {}), "teacher": read_teacher_settings(args.teacher)}
    with atomic_path(args.out) as tmp:
        torch.save(slim, tmp)
    model = load_stage1(args.out)  # proves the exported file loads
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB, step {model.checkpoint_step})")


if __name__ == "__main__":
    main()
