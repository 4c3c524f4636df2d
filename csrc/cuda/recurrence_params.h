// Parameters of the CUDA recurrence kernels (recurrence_kernels.cuh), passed by value: one period
// group's k x k recurrence over all of its ticks, with the slower groups' held terms fused in.
// Same semantics as the CPU loops (../cpu/recurrence.h); own structs because a kernel takes the
// held terms by value (no host array to point to: a copy to the device would sync the stream).
#pragma once

#include <cstdint>

namespace cwrnn {
namespace cuda {

// Accumulation type: float32 for float32 and the half types, float64 for float64.
template <typename T>
struct AccType {
  using type = float;
};
template <>
struct AccType<double> {
  using type = double;
};
template <typename T>
using acc_type = typename AccType<T>::type;

// The most slower groups one launch fuses (kernel parameter space: 32 bytes each).
constexpr int kMaxHeld = 64;

// A slower group's held term (module_major.h, HeldTerm): values[m] = W_hh[0:width, its columns]
// h^{(m)}, (ticks + 1, B, width) row-major. A tick at step s reads m = 0 if s - 1 < first, else
// (s - 1 - first) / period + 1.
template <typename T>
struct HeldRef {
  T* values;
  int64_t width;
  int64_t first, period;
};

// The group: columns [begin, begin + size) of (steps, batch, hidden) tensors, ticking at steps
// first, first + period, ... (ticks of them). Field names as module_major.h's fill_group expects.
template <typename T>
struct GroupParams {
  int64_t steps, batch, hidden;
  int64_t begin, size;
  int64_t first, period, ticks;
  bool relu;
  // (size x size): element j * size + c is M[c][j], the weight of input unit j in output unit c's
  // sum. Forward: W_ii^T (so M = W_ii); backward: W_ii (so M = W_ii^T).
  const T* diag;
  int num_held;
  HeldRef<T> held[kMaxHeld];  // forward: terms read; backward: sums written (sinks)
};

// h_n = f(pre_n + sum_j held_j[m_j(s_n)] + W_ii h_{n-1}) from h_{-1} = h0, written into out at
// step s_n and held on the steps until the next tick (h0 on the steps before the first).
//   pre: (ticks, B, size)   h0: (B, H)   out: (T, B, H)
template <typename T>
struct ForwardParams : GroupParams<T> {
  const T* pre;
  const T* h0;
  T* out;
};

// From the last tick to the first:
//   delta_n = (G_n + W_ii^T delta_{n+1}) * f'(out at s_n),  G_n = grad_state summed over the rows
//   of the steps h_n is held (s_n + 1 .. min(s_n + period, T));
//   grad_h0 = rows 0 .. min(first, T) of grad_state + W_ii^T delta_0;
// and each delta_n is added into held[j].values[m_j(s_n)] at the group's columns.
//   grad_state: (T + 1, B, H)   delta: (ticks, B, size) out   grad_h0: (B, H) out (group columns)
template <typename T>
struct BackwardParams : GroupParams<T> {
  const T* out;
  const T* grad_state;
  T* delta;
  T* grad_h0;
};

}  // namespace cuda
}  // namespace cwrnn
