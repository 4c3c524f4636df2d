// CUDA kernels for the sequential part of module-major: one period group's k x k
// recurrence over all of its ticks, forward and backward, with the slower groups' held terms
// fused in (semantics: recurrence_params.h, the same as ../cpu/recurrence.h).
//
// A block owns `rows` batch rows and runs every tick for them: rows are independent, so blocks
// never wait for each other (no grid-wide synchronisation; one launch per group and direction).
// Thread layout, the place of W_ii and the shape: launch_shape.h. In each tick a lane
//   1. sums M[c][j] x[j] over its slice of j: 16-byte state reads from shared memory (one
//      broadcast per slice), W_ii from registers, two independent FMA chains per component;
//   2. adds its share of the tick's other terms (forward: pre and the held terms; backward: rows
//      of grad_state), loaded one work item earlier;
//   3. issues the loads of the next work item's terms, which fly during the rest of this tick;
//   4. adds the split lanes' sums with xor shuffles, leaving the same total in each of them;
//   5. applies f (forward) or f' (backward), writes the state for the next tick (double buffer in
//      shared memory, float32 for the half types) and its outputs; then one __syncthreads.
//
// Only kernels here, no CUDA runtime calls (recurrence_launch.cuh launches them), so that
// tests/cuda_emulation can run this very source on the CPU.
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>

#include "launch_shape.h"
#include "recurrence_params.h"

// The block's dynamic shared memory (the CPU emulation defines its own, one per block).
#ifndef CWRNN_DYNAMIC_SHARED_MEMORY
#define CWRNN_DYNAMIC_SHARED_MEMORY(name) extern __shared__ __align__(16) unsigned char name[]
#endif

