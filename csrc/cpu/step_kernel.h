// One time-major step on the CPU: only the rows of the active period groups are computed, each
// reading its allowed columns (its own group and every slower one: hidden columns [begin, H)).
//
// Rows of the batch are addressed through pointers, so the same kernel serves the `step` op
// (x, h, out are rows of (B, .) tensors), and the time-major sequence forward (rows of one time
// step of (T, B, .) tensors, with each sequence's own state when lengths differ).
#pragma once

#include <cstdint>

namespace cwrnn {

template <typename T>
struct StepRows {
  int64_t input_size, hidden;  // I, H
  const T* weight_ih;          // (H, I) row-major
  const T* weight_hh;          // (H, H) row-major
  const T* bias_ih;            // (H) or nullptr
  const T* bias_hh;            // (H) or nullptr
  bool relu;
  const T* const* x;  // x[b]: I values of row b
  const T* const* h;  // h[b]: H values, the state before the step
  T* const* out;      // out[b]: H values, the state after it
};

// out[b][r] = f(bias_ih[r] + bias_hh[r] + W_ih[r, :] x[b] + W_hh[r, begin:H] h[b][begin:H])
// for the batch rows b in rows[0:num_rows] and the hidden rows r in [r0, r1), which lie in the
// group whose columns start at `begin`.
void step_group_rows(const StepRows<float>& p, int64_t begin, int64_t r0, int64_t r1,
                     const int64_t* rows, int64_t num_rows);
void step_group_rows(const StepRows<double>& p, int64_t begin, int64_t r0, int64_t r1,
                     const int64_t* rows, int64_t num_rows);

}  // namespace cwrnn
