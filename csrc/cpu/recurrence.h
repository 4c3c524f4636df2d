// The only sequential part of module-major: one period group's k x k recurrence over its own
// ticks, forward and backward. The forward recurrence also computes its tick's input projection
// and its held term (ForwardRecurrence); the backward leaves the weight gradients and what goes
// back to the slower groups to the caller's GEMMs (module_major_cpu.cpp). Batch rows are
// independent, so each thread owns a range of rows and runs all ticks without synchronising.
//
// T is the storage type of the layer's tensors (input, out, h0, grad_output), A the type the
// recurrence computes and keeps its state in: T itself for float32 and float64; float32 for
// bfloat16 and float16 on the CPU (half storage, float32 arithmetic, rounded only where stored).
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>

namespace cwrnn {

// Pointers into contiguous (T, B, H)-shaped tensors and the group's place in them.
template <typename T, typename A = T>
struct GroupRecurrence {
  int64_t steps, batch, hidden;  // T, B, H
  int64_t begin, size;           // the group's columns [begin, begin + size)
  int64_t first, period, ticks;  // ticks at steps first, first + period, ... (ticks of them)
  bool relu;
  const A* diag;                 // forward: W_ii^T (size x size); backward: W_ii
  int64_t diag_stride = 0;       // between rows of diag; 0: size (a contiguous block)
};

// A slower group's held term (module_major.h, HeldTerm): values (ticks + 1, B, width) row-major.
template <typename A>
struct HeldSource {
  const A* values;
  int64_t width;  // the slower group's begin: its term covers hidden rows [0, width)
  int64_t first, period;
};

// A sink: where a faster group's backward adds its deltas, summed per value of a slower group
// that its ticks read (the mirror of HeldSource): sums (ticks + 1, B, width) row-major, written.
template <typename A>
struct HeldSink {
  A* sums;
  int64_t width;  // the slower group's begin
  int64_t first, period;
};

// Forward: h_n = f(W_ih x_{s_n} + bias + held_n + W_ii h_{n-1}) from h_{-1} = h0, where held_n
// sums the slower groups' held terms read at this tick; written into `out` at the step of tick n
// only (the steps it is held, and h0 before the first tick, are left to fill_held_rows).
//   h0: (B, H)   out: (T, B, H)
// The input projection is computed at each tick from `input`: no GEMM, no pre-activation buffer,
// and at small batches it fills the cycles in which the tick waits on its previous state.
template <typename T, typename A = T>
struct ForwardRecurrence : GroupRecurrence<T, A> {
  const T* input = nullptr;      // (T, B, input_size) contiguous
  int64_t input_size = 0;
  const A* weight_ih_t = nullptr;  // (input_size, size): the group's columns of W_ih^T, rows
  int64_t weight_ih_stride = 0;    // weight_ih_stride apart
  const A* bias = nullptr;       // (size), or null: no bias
  const T* h0;
  T* out;
  const HeldSource<A>* held = nullptr;
  int64_t num_held = 0;
  // If set, this group's own held term for the faster groups (HeldSource), written as it goes:
  // held_out (ticks + 1, B, begin), value m = (h0's columns, then the state after tick m - 1)
  // times column_t (size, begin), W_hh[0:begin, the group's columns]^T, rows column_stride apart.
  A* held_out = nullptr;
  const A* column_t = nullptr;
  int64_t column_stride = 0;
  // Only ticks [tick_begin, tick_end) (tick_end < 0: to the last), to run a group in pieces of
  // time. If `carry` (B, size) is set, the state after the last tick run is written to it. The
  // first piece (`starts`) begins from h0 and writes held_out's value 0; a later one begins from
  // `carry` and leaves value 0 alone (a faster group may be reading it on another thread).
  int64_t tick_begin = 0, tick_end = -1;
  A* carry = nullptr;
  bool starts = true;
};

// The gradient reaching each state from outside the group's own recurrence, read where it lies
// (no (T + 1, B, H) buffer of it is assembled). Null pointers are zeros.
template <typename T, typename A = T>
struct UpstreamGradient {
  const T* output = nullptr;  // grad_output (T, B, H) with these element strides
  int64_t output_strides[3] = {0, 0, 0};
  const T* h_n = nullptr;  // grad_h_n (B, H) contiguous, for the state after step lengths[b] - 1
  const int64_t* lengths = nullptr;  // (B): grad_output rows past a sequence's length are not read
  const A* held = nullptr;  // (ticks + 1, B, size): what faster groups sent to value m of this group
};

// Backward, from the last tick to the first:
//   dh_n    = `upstream` summed over the states after the steps h_n is held + W_ii^T delta_{n+1}
//   delta_n = dh_n * f'(.)
//   grad_h0 = `upstream` for h0 and the states held before the first tick + W_ii^T delta_0
//   delta: (ticks, B, size) out     grad_h0: (B, H) out (only the group's columns are written)
template <typename T, typename A = T>
struct BackwardRecurrence : GroupRecurrence<T, A> {
  const T* out;
  UpstreamGradient<T, A> upstream;
  A* delta;
  A* grad_h0;
  // Each delta_n is also added to sinks[j].sums[m] at this group's columns, m = the value of
  // slower group j read at tick n.
  const HeldSink<A>* sinks = nullptr;
  int64_t num_sinks = 0;
  A* values = nullptr;  // if set, (ticks + 1, B, size): entry n + 1 gets out at tick n (entry 0,
                        // h0's columns, is left to the caller)
};

// A group's held rows: the rows of out (T, B, H) at which it does not tick, each holding its state
// after its last tick before that step, or h0's columns before its first tick. The forward
// recurrences write only the tick rows; fill_held_rows writes the held rows for steps [s0, s1) and
// batch rows [b0, b1), every group of a row in one pass, so that the writes run along whole rows
// instead of one group's columns at a time.
struct HeldRowsGroup {
  int64_t begin, size;           // columns [begin, begin + size)
  int64_t first, period, ticks;  // as GroupRecurrence
};

template <typename T>
struct HeldRows {
  int64_t steps, batch, hidden;  // T, B, H
  const HeldRowsGroup* groups;
  int64_t num_groups;
  const T* h0;  // (B, H)
  T* out;       // (T, B, H)
};

void fill_held_rows(const HeldRows<float>& p, int64_t s0, int64_t s1, int64_t b0, int64_t b1);
void fill_held_rows(const HeldRows<double>& p, int64_t s0, int64_t s1, int64_t b0, int64_t b1);
void fill_held_rows(const HeldRows<c10::BFloat16>& p, int64_t s0, int64_t s1, int64_t b0, int64_t b1);
void fill_held_rows(const HeldRows<c10::Half>& p, int64_t s0, int64_t s1, int64_t b0, int64_t b1);

void run_forward_recurrence(const ForwardRecurrence<float>& r, int64_t b0, int64_t b1);
void run_forward_recurrence(const ForwardRecurrence<double>& r, int64_t b0, int64_t b1);
void run_forward_recurrence(const ForwardRecurrence<c10::BFloat16, float>& r, int64_t b0, int64_t b1);
void run_forward_recurrence(const ForwardRecurrence<c10::Half, float>& r, int64_t b0, int64_t b1);
void run_backward_recurrence(const BackwardRecurrence<float>& r, int64_t b0, int64_t b1);
void run_backward_recurrence(const BackwardRecurrence<double>& r, int64_t b0, int64_t b1);
void run_backward_recurrence(const BackwardRecurrence<c10::BFloat16, float>& r, int64_t b0, int64_t b1);
void run_backward_recurrence(const BackwardRecurrence<c10::Half, float>& r, int64_t b0, int64_t b1);

}  // namespace cwrnn
