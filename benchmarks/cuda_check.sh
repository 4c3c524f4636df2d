#!/usr/bin/env bash
# On a machine with an NVIDIA GPU (written for the lent H100/H200 machines: torch + CUDA + nvcc,
# no network): build the extension with its CUDA kernels, record their resource usage, run
# tests/test_cuda.py and the CPU emulation test, then run benchmarks/sanitize_case.py (a small
# forward + backward through every kernel variant and dtype) under compute-sanitizer memcheck,
# racecheck, initcheck and synccheck. Logs go to $OUT (default benchmarks/out/cuda_check, which
# git ignores); a summary table is printed last. Exit code 0 only if every step passed.
#
#   OUT=/some/dir benchmarks/cuda_check.sh            # everything
#   SKIP_BUILD=1 benchmarks/cuda_check.sh             # reuse an existing build
#   PYTEST_ARGS="-x -k float32" benchmarks/cuda_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/benchmarks/out/cuda_check}"  # ignored by git
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"   # one arch: H100/H200
export MAX_JOBS="${MAX_JOBS:-8}"
# Older torch refuses cuBLAS under use_deterministic_algorithms(True) without it.
export CUBLAS_WORKSPACE_CONFIG="${CUBLAS_WORKSPACE_CONFIG:-:4096:8}"

summary=()
failed=0
# step NAME COMMAND...: run, log to $OUT/NAME.log, show its tail, record rc and seconds.
step() {
  local name=$1 start rc
  shift
  echo "=== $name: $*"
  start=$(date +%s)
  "$@" >"$OUT/$name.log" 2>&1
  rc=$?
  tail -n 15 "$OUT/$name.log"
  summary+=("$(printf '%-22s rc=%-3s %5ss' "$name" "$rc" "$(($(date +%s) - start))")")
  [ "$rc" -eq 0 ] || failed=1
  return "$rc"
}

{
  nvidia-smi
  "$PY" -c "import torch, sys; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
  "$CUDA_HOME/bin/nvcc" --version
} >"$OUT/environment.txt" 2>&1
head -n 20 "$OUT/environment.txt"

if [ "${SKIP_BUILD:-0}" != "1" ]; then
  step build "$PY" -m pip install --no-build-isolation --no-deps -v -e .
fi
step kernels_loaded "$PY" -c "import cwrnn_ext, sys; print('cuda_kernels_available', cwrnn_ext.cuda_kernels_available()); sys.exit(0 if cwrnn_ext.cuda_kernels_available() else 1)"

CUOBJDUMP=$(command -v cuobjdump || echo "$CUDA_HOME/bin/cuobjdump")
SO=$(ls cwrnn_ext/_C*.so 2>/dev/null | head -n 1)
if [ -x "$CUOBJDUMP" ] && [ -n "$SO" ]; then
  step resource_usage "$CUOBJDUMP" --dump-resource-usage "$SO"
fi

# shellcheck disable=SC2086
step test_cuda "$PY" -m pytest -q -rs tests/test_cuda.py --junitxml="$OUT/test_cuda.xml" ${PYTEST_ARGS:-}
step test_emulation "$PY" -m pytest -q tests/test_cuda_emulation.py

SANITIZER=$(command -v compute-sanitizer || ls "$CUDA_HOME/bin/compute-sanitizer" \
  "$CUDA_HOME/compute-sanitizer/compute-sanitizer" 2>/dev/null | head -n 1)
if [ -z "$SANITIZER" ]; then
  echo "compute-sanitizer not found under $CUDA_HOME"
  summary+=("compute-sanitizer      NOT FOUND")
  failed=1
else
  # Without the caching allocator every tensor is its own allocation, so memcheck sees accesses
  # past a tensor's end (inside a cached block they would land in memory torch owns).
  for tool in memcheck racecheck initcheck synccheck; do
    step "sanitizer_$tool" env PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$SANITIZER" --tool "$tool" \
      --error-exitcode 3 --print-limit 50 "$PY" benchmarks/sanitize_case.py
  done
fi

echo
echo "=== summary (logs in $OUT)"
printf '%s\n' "${summary[@]}" | tee "$OUT/summary.txt"
exit "$failed"
