#!/usr/bin/env bash
# NOT YET RUN ON A GPU: no session has had one (benchmarks/gpu/README.md).
# Everything to run first on a machine with an NVIDIA GPU (written for the lent H100/H200 machines:
# torch + CUDA + nvcc, no network), in one call of under 10 minutes: build the extension with its
# CUDA kernels (sm_90), record their resource usage, a quick correctness run, the CUDA-graph and
# sync-debug tests, the speed table against cuDNN nn.RNN / nn.LSTM (benchmarks/gpu/cuda_speed.py), the
# whole of tests/test_cuda.py, then benchmarks/gpu/sanitize_case.py (every kernel variant and dtype)
# under compute-sanitizer memcheck, racecheck, initcheck and synccheck.
#
# Every step has a time limit inside an overall deadline (DEADLINE seconds, default 560), so that
# the most important results come back even when a later step is slow. Logs and results go to
# $OUT (default benchmarks/out/cuda_check, which git ignores); a summary table is printed last.
# Exit code 0 only if every step passed.
#
#   OUT=/some/dir benchmarks/gpu/cuda_check.sh            # everything
#   SKIP_BUILD=1 benchmarks/gpu/cuda_check.sh             # reuse an existing build
#   RUN_EMULATION=1 benchmarks/gpu/cuda_check.sh          # also the CPU emulation test (CI runs it anyway)
#   PYTEST_ARGS="-x -k float32" benchmarks/gpu/cuda_check.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
START=$(date +%s)
DEADLINE="${DEADLINE:-560}"
OUT="${OUT:-$PWD/benchmarks/out/cuda_check}"  # ignored by git
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
export PATH="$CUDA_HOME/bin:$PATH"
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"   # one arch: H100/H200
export MAX_JOBS="${MAX_JOBS:-16}"
# Older torch refuses cuBLAS under use_deterministic_algorithms(True) without it.
export CUBLAS_WORKSPACE_CONFIG="${CUBLAS_WORKSPACE_CONFIG:-:4096:8}"

summary=()
failed=0
# step NAME LIMIT COMMAND...: run with at most LIMIT seconds (less if the deadline is nearer), log
# to $OUT/NAME.log, show its tail, record the exit code and seconds (124: out of time).
step() {
  local name=$1 limit=$2 start rc left
  shift 2
  left=$((DEADLINE - ($(date +%s) - START)))
  if [ "$left" -lt 20 ]; then
    summary+=("$(printf '%-22s skipped (deadline)' "$name")")
    failed=1
    return 1
  fi
  [ "$limit" -gt "$((left - 10))" ] && limit=$((left - 10))
  echo "=== $name (limit ${limit}s): $*"
  start=$(date +%s)
  timeout --kill-after=5 "$limit" "$@" >"$OUT/$name.log" 2>&1
  rc=$?
  tail -n 15 "$OUT/$name.log"
  summary+=("$(printf '%-22s rc=%-3s %5ss' "$name" "$rc" "$(($(date +%s) - start))")")
  [ "$rc" -eq 0 ] || failed=1
  return "$rc"
}

{
  nvidia-smi
  "$PY" -c "import torch, sys; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
  nvcc --version
} >"$OUT/environment.txt" 2>&1
head -n 20 "$OUT/environment.txt"

if [ "${SKIP_BUILD:-0}" != "1" ]; then
  step build 300 "$PY" -m pip install --no-build-isolation --no-deps -v -e .
fi
step kernels_loaded 60 "$PY" -c "import cwrnn_ext, sys; print('cuda_kernels_available', cwrnn_ext.cuda_kernels_available()); sys.exit(0 if cwrnn_ext.cuda_kernels_available() else 1)"

# Registers, stack (spills), shared memory of every kernel, and the SASS for reading offline.
SO=$(ls cwrnn_ext/_C*.so 2>/dev/null | head -n 1)
if command -v cuobjdump >/dev/null && [ -n "$SO" ]; then
  step resource_usage 60 cuobjdump --dump-resource-usage "$SO"
  cuobjdump -sass "$SO" >"$OUT/kernels.sass" 2>&1
fi

step smoke 120 "$PY" benchmarks/gpu/sanitize_case.py
# shellcheck disable=SC2086
step graph_and_sync 120 "$PY" -m pytest -q -rs tests/test_cuda.py -k "graph or sync" ${PYTEST_ARGS:-}
step speed 150 "$PY" -m benchmarks.gpu.cuda_speed --out "$OUT"
# shellcheck disable=SC2086
step test_cuda 240 "$PY" -m pytest -q -rs tests/test_cuda.py --junitxml="$OUT/test_cuda.xml" ${PYTEST_ARGS:-}

SANITIZER=$(command -v compute-sanitizer || ls "$CUDA_HOME/compute-sanitizer/compute-sanitizer" 2>/dev/null | head -n 1)
if [ -z "$SANITIZER" ]; then
  echo "compute-sanitizer not found under $CUDA_HOME"
  summary+=("compute-sanitizer      NOT FOUND")
  failed=1
else
  # Without the caching allocator every tensor is its own allocation, so memcheck sees accesses
  # past a tensor's end (inside a cached block they would land in memory torch owns).
  for tool in memcheck racecheck initcheck synccheck; do
    step "sanitizer_$tool" 120 env PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$SANITIZER" --tool "$tool" \
      --error-exitcode 3 --print-limit 50 "$PY" benchmarks/gpu/sanitize_case.py
  done
fi
if [ "${RUN_EMULATION:-0}" = "1" ]; then
  step test_emulation 300 "$PY" -m pytest -q tests/test_cuda_emulation.py
fi

echo
echo "=== summary (logs in $OUT; $(($(date +%s) - START))s)"
printf '%s\n' "${summary[@]}" | tee "$OUT/summary.txt"
[ -f "$OUT/speed.log" ] && grep -E "^ *[0-9]+ +[0-9]+ \||H +B" "$OUT/speed.log"
exit "$failed"
