#!/usr/bin/env bash
# The project's GPU checks in one run, for a machine with a CUDA GPU (at most about 5 minutes):
#   bash benchmarks/gpu_check.sh [OUT_DIR]        (default: $OUT if set, else gpu-results/)
# 1. the GPU tests (tests/test_gpu.py: CUDA outputs vs CPU outputs and the reference fixtures, fp32 and fp16);
# 2. `dymn bench --device cuda` for mn10_as, dymn10_as and dymn20_as at batch 1, 8 and 64, in fp32 and fp16.
# Results (test log, two markdown tables, nvidia-smi) go to OUT_DIR; put clips/s (1000 / ms per clip) in the README.
set -uo pipefail
OUT_DIR="${1:-${OUT:-gpu-results}}"
mkdir -p "$OUT_DIR"
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$(cd "$(dirname "$0")/.." && pwd)/src"
status=0
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 3)" || {
  echo "gpu_check: no CUDA device visible to PyTorch ($(python -c 'import torch; print(torch.__version__)'))" >&2
  exit 3
}
nvidia-smi > "$OUT_DIR/nvidia-smi.txt" 2>&1 || true
timeout 100 python -m pytest -q tests/test_gpu.py 2>&1 | tee "$OUT_DIR/gpu-tests.txt" || status=1
for dtype in float32 float16; do
  timeout 90 python -m dymn.cli bench --device cuda --models mn10_as,dymn10_as,dymn20_as --batch 1,8,64 \
    --dtype "$dtype" --repeats 3 --threads 0 -o "$OUT_DIR/bench-cuda-$dtype.md" 2>>"$OUT_DIR/bench.log" || status=1
  cat "$OUT_DIR/bench-cuda-$dtype.md" 2>/dev/null
done
exit $status
