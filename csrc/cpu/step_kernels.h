// The arithmetic of one step (step_kernel.h): tiles of dot products between batch rows (x and h)
// and weight rows (W_ih and the allowed columns of W_hh), both contiguous in memory. Compiled once
// per instruction set (isa_kernels.h), at its native vector width.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "activations.h"
#include "simd.h"
#include "step_kernel.h"

namespace cwrnn::CWRNN_ISA {
namespace {

using simd::Vec;

// Dot products of RB batch rows with RW weight rows, accumulated over several segments (the
// input term, then the recurrent term) in RB * RW vector accumulators, reduced once at the end.
template <typename T, int RB, int RW>
struct Tile {
  static constexpr int N = RB * RW;
  Vec<T> sum[N];
  T tail[N];

  __attribute__((always_inline)) Tile() {
    for (int i = 0; i < N; ++i) {
      sum[i] = Vec<T>{};
      tail[i] = T(0);
    }
  }

  // sum[b * RW + j] += a[b][0:n] . w[j][0:n]
  __attribute__((always_inline)) void add(const T* const* a, const T* const* w, int64_t n) {
    constexpr int L = simd::kLanes<T>;
    int64_t c = 0;
    for (; c + L <= n; c += L) {
      Vec<T> av[RB];
      for (int b = 0; b < RB; ++b) av[b] = simd::load<Vec<T>>(a[b] + c);
      for (int j = 0; j < RW; ++j) {
        const Vec<T> wv = simd::load<Vec<T>>(w[j] + c);
        for (int b = 0; b < RB; ++b) sum[b * RW + j] = simd::multiply_add(sum[b * RW + j], av[b], wv);
      }
    }
    for (; c < n; ++c)
      for (int b = 0; b < RB; ++b)
        for (int j = 0; j < RW; ++j) tail[b * RW + j] += a[b][c] * w[j][c];
  }

  // total[i] = the dot product i: the vectors narrowed to M lanes (as many as there are dot
  // products, at most a register's), then their lane sums M at a time.
  __attribute__((always_inline)) void totals(T* total) const {
    constexpr int L = simd::kLanes<T>;
    constexpr int M = N >= L ? L : N >= 8 ? 8 : N >= 4 ? 4 : N >= 2 ? 2 : 1;
    int i = 0;
    if constexpr (M >= 2) {
      for (; i + M <= N; i += M) {
        Vec<T, M> narrowed[M];
        for (int v = 0; v < M; ++v) narrowed[v] = simd::narrow<T, M>(sum[i + v]);
        simd::store(total + i, simd::lane_sums<T, M>(narrowed));
      }
    }
    for (; i < N; ++i) total[i] = simd::lane_sum<T, L>(sum[i]);
    for (i = 0; i < N; ++i) total[i] += tail[i];
  }
};

// One tile: batch rows rows[0:RB] x hidden rows [r, r + RW); writes the pre-activations.
template <typename T, int RB, int RW>
__attribute__((always_inline)) inline void step_tile(const StepRows<T>& p, int64_t begin, int64_t r,
                                                      const int64_t* rows) {
  Tile<T, RB, RW> tile;
  const T* a[RB];
  const T* w[RW];
  if (p.input_size > 0) {
    for (int b = 0; b < RB; ++b) a[b] = p.x[rows[b]];
    for (int j = 0; j < RW; ++j) w[j] = p.weight_ih + (r + j) * p.input_size;
    tile.add(a, w, p.input_size);
  }
  for (int b = 0; b < RB; ++b) a[b] = p.h[rows[b]] + begin;
  for (int j = 0; j < RW; ++j) w[j] = p.weight_hh + (r + j) * p.hidden + begin;
  tile.add(a, w, p.hidden - begin);
  T total[RB * RW];
  tile.totals(total);
  for (int j = 0; j < RW; ++j) {
    const T bias = (p.bias_ih ? p.bias_ih[r + j] : T(0)) + (p.bias_hh ? p.bias_hh[r + j] : T(0));
    for (int b = 0; b < RB; ++b) p.out[rows[b]][r + j] = total[b * RW + j] + bias;
  }
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
  // A lone row is a matrix-vector product, bound by reading the weights: eight weight rows at
  // once give eight independent accumulator chains. With more batch rows, each weight load is
  // shared by four of them; a block of weight rows stays in cache while the batch streams past.
  constexpr int64_t kWeightRows = 16;
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
    // The nonlinearity over each row's run of outputs at once, so that it vectorises.
    for (i = 0; i < num_rows; ++i) activate(p.out[rows[i]] + w0, w1 - w0, p.relu);
  }
}

}  // namespace

void step_group_rows(const StepRows<float>& p, int64_t begin, int64_t r0, int64_t r1, const int64_t* rows,
                     int64_t num_rows) {
  step_group_rows_impl(p, begin, r0, r1, rows, num_rows);
}
void step_group_rows(const StepRows<double>& p, int64_t begin, int64_t r0, int64_t r1, const int64_t* rows,
                     int64_t num_rows) {
  step_group_rows_impl(p, begin, r0, r1, rows, num_rows);
}

}  // namespace cwrnn::CWRNN_ISA