namespace cwrnn {
namespace cuda {
namespace detail {

__device__ __forceinline__ float tanh_of(float x) { return tanhf(x); }  // libdevice, <= 2 ulp
__device__ __forceinline__ double tanh_of(double x) { return tanh(x); }

// f(x). relu keeps NaN (as torch.relu does): only a value known to be negative becomes 0.
template <typename A>
__device__ __forceinline__ A activate(A x, bool relu) {
  return relu ? (x < A(0) ? A(0) : x) : tanh_of(x);
}

// grad * f'(pre) given h = f(pre): 1 - h^2 for tanh, [h > 0] for relu.
template <typename A>
__device__ __forceinline__ A times_derivative(A grad, A h, bool relu) {
  return relu ? (h > A(0) ? grad : A(0)) : grad * (A(1) - h * h);
}

__device__ __forceinline__ int min_of(int a, int b) { return a < b ? a : b; }

// A first tick as an int: clamped to `steps` (one past any step), which reads the same (a group
// whose period is longer than the sequence may have a first tick far past it).
__device__ __forceinline__ int first_step(int64_t first, int64_t steps) {
  return static_cast<int>(first < steps ? first : steps);
}

// A load through the read-only data path: only for what no thread of the launch writes.
template <typename T>
__device__ __forceinline__ T load_readonly(const T* ptr) {
  return __ldg(ptr);
}
template <>
__device__ __forceinline__ c10::Half load_readonly(const c10::Half* ptr) {
  return c10::Half(__ldg(reinterpret_cast<const unsigned short*>(ptr)), c10::Half::from_bits());
}
template <>
__device__ __forceinline__ c10::BFloat16 load_readonly(const c10::BFloat16* ptr) {
  return c10::BFloat16(__ldg(reinterpret_cast<const unsigned short*>(ptr)), c10::BFloat16::from_bits());
}

// Four consecutive values of shared memory, 4-value aligned, in one 16-byte access (two for double).
__device__ __forceinline__ void load4(const float* p, float (&x)[4]) {
  const float4 v = *reinterpret_cast<const float4*>(p);
  x[0] = v.x, x[1] = v.y, x[2] = v.z, x[3] = v.w;
}
__device__ __forceinline__ void load4(const double* p, double (&x)[4]) {
  const double2 a = reinterpret_cast<const double2*>(p)[0], b = reinterpret_cast<const double2*>(p)[1];
  x[0] = a.x, x[1] = a.y, x[2] = b.x, x[3] = b.y;
}
__device__ __forceinline__ void store4(float* p, const float (&x)[4]) {
  float4 v;
  v.x = x[0], v.y = x[1], v.z = x[2], v.w = x[3];
  *reinterpret_cast<float4*>(p) = v;
}
__device__ __forceinline__ void store4(double* p, const double (&x)[4]) {
  double2 a, b;
  a.x = x[0], a.y = x[1], b.x = x[2], b.y = x[3];
  reinterpret_cast<double2*>(p)[0] = a;
  reinterpret_cast<double2*>(p)[1] = b;
}

// The value of a slower group (first tick `first`, every `period`) that a tick at `step` reads
// (csrc/schedule.h, held_value_index). Steps fit an int (clockwork_cuda.cpp checks T < 2^30), and
// so do periods: the host caps a period at the sequence's length, which ticks the same (ticks_of
// in module_major.cpp; fill_held asserts it). Clocks never reach the kernels, only steps from t0.
__device__ __forceinline__ int held_index(int step, int first, int period) {
  return step - 1 < first ? 0 : (step - 1 - first) / period + 1;
}

// v summed over the `split` consecutive lanes of a unit. The xor exchanges leave the same total,
// bit for bit, in every one of them (each addition's operands only swap sides, and IEEE addition
// commutes). Every lane of the warp takes part.
template <typename A>
__device__ __forceinline__ A sum_over_split(A v, int split) {
  for (int offset = split >> 1; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Where a thread sits (launch_shape.h): its row, and its unit u and slice s among the row's lanes.
struct Lane {
  int row, index, unit, part;
  int64_t b;    // batch row
  bool row_ok;  // b < batch; the other threads of a last, partial block still take every barrier
};

__device__ __forceinline__ Lane lane_of(const LaunchShape& shape, int64_t batch) {
  Lane l;
  const int lanes = shape.lanes();
  l.row = static_cast<int>(threadIdx.x) / lanes;
  l.index = static_cast<int>(threadIdx.x) % lanes;
  l.unit = l.index / shape.split;
  l.part = l.index % shape.split;
  l.b = static_cast<int64_t>(blockIdx.x) * shape.rows + l.row;
  l.row_ok = l.b < batch;
  return l;
}

// Where unit c lives in a state row (launch_shape.h, stride): the chunks a part reads, 4 units
// each (units 4 * (q * split + part) + e), are consecutive, so that its reads take immediate
// offsets; each part's run is padded by one chunk so that the parts a warp reads at once fall in
// different banks. Padding is 0.
struct StateLayout {
  int split, chunks;
  __device__ __forceinline__ int run() const { return 4 * (chunks + 1); }
  __device__ __forceinline__ int position(int c) const {
    const int chunk = c / 4;
    return (chunk % split) * run() + (chunk / split) * 4 + c % 4;
  }
  // The unit at `position`, or -1 in the padding.
  __device__ __forceinline__ int unit_at(int position) const {
    const int part = position / run(), q = position % run() / 4;
    return q < chunks ? (q * split + part) * 4 + position % 4 : -1;
  }
};

// The lane's slice of M (M[c][j] = diag[j * k + c], 0 outside k x k): chunk q of pass p holds
// M[p * units + u][4 * (q * split + s) + e], e < 4. Chunks [0, kQ) live in registers; the others
// in shared memory (kShared; packed [pass][q - kQ][lane][4] so that a warp reads contiguous
// 16-byte words) or are read from diag in global memory every time.
template <typename scalar_t, int kQ, bool kShared>
struct Weights {
  using acc_t = acc_type<scalar_t>;
  acc_t reg[kQ > 0 ? kQ : 1][4];
  const acc_t* shared;
  const scalar_t* diag;
  int k;

  __device__ __forceinline__ acc_t entry(int c, int j) const {
    return c < k && j < k ? static_cast<acc_t>(load_readonly(diag + static_cast<int64_t>(j) * k + c))
                          : acc_t(0);
  }

  // Fills the registers, and shared memory (read only after the caller's next __syncthreads).
  __device__ __forceinline__ void load(const scalar_t* d, acc_t* shared_w, const LaunchShape& shape,
                                       const Lane& l, int size) {
    diag = d;
    shared = shared_w;
    k = size;
#pragma unroll
    for (int q = 0; q < kQ; ++q) {
#pragma unroll
      for (int e = 0; e < 4; ++e) reg[q][e] = entry(l.unit, 4 * (q * shape.split + l.part) + e);
    }
    if constexpr (kShared) {
      const int lanes = shape.lanes(), per_pass = shape.chunks - kQ;
      const int total = shape.passes * per_pass * lanes;
      for (int i = static_cast<int>(threadIdx.x); i < total; i += static_cast<int>(blockDim.x)) {
        const int lane = i % lanes, q = (i / lanes) % per_pass + kQ, pass = i / lanes / per_pass;
        const int c = pass * shape.units + lane / shape.split;
        const int j = 4 * (q * shape.split + lane % shape.split);
        acc_t w[4];
#pragma unroll
        for (int e = 0; e < 4; ++e) w[e] = entry(c, j + e);
        store4(shared_w + 4 * static_cast<int64_t>(i), w);
      }
    }
  }

  // Chunk q >= kQ of pass `pass`.
  __device__ __forceinline__ void chunk(int pass, int q, const LaunchShape& shape, const Lane& l,
                                        acc_t (&w)[4]) const {
    if constexpr (kShared) {
      const int64_t i = (static_cast<int64_t>(pass) * (shape.chunks - kQ) + (q - kQ)) * shape.lanes() + l.index;
      load4(shared + 4 * i, w);
    } else {
      const int c = pass * shape.units + l.unit, j = 4 * (q * shape.split + l.part);
#pragma unroll
      for (int e = 0; e < 4; ++e) w[e] = entry(c, j + e);
    }
  }
};

// sum_j M[c][j] x[j] over the lane's slice of j, c its unit of pass `pass`; `slice` is the lane's
// part of a state row (StateLayout).
template <typename scalar_t, int kQ, bool kShared>
__device__ __forceinline__ acc_type<scalar_t> dot_slice(const Weights<scalar_t, kQ, kShared>& w,
                                                        const acc_type<scalar_t>* slice, int pass,
                                                        const LaunchShape& shape, const Lane& l) {
  using acc_t = acc_type<scalar_t>;
  acc_t sum[2][4] = {};  // two independent chains per component
#pragma unroll
  for (int q = 0; q < kQ; ++q) {
    acc_t h[4];
    load4(slice + 4 * q, h);
#pragma unroll
    for (int e = 0; e < 4; ++e) sum[q & 1][e] += w.reg[q][e] * h[e];
  }
  int q = kQ;
  for (; q + 1 < shape.chunks; q += 2) {
#pragma unroll
    for (int chain = 0; chain < 2; ++chain) {
      acc_t h[4], m[4];
      load4(slice + 4 * (q + chain), h);
      w.chunk(pass, q + chain, shape, l, m);
#pragma unroll
      for (int e = 0; e < 4; ++e) sum[chain][e] += m[e] * h[e];
    }
  }
  if (q < shape.chunks) {
    acc_t h[4], m[4];
    load4(slice + 4 * q, h);
    w.chunk(pass, q, shape, l, m);
#pragma unroll
    for (int e = 0; e < 4; ++e) sum[0][e] += m[e] * h[e];
  }
  return ((sum[0][0] + sum[1][0]) + (sum[0][1] + sum[1][1])) +
         ((sum[0][2] + sum[1][2]) + (sum[0][3] + sum[1][3]));
}

// A walk over the rows of a (., B, width) tensor that ticks read in turn: `at` is this thread's
// element (row b, the group's column of its first-pass unit) of row m, and m moves on when a
// tick's step - 1 reaches first + m * period (a held term: the value a tick at step s reads; the
// input term pre: row n at tick n, with first and period the group's own). It moves at most one
// row per tick: a slower group's period is never shorter than the reading group's
// (clockwork_cuda.cpp checks), and the first tick reads value 0 or 1 (first < period).
template <typename T>
struct Cursor {
  T* at;
  int64_t stride;  // elements between rows
  int next;        // first + m * period
  int period;
  int m;

  __device__ __forceinline__ void start(T* rows, int64_t batch, int64_t width, int64_t offset,
                                        const Lane& l, int first, int period_, int m0) {
    stride = batch * width;
    m = m0;
    at = rows + m0 * stride + l.b * width + offset;
    next = first + m0 * period_;
    period = period_;
  }
  // To the row a tick at `step` reads, from the tick before it (forward) ...
  __device__ __forceinline__ void forward_to(int step) {
    if (next <= step - 1) at += stride, next += period, ++m;
  }
  // ... or after it (backward).
  __device__ __forceinline__ void back_to(int step) {
    if (m > 0 && next - period > step - 1) at -= stride, next -= period, --m;
  }
};

// The held terms past the slots (more than split * kSlots of them): summed as they are loaded.
template <typename scalar_t>
__device__ __forceinline__ acc_type<scalar_t> sum_further_held_terms(const ForwardParams<scalar_t>& p,
                                                                     const LaunchShape& shape,
                                                                     const Lane& l, int step, int c) {
  acc_type<scalar_t> sum = 0;
  for (int j = kSlots * shape.split + l.part; j < p.num_held; j += shape.split) {
    const HeldRef<scalar_t>& h = p.held[j];
    const int64_t m = held_index(step, first_step(h.first, p.steps), static_cast<int>(h.period));
    sum += static_cast<acc_type<scalar_t>>(load_readonly(h.values + (m * p.batch + l.b) * h.width + p.begin + c));
  }
  return sum;
}

// The terms a forward tick adds to unit c's sum besides W_ii h: pre (read by lane part 0) and the
// slower groups' held terms, held term j read by lane part j % split: slots a < kSlots
// (j = a * split + part) in registers, loaded one work item ahead; further held terms (more than
// split * kSlots of them) are summed as they are loaded. Held terms move to a new value rarely,
// so a tick checks once whether any of the lane's does (`soonest`).
template <typename scalar_t>
struct ForwardAddends {
  using acc_t = acc_type<scalar_t>;
  scalar_t value[kSlots];
  scalar_t pre_value;
  Cursor<scalar_t> rows[kSlots];
  bool used[kSlots];
  const scalar_t* pre_at;  // this thread's element of pre's row at the loaded tick
  int64_t pre_stride;
  int soonest;   // no slot moves before a tick's step - 1 reaches it
  bool further;  // this lane has held terms past the slots
  acc_t extra;

  __device__ __forceinline__ void start(const ForwardParams<scalar_t>& p, const LaunchShape& shape,
                                        const Lane& l) {
    pre_stride = p.batch * p.size;
    pre_at = p.pre + l.b * p.size + l.unit;
    soonest = 1 << 30;
#pragma unroll
    for (int a = 0; a < kSlots; ++a) {
      const int j = a * shape.split + l.part;
      used[a] = j < p.num_held;
      if (used[a]) {
        const HeldRef<scalar_t>& h = p.held[j];
        rows[a].start(h.values, p.batch, h.width, p.begin + l.unit, l, first_step(h.first, p.steps),
                      static_cast<int>(h.period), 0);
        soonest = min_of(soonest, rows[a].next);
      }
    }
    further = kSlots * shape.split + l.part < p.num_held;
  }

  // Loads the terms of the lane's unit of `pass` (in the tensors if `ok`) at the tick at `step`;
  // `next_tick`: the tick after the last one loaded (else the same tick, or the first).
  __device__ __forceinline__ void load(const ForwardParams<scalar_t>& p, const LaunchShape& shape,
                                       const Lane& l, int step, int pass, bool next_tick, bool ok) {
    const int offset = pass * shape.units;
    if (next_tick) pre_at += pre_stride;
    if (soonest <= step - 1) {
      soonest = 1 << 30;
#pragma unroll
      for (int a = 0; a < kSlots; ++a) {
        if (used[a]) {
          rows[a].forward_to(step);
          soonest = min_of(soonest, rows[a].next);
        }
      }
    }
    pre_value = ok && l.part == 0 ? load_readonly(pre_at + offset) : scalar_t(0);
#pragma unroll
    for (int a = 0; a < kSlots; ++a) value[a] = ok && used[a] ? load_readonly(rows[a].at + offset) : scalar_t(0);
    extra = acc_t(0);
    if (further && ok) extra = sum_further_held_terms(p, shape, l, step, l.unit + offset);
  }

  __device__ __forceinline__ acc_t sum() const {
    acc_t total = extra + static_cast<acc_t>(pre_value);
#pragma unroll
    for (int a = 0; a < kSlots; ++a) total += static_cast<acc_t>(value[a]);
    return total;
  }
};

// What a backward step adds to unit c's sum besides W_ii^T delta_{n+1}: rows [from, to] of
// grad_state (from = s_n + 1, to = min(s_n + period, T) at tick n; from = 0, to = min(first, T)
// at n = -1, grad_h0's step), and out at tick n for f'. Row from + r belongs to lane part
// r % split, in slots as in ForwardAddends. Steps go down one tick at a time.
template <typename scalar_t>
struct Upstream {
  using acc_t = acc_type<scalar_t>;
  scalar_t value[kSlots];
  scalar_t h;
  acc_t extra;
  const scalar_t* rows_at;  // this thread's element of its lane's first row of tick n (first pass)
  const scalar_t* out_at;   // and of out at step s_n
  int64_t at, row_stride, lane_stride, tick_stride;
  int n;  // the tick the pointers are at

  // `offset`: this thread's offset (row b, its first-pass unit) in a step of a (T, B, H) tensor.
  __device__ __forceinline__ void start(const BackwardParams<scalar_t>& p, const LaunchShape& shape,
                                        const Lane& l, int64_t offset) {
    at = offset;
    row_stride = p.batch * p.hidden;
    lane_stride = shape.split * row_stride;
    tick_stride = p.period * row_stride;
    n = static_cast<int>(p.ticks) - 1;
    const int64_t step = first_step(p.first, p.steps) + n * p.period;
    rows_at = p.grad_state + at + (step + 1 + l.part) * row_stride;
    out_at = p.out + at + step * row_stride;
  }

  // Loads the terms of tick n_load (n or n - 1) for the unit `offset` units past the first pass's.
  __device__ __forceinline__ void load(const BackwardParams<scalar_t>& p, const LaunchShape& shape,
                                       const Lane& l, int n_load, int offset, bool ok) {
    if (n_load < n) rows_at -= tick_stride, out_at -= tick_stride, n = n_load;
    const int steps = static_cast<int>(p.steps), first = first_step(p.first, steps);
    const int step = first + n * static_cast<int>(p.period);
    const int from = (n >= 0 ? step + 1 : 0) + l.part;  // this lane's first row
    const int to = n >= 0 ? min_of(step + static_cast<int>(p.period), steps) : first;
    const scalar_t* const rows = n >= 0 ? rows_at + offset : p.grad_state + at + offset + l.part * row_stride;
#pragma unroll
    for (int a = 0; a < kSlots; ++a)
      value[a] = ok && from + a * shape.split <= to ? load_readonly(rows + a * lane_stride) : scalar_t(0);
    extra = acc_t(0);
    if (ok && from + kSlots * shape.split <= to) {
      for (int r = from + kSlots * shape.split; r <= to; r += shape.split)
        extra += static_cast<acc_t>(load_readonly(p.grad_state + at + offset + r * row_stride));
    }
    h = ok && n >= 0 ? load_readonly(out_at + offset) : scalar_t(0);
  }

  __device__ __forceinline__ acc_t sum() const {
    acc_t total = extra;
#pragma unroll
    for (int a = 0; a < kSlots; ++a) total += static_cast<acc_t>(value[a]);
    return total;
  }
};

// Sinks that are not in slots: each delta added to memory at once.
template <typename scalar_t>
__device__ __forceinline__ void add_to_further_sinks(const BackwardParams<scalar_t>& p,
                                                     const LaunchShape& shape, const Lane& l,
                                                     int first_sink, int step, int c,
                                                     acc_type<scalar_t> d) {
  for (int e = first_sink; e < p.num_held; e += shape.split) {
    const HeldRef<scalar_t>& h = p.held[e];
    const int64_t m = held_index(step, first_step(h.first, p.steps), static_cast<int>(h.period));
    scalar_t* const sum = h.values + (m * p.batch + l.b) * h.width + p.begin + c;
    *sum = static_cast<scalar_t>(static_cast<acc_type<scalar_t>>(*sum) + d);
  }
}

// Each delta_n goes into sink e (p.held[e]) at value m = held_index(s_n) of its row b, unit c.
// Sink e belongs to lane part e % split. With one pass, slot a (e = a * split + part) sums a run
// of ticks that read the same m in a register and adds the run to memory when m changes and at
// the end: each element has one owning thread (no atomics), and the additions come in the order
// of the CPU loop. With several passes (no registers per pass), and for sinks past the slots,
// each delta is added to memory at once.
template <typename scalar_t>
struct Sinks {
  using acc_t = acc_type<scalar_t>;
  acc_t run[kSlots];
  Cursor<scalar_t> rows[kSlots];
  bool used[kSlots];
  int further;  // this lane's first sink past the slots
  int latest;   // no slot moves back unless a tick's step - 1 is below it

  __device__ __forceinline__ int low_of(const Cursor<scalar_t>& c) const {
    return c.m > 0 ? c.next - c.period : -(1 << 30);  // value m is read from step low + 1 on
  }

  // Before the last tick.
  __device__ __forceinline__ void start(const BackwardParams<scalar_t>& p, const LaunchShape& shape,
                                        const Lane& l, bool ok) {
    const int capacity = shape.split * kSlots;
    const int slotted = shape.passes == 1 && p.ticks > 0 ? (p.num_held < capacity ? p.num_held : capacity) : 0;
    further = l.part + (slotted + shape.split - 1 - l.part) / shape.split * shape.split;
    const int step = static_cast<int>(p.first + (p.ticks - 1) * p.period);
    latest = -(1 << 30);
#pragma unroll
    for (int a = 0; a < kSlots; ++a) {
      const int e = a * shape.split + l.part;
      run[a] = acc_t(0);
      used[a] = e < slotted;
      if (used[a]) {
        const HeldRef<scalar_t>& h = p.held[e];
        const int first = first_step(h.first, p.steps), period = static_cast<int>(h.period);
        rows[a].start(h.values, p.batch, h.width, p.begin + l.unit, l, first, period,
                      held_index(step, first, period));
        if (ok) run[a] = static_cast<acc_t>(*rows[a].at);
        latest = latest > low_of(rows[a]) ? latest : low_of(rows[a]);
      }
    }
  }

  __device__ __forceinline__ void add(const BackwardParams<scalar_t>& p, const LaunchShape& shape,
                                      const Lane& l, int step, int c, acc_t d) {
#pragma unroll
    for (int a = 0; a < kSlots; ++a) {
      if (used[a]) run[a] += d;
    }
    if (further < p.num_held) add_to_further_sinks(p, shape, l, further, step, c, d);
  }

  // After a tick, before the one at `step` (ticks go down); `last`: after the last one, where
  // every run is added to memory.
  __device__ __forceinline__ void advance(bool ok, int step, bool last) {
    if (!last && step - 1 >= latest) return;  // no value changes
    latest = -(1 << 30);
#pragma unroll
    for (int a = 0; a < kSlots; ++a) {
      if (!used[a]) continue;
      Cursor<scalar_t> moved = rows[a];
      if (!last) moved.back_to(step);
      if (last || moved.m != rows[a].m) {
        if (ok) *rows[a].at = static_cast<scalar_t>(run[a]);
        rows[a] = moved;
        if (!last) run[a] = ok ? static_cast<acc_t>(*moved.at) : acc_t(0);
      }
      latest = latest > low_of(rows[a]) ? latest : low_of(rows[a]);
    }
  }
};

// ---------------------------------------------------------------------------------------------
// A kernel's thread limit: the big register kernels keep 64 floats of W_ii per thread.
template <int kQ>
constexpr int max_threads_of() {
  return kQ > kSmallRegChunks ? kBigThreads : kMaxThreads;
}

template <typename scalar_t, int kQ, bool kShared>
__global__ void __launch_bounds__(max_threads_of<kQ>(), 1)
    forward_recurrence_kernel(const ForwardParams<scalar_t> p, const LaunchShape shape) {
  using acc_t = acc_type<scalar_t>;
  CWRNN_DYNAMIC_SHARED_MEMORY(shared_bytes);
  const Lane l = lane_of(shape, p.batch);
  const StateLayout layout{shape.split, shape.chunks};
  const int k = static_cast<int>(p.size), stride = shape.stride(), split = shape.split;
  const int passes = kQ > 0 ? 1 : shape.passes;  // the register kernels run one pass
  const int T = static_cast<int>(p.steps), period = static_cast<int>(p.period);
  const int64_t row_stride = p.batch * p.hidden;  // between steps of out
  acc_t* const state = reinterpret_cast<acc_t*>(shared_bytes);  // [2][rows][stride]
  Weights<scalar_t, kQ, kShared> w;
  w.load(p.diag, state + 2 * shape.rows * stride, shape, l, k);
  scalar_t* const out = p.out + l.b * p.hidden + p.begin;  // unit c at step t: out[t * row_stride + c]

  // The state before the first tick is h0 (held on the steps before it); the padding is 0 in
  // both buffers, and so is the state of rows past the batch.
  acc_t* const first_buffer = state + l.row * stride;
  acc_t* const second_buffer = state + (shape.rows + l.row) * stride;
  const int before_first = first_step(p.first, p.steps);
  for (int i = l.index; i < stride; i += shape.lanes()) {
    const int c = layout.unit_at(i);
    if (c < 0 || c >= k) {
      first_buffer[i] = second_buffer[i] = acc_t(0);
    } else if (!l.row_ok) {
      first_buffer[i] = acc_t(0);
    } else {
      const scalar_t v = p.h0[l.b * p.hidden + p.begin + c];
      first_buffer[i] = static_cast<acc_t>(v);
      for (int t = 0; t < before_first; ++t) out[t * row_stride + c] = v;
    }
  }
  const int slice = l.part * layout.run();  // this lane's part of a state row
  const int own = layout.position(l.unit);  // its unit's place in a state row (first pass)
  const bool own_ok = l.row_ok && l.unit < k;
  const int64_t lane_step = split * row_stride, tick_step = period * row_stride;
  scalar_t* out_tick = out + l.unit + static_cast<int64_t>(first_step(p.first, p.steps) + l.part) * row_stride;  // the lane's first step of a tick
  ForwardAddends<scalar_t> terms;
  terms.start(p, shape, l);
  if (p.ticks > 0) terms.load(p, shape, l, first_step(p.first, p.steps), 0, false, own_ok);
  __syncthreads();

  const acc_t* prev = first_buffer;
  acc_t* next = second_buffer;
  const int ticks = static_cast<int>(p.ticks);
  for (int n = 0, s = first_step(p.first, p.steps); n < ticks; ++n, s += period) {
    const int held_until = min_of(s + period, T);
    for (int pass = 0; pass < passes; ++pass) {
      const int c = pass * shape.units + l.unit;
      const acc_t partial = dot_slice(w, prev + slice, pass, shape, l) + terms.sum();
      if (passes == 1) {  // the next work item: tick n + 1, or the next pass of this one
        if (n + 1 < ticks) terms.load(p, shape, l, s + period, 0, true, own_ok);
      } else if (pass + 1 < passes) {
        terms.load(p, shape, l, s, pass + 1, false, l.row_ok && c + shape.units < k);
      } else if (n + 1 < ticks) {
        terms.load(p, shape, l, s + period, 0, true, own_ok);
      }
      const acc_t h = activate(sum_over_split(partial, split), p.relu);
      if (c < k) {
        if (l.part == 0) next[passes == 1 ? own : layout.position(c)] = h;  // unrounded, for the next tick
        if (l.row_ok) {
          const scalar_t v = static_cast<scalar_t>(h);
          scalar_t* o = out_tick + (c - l.unit);
          if (period == 1) {  // the fastest group's many ticks: one step each
            if (l.part == 0) *o = v;
          } else {
            for (int t = s + l.part; t < held_until; t += split, o += lane_step) *o = v;
          }
        }
      }
    }
    out_tick += tick_step;
    __syncthreads();  // the end of the tick: `next` complete, `prev` free to be overwritten
    const acc_t* const done = next;
    next = const_cast<acc_t*>(prev);
    prev = done;
  }
}

// ---------------------------------------------------------------------------------------------
// Backward, last tick first; step n = -1 computes grad_h0. The state buffers hold delta_{n+1}.
template <typename scalar_t, int kQ, bool kShared>
__global__ void __launch_bounds__(max_threads_of<kQ>(), 1)
    backward_recurrence_kernel(const BackwardParams<scalar_t> p, const LaunchShape shape) {
  using acc_t = acc_type<scalar_t>;
  CWRNN_DYNAMIC_SHARED_MEMORY(shared_bytes);
  const Lane l = lane_of(shape, p.batch);
  const StateLayout layout{shape.split, shape.chunks};
  const int k = static_cast<int>(p.size), stride = shape.stride(), split = shape.split;
  const int passes = kQ > 0 ? 1 : shape.passes;  // the register kernels run one pass
  const int period = static_cast<int>(p.period), ticks = static_cast<int>(p.ticks);
  acc_t* const state = reinterpret_cast<acc_t*>(shared_bytes);  // [2][rows][stride]
  Weights<scalar_t, kQ, kShared> w;
  w.load(p.diag, state + 2 * shape.rows * stride, shape, l, k);
  const int64_t at = l.b * p.hidden + p.begin + l.unit;  // offset of the first-pass unit in a step
  const bool first_ok = l.row_ok && l.unit < k;

  // Nothing comes back through W_ii to the last tick (its step skips the product); the padding
  // of both buffers is 0.
  for (int i = l.index; i < stride; i += shape.lanes()) {
    const int c = layout.unit_at(i);
    if (c < 0 || c >= k) state[l.row * stride + i] = state[(shape.rows + l.row) * stride + i] = acc_t(0);
  }
  Upstream<scalar_t> upstream;
  upstream.start(p, shape, l, at);
  upstream.load(p, shape, l, ticks - 1, 0, first_ok);
  Sinks<scalar_t> sinks;
  sinks.start(p, shape, l, first_ok);
  const int slice = l.part * layout.run();
  const int own = layout.position(l.unit);
  const int64_t delta_step = p.batch * k;  // between ticks of delta
  scalar_t* delta_tick = p.delta + (ticks - 1) * delta_step + l.b * k + l.unit;  // at tick n
  __syncthreads();

  const acc_t* carry = state + l.row * stride;                   // delta_{n+1}
  acc_t* next = state + (shape.rows + l.row) * stride;           // delta_n
  for (int n = ticks - 1, s = first_step(p.first, p.steps) + n * period; n >= -1; --n, s -= period) {
    for (int pass = 0; pass < passes; ++pass) {
      const int c = pass * shape.units + l.unit;
      acc_t partial = upstream.sum();
      if (n + 1 < ticks) partial += dot_slice(w, carry + slice, pass, shape, l);
      const acc_t h = static_cast<acc_t>(upstream.h);
      if (passes == 1) {  // the next work item: step n - 1, or the next pass of this one
        if (n >= 0) upstream.load(p, shape, l, n - 1, 0, first_ok);
      } else if (pass + 1 < passes) {
        const int offset = (pass + 1) * shape.units;
        upstream.load(p, shape, l, n, offset, l.row_ok && l.unit + offset < k);
      } else if (n >= 0) {
        upstream.load(p, shape, l, n - 1, 0, first_ok);
      }
      const acc_t total = sum_over_split(partial, split);
      if (n >= 0) {
        const acc_t d = times_derivative(total, h, p.relu);
        if (c < k) {
          if (l.part == 0) next[passes == 1 ? own : layout.position(c)] = d;
          if (l.row_ok) {
            if (l.part == 0) delta_tick[c - l.unit] = static_cast<scalar_t>(d);
            sinks.add(p, shape, l, s, c, d);
          }
        }
      } else if (c < k && l.row_ok && l.part == 0) {
        p.grad_h0[l.b * p.hidden + p.begin + c] = static_cast<scalar_t>(total);
      }
    }
    if (n >= 0) sinks.advance(first_ok, s - period, n == 0);
    delta_tick -= delta_step;
    __syncthreads();  // the end of the step: `next` complete, `carry` free to be overwritten
    const acc_t* const done = next;
    next = const_cast<acc_t*>(carry);
    carry = done;
  }
}

}  // namespace detail
}  // namespace cuda
}  // namespace cwrnn
