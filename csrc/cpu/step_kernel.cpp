// The arithmetic of one step: tiles of dot products between batch rows (x and h) and weight rows
// (W_ih and the allowed columns of W_hh), both contiguous in memory. Like recurrence.cpp, the
// entry points are compiled for several x86-64 levels and the loader picks the best one.
#include "step_kernel.h"

#include <algorithm>
#include <cstring>

#include "activations.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define CWRNN_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CWRNN_MULTIVERSION
#endif

// The vectors live in registers inside always-inlined functions; no vector crosses an ABI boundary.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace cwrnn {
namespace {

// 32-byte vectors (8 floats, 4 doubles): one AVX register; older targets split them in two.
template <typename T>
struct VectorOf;
template <>
struct VectorOf<float> {
  typedef float type __attribute__((vector_size(32)));
};
template <>
struct VectorOf<double> {
  typedef double type __attribute__((vector_size(32)));
};
template <typename T>
using Vec = typename VectorOf<T>::type;
template <typename T>
constexpr int kLanes = 32 / sizeof(T);

template <typename T>
__attribute__((always_inline)) inline Vec<T> load(const T* p) {
  Vec<T> v;
  std::memcpy(&v, p, sizeof(v));  // an unaligned vector load
  return v;
}

template <typename T>
__attribute__((always_inline)) inline T lane_sum(Vec<T> v) {
  T s = 0;
  for (int l = 0; l < kLanes<T>; ++l) s += v[l];
  return s;
}

// acc[b][r] += sum_c a[b][c] * w[r][c] over c in [0, n), for RB batch rows and RW weight rows:
// RB * RW independent vector accumulators, each load of a weight row feeding RB products.
template <typename T, int RB, int RW>
__attribute__((always_inline)) inline void dot_tile(const T* const* a, const T* const* w,
                                                     int64_t n, T (&acc)[4][8]) {
  constexpr int L = kLanes<T>;
  Vec<T> sum[RB][RW];
  for (int b = 0; b < RB; ++b)
    for (int r = 0; r < RW; ++r) sum[b][r] = Vec<T>{};
  int64_t c = 0;
  for (; c + L <= n; c += L) {
    Vec<T> av[RB];
    for (int b = 0; b < RB; ++b) av[b] = load(a[b] + c);
    for (int r = 0; r < RW; ++r) {
      const Vec<T> wv = load(w[r] + c);
      for (int b = 0; b < RB; ++b) sum[b][r] += av[b] * wv;
    }
  }
  for (int b = 0; b < RB; ++b)
    for (int r = 0; r < RW; ++r) {
      T s = lane_sum<T>(sum[b][r]);
      for (int64_t e = c; e < n; ++e) s += a[b][e] * w[r][e];
      acc[b][r] += s;
    }
}

template <typename T>
__attribute__((always_inline)) inline T activation(T v, bool relu) {
  return relu ? relu_of(v) : tanh_of(v);
}

// One tile: batch rows rows[0:RB] x hidden rows [r, r + RW).
template <typename T, int RB, int RW>
__attribute__((always_inline)) inline void step_tile(const StepRows<T>& p, int64_t begin, int64_t r,
                                                      const int64_t* rows) {
  T acc[4][8] = {};
  const T* a[RB];
  const T* w[RW];
  for (int j = 0; j < RW; ++j) {
    const T bias = (p.bias_ih ? p.bias_ih[r + j] : T(0)) + (p.bias_hh ? p.bias_hh[r + j] : T(0));
    for (int b = 0; b < RB; ++b) acc[b][j] = bias;
  }
  if (p.input_size > 0) {
    for (int b = 0; b < RB; ++b) a[b] = p.x[rows[b]];
    for (int j = 0; j < RW; ++j) w[j] = p.weight_ih + (r + j) * p.input_size;
    dot_tile<T, RB, RW>(a, w, p.input_size, acc);
  }
  for (int b = 0; b < RB; ++b) a[b] = p.h[rows[b]] + begin;
  for (int j = 0; j < RW; ++j) w[j] = p.weight_hh + (r + j) * p.hidden + begin;
  dot_tile<T, RB, RW>(a, w, p.hidden - begin, acc);
  for (int b = 0; b < RB; ++b)
    for (int j = 0; j < RW; ++j) p.out[rows[b]][r + j] = activation(acc[b][j], p.relu);
}

// Hidden rows [r0, r1) for RB batch rows: full tiles of RW weight rows, then single rows.
template <typename T, int RB, int RW>
__attribute__((always_inline)) inline void step_row_block(const StepRows<T>& p, int64_t begin,
                                                           int64_t r0, int64_t r1,
                                                           const int64_t* rows) {
  int64_t r = r0;
  for (; r + RW <= r1; r += RW) step_tile<T, RB, RW>(p, begin, r, rows);
  for (; r < r1; ++r) step_tile<T, RB, 1>(p, begin, r, rows);
}

template <typename T>
__attribute__((always_inline)) inline void step_group_rows_impl(const StepRows<T>& p, int64_t begin,
                                                                 int64_t r0, int64_t r1,
                                                                 const int64_t* rows,
                                                                 int64_t num_rows) {
  // A single row is a matrix-vector product, bound by reading the weights: eight weight rows at
  // once give eight independent accumulator chains. With more batch rows, each weight load is
  // shared by four of them; the weight tile stays in L1 while the batch rows stream past it.
  if (num_rows == 1) {
    step_row_block<T, 1, 8>(p, begin, r0, r1, rows);
    return;
  }
  constexpr int64_t kWeightRows = 16;  // hidden rows whose weights stay in L1 over the batch
  for (int64_t w0 = r0; w0 < r1; w0 += kWeightRows) {
    const int64_t w1 = std::min(w0 + kWeightRows, r1);
    int64_t i = 0;
    for (; i + 4 <= num_rows; i += 4) step_row_block<T, 4, 2>(p, begin, w0, w1, rows + i);
    switch (num_rows - i) {
      case 3: step_row_block<T, 3, 2>(p, begin, w0, w1, rows + i); break;
      case 2: step_row_block<T, 2, 4>(p, begin, w0, w1, rows + i); break;
      case 1: step_row_block<T, 1, 8>(p, begin, w0, w1, rows + i); break;
      default: break;
    }
  }
}

}  // namespace

CWRNN_MULTIVERSION void step_group_rows(const StepRows<float>& p, int64_t begin, int64_t r0,
                                        int64_t r1, const int64_t* rows, int64_t num_rows) {
  step_group_rows_impl(p, begin, r0, r1, rows, num_rows);
}
CWRNN_MULTIVERSION void step_group_rows(const StepRows<double>& p, int64_t begin, int64_t r0,
                                        int64_t r1, const int64_t* rows, int64_t num_rows) {
  step_group_rows_impl(p, begin, r0, r1, rows, num_rows);
}

}  // namespace cwrnn
