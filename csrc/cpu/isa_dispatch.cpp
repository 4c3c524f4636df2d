#include "isa_dispatch.h"

#include <ATen/Version.h>

#include <string>

namespace cwrnn {
namespace {

CpuKernels choose_cpu_kernels() {
#if CWRNN_X86_KERNELS
  // torch's capability says which set the user allows (ATEN_CPU_CAPABILITY lowers it); the CPU's
  // own flags guard against a capability forced above what the CPU has.
  const std::string torch_capability = at::get_cpu_capability();
  __builtin_cpu_init();
  const bool has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                        __builtin_cpu_supports("f16c");
  const bool has_avx512 = has_avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  if (torch_capability == "AVX512" && has_avx512) return CpuKernels::kAvx512;
  if ((torch_capability == "AVX512" || torch_capability == "AVX2") && has_avx2) return CpuKernels::kAvx2;
#endif
  return CpuKernels::kBaseline;
}

}  // namespace

CpuKernels cpu_kernels() {
  static const CpuKernels chosen = choose_cpu_kernels();
  return chosen;
}

const char* cpu_kernels_name() {
  switch (cpu_kernels()) {
    case CpuKernels::kAvx512: return "AVX512";
    case CpuKernels::kAvx2: return "AVX2";
    default: return "DEFAULT";
  }
}

// Each entry point of recurrence.h and step_kernel.h runs the chosen set's.
#if CWRNN_X86_KERNELS
#define CWRNN_DISPATCH(call)                                      \
  switch (cpu_kernels()) {                                        \
    case CpuKernels::kAvx512: return avx512::call;                \
    case CpuKernels::kAvx2: return avx2::call;                    \
    default: return baseline::call;                               \
  }
#else
#define CWRNN_DISPATCH(call) return baseline::call;
#endif

void fill_held_rows(const HeldRows<float>& p, int64_t s0, int64_t s1, int64_t b0, int64_t b1) {
  CWRNN_DISPATCH(fill_held_rows(p, s0, s1, b0, b1))
}
void fill_held_rows(const HeldRows<double>& p, int64_t s0, int64_t s1, int64_t b0, int64_t b1) {
  CWRNN_DISPATCH(fill_held_rows(p, s0, s1, b0, b1))
}
void fill_held_rows(const HeldRows<c10::BFloat16>& p, int64_t s0, int64_t s1, int64_t b0, int64_t b1) {
  CWRNN_DISPATCH(fill_held_rows(p, s0, s1, b0, b1))
}
void fill_held_rows(const HeldRows<c10::Half>& p, int64_t s0, int64_t s1, int64_t b0, int64_t b1) {
  CWRNN_DISPATCH(fill_held_rows(p, s0, s1, b0, b1))
}
void run_forward_recurrence(const ForwardRecurrence<float>& r, int64_t b0, int64_t b1) {
  CWRNN_DISPATCH(run_forward_recurrence(r, b0, b1))
}
void run_forward_recurrence(const ForwardRecurrence<double>& r, int64_t b0, int64_t b1) {
  CWRNN_DISPATCH(run_forward_recurrence(r, b0, b1))
}
void run_forward_recurrence(const ForwardRecurrence<c10::BFloat16, float>& r, int64_t b0, int64_t b1) {
  CWRNN_DISPATCH(run_forward_recurrence(r, b0, b1))
}
void run_forward_recurrence(const ForwardRecurrence<c10::Half, float>& r, int64_t b0, int64_t b1) {
  CWRNN_DISPATCH(run_forward_recurrence(r, b0, b1))
}
void run_backward_recurrence(const BackwardRecurrence<float>& r, int64_t b0, int64_t b1) {
  CWRNN_DISPATCH(run_backward_recurrence(r, b0, b1))
}
void run_backward_recurrence(const BackwardRecurrence<double>& r, int64_t b0, int64_t b1) {
  CWRNN_DISPATCH(run_backward_recurrence(r, b0, b1))
}
void run_backward_recurrence(const BackwardRecurrence<c10::BFloat16, float>& r, int64_t b0, int64_t b1) {
  CWRNN_DISPATCH(run_backward_recurrence(r, b0, b1))
}
void run_backward_recurrence(const BackwardRecurrence<c10::Half, float>& r, int64_t b0, int64_t b1) {
  CWRNN_DISPATCH(run_backward_recurrence(r, b0, b1))
}
void step_group_rows(const StepRows<float>& p, int64_t begin, int64_t r0, int64_t r1, const int64_t* rows,
                     int64_t num_rows) {
  CWRNN_DISPATCH(step_group_rows(p, begin, r0, r1, rows, num_rows))
}
void step_group_rows(const StepRows<double>& p, int64_t begin, int64_t r0, int64_t r1, const int64_t* rows,
                     int64_t num_rows) {
  CWRNN_DISPATCH(step_group_rows(p, begin, r0, r1, rows, num_rows))
}

}  // namespace cwrnn
