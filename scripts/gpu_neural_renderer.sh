#!/usr/bin/env bash
# Train + measure the neural stage 2 (keypoint generator, landmark->keypoint mapper) on one GPU.
#
# Before (on the CPU machine, which has MediaPipe / PyAV):
#   PYTHONPATH=src .venv/bin/python scripts/prepare_gpu_cache.py      # -> .gpu_cache/ (~31 MB, git-excluded)
# On the GPU machine, from the repository root, with .gpu_cache carried:
#   bash scripts/gpu_neural_renderer.sh                               # ~6.5 min; results in $OUT
# Smoke test of the same code path on a CPU (seconds):
#   OUT=out/gpu_smoke bash scripts/gpu_neural_renderer.sh --device cpu --steps 5 --mapper-steps 5 --max-eval-frames 2
# After (back on the CPU machine): F-LMD / M-LMD of the generated held-out frames
#   PYTHONPATH=src .venv/bin/python benchmarks/neural_lmd.py <files_at of the run>
#
# Needs python3 with torch (CUDA), numpy, scipy, PyYAML, tensorboard, matplotlib (Pillow);
# not MediaPipe, PyAV, OpenCV or tqdm. Extra arguments go to benchmarks/neural_gpu_run.py
# (--generator-seconds 240 --mapper-seconds 40 by default).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -d .gpu_cache ] || [ -z "$(ls .gpu_cache/*.npz 2>/dev/null)" ]; then
    echo "no .gpu_cache/*.npz here: build it with scripts/prepare_gpu_cache.py and carry .gpu_cache" >&2
    exit 2
fi
OUT="${OUT:-out/gpu_neural}"
mkdir -p "$OUT"
"$PY" -c "import torch, numpy, scipy, yaml; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'numpy', numpy.__version__)"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv,noheader || true
PYTHONPATH=src exec "$PY" benchmarks/neural_gpu_run.py --cache .gpu_cache --out "$OUT" "$@"
