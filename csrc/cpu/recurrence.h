// The only sequential part of the module-major schedule: one period group's k x k recurrence over
// its own ticks, forward and backward. Everything else (input and cross-group terms, weight
// gradients) is done in large GEMMs by the caller. Batch rows are independent, so each thread owns
// a range of rows and runs all ticks without synchronising.
#pragma once

#include <cstdint>

namespace cwrnn {

// Pointers into contiguous (T, B, H)-shaped tensors and the group's place in them.
template <typename T>
struct GroupRecurrence {
  int64_t steps, batch, hidden;  // T, B, H
  int64_t begin, size;           // the group's columns [begin, begin + size)
  int64_t first, period, ticks;  // ticks at steps first, first + period, ... (ticks of them)
  bool relu;
  const T* diag;                 // forward: W_ii^T (size x size); backward: W_ii
};

// A slower group's held term (module_major.h, HeldTerm): values (ticks + 1, B, width) row-major.
template <typename T>
struct HeldSource {
  const T* values;
  int64_t width;  // the slower group's begin: its term covers hidden rows [0, width)
  int64_t first, period;
};

// Forward: h_n = f(pre_n + held_n + W_ii h_{n-1}) from h_{-1} = h0, where held_n sums the slower
// groups' held terms read at this tick; written into `out` at tick n and held
// on the following steps until the next tick (and h0 held before the first tick).
//   pre: (ticks, B, size)   h0: (B, H)   out: (T, B, H)
template <typename T>
struct ForwardRecurrence : GroupRecurrence<T> {
  const T* pre;
  const T* h0;
  T* out;
  const HeldSource<T>* held = nullptr;
  int64_t num_held = 0;
};

// Backward, from the last tick to the first:
//   dh_n    = sum of grad_state over the steps h_n is held + W_ii^T delta_{n+1}
//   delta_n = dh_n * f'(.)
//   grad_h0 = sum of grad_state before the first tick (row 0 is h0 itself) + W_ii^T delta_0
// grad_state: (T + 1, B, H), row s + 1 is the gradient reaching the state after step s.
//   delta: (ticks, B, size) out     grad_h0: (B, H) out (only the group's columns are written)
template <typename T>
struct BackwardRecurrence : GroupRecurrence<T> {
  const T* out;
  const T* grad_state;
  T* delta;
  T* grad_h0;
  // Each delta_n is also added to sinks[j].values[m] at this group's columns, m = the value of
  // slower group j read at tick n (values are (ticks_j + 1, B, width) row-major, written here).
  const HeldSource<T>* sinks = nullptr;
  int64_t num_sinks = 0;
};

void run_forward_recurrence(const ForwardRecurrence<float>& r, int64_t b0, int64_t b1);
void run_forward_recurrence(const ForwardRecurrence<double>& r, int64_t b0, int64_t b1);
void run_backward_recurrence(const BackwardRecurrence<float>& r, int64_t b0, int64_t b1);
void run_backward_recurrence(const BackwardRecurrence<double>& r, int64_t b0, int64_t b1);

}  // namespace cwrnn
