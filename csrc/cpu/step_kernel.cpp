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
  typedef int index __attribute__((vector_size(32)));
};
template <>
struct VectorOf<double> {
  typedef double type __attribute__((vector_size(32)));
  typedef long long index __attribute__((vector_size(32)));
};
template <typename T>
using Vec = typename VectorOf<T>::type;
template <typename T>
using Index = typename VectorOf<T>::index;
template <typename T>
constexpr int kLanes = 32 / sizeof(T);

template <typename T>
__attribute__((always_inline)) inline Vec<T> load(const T* p) {
  Vec<T> v;
  std::memcpy(&v, p, sizeof(v));  // an unaligned vector load
  return v;
}

// a + b after picking lanes of (a, b) by `first` and by `second` (indices into the pair).
template <typename T>
__attribute__((always_inline)) inline Vec<T> pair_sum(Vec<T> a, Vec<T> b, Index<T> first,
                                                       Index<T> second) {
  return __builtin_shuffle(a, b, first) + __builtin_shuffle(a, b, second);
}

// The lane sums of kLanes vectors at once, as one vector (lane j = sum of v[j]): a transpose by
// halves, adding as it goes; log2(lanes) levels instead of a serial sum per vector.
__attribute__((always_inline)) inline Vec<float> lane_sums(const Vec<float>* v) {
  using I = Index<float>;
  Vec<float> t[4], u[2];
  for (int i = 0; i < 4; ++i)
    t[i] = pair_sum<float>(v[2 * i], v[2 * i + 1], I{0, 8, 2, 10, 4, 12, 6, 14}, I{1, 9, 3, 11, 5, 13, 7, 15});
  for (int i = 0; i < 2; ++i)
    u[i] = pair_sum<float>(t[2 * i], t[2 * i + 1], I{0, 1, 8, 9, 4, 5, 12, 13}, I{2, 3, 10, 11, 6, 7, 14, 15});
  return pair_sum<float>(u[0], u[1], I{0, 1, 2, 3, 8, 9, 10, 11}, I{4, 5, 6, 7, 12, 13, 14, 15});
}

__attribute__((always_inline)) inline Vec<double> lane_sums(const Vec<double>* v) {
  using I = Index<double>;
  const Vec<double> t0 = pair_sum<double>(v[0], v[1], I{0, 4, 2, 6}, I{1, 5, 3, 7});
  const Vec<double> t1 = pair_sum<double>(v[2], v[3], I{0, 4, 2, 6}, I{1, 5, 3, 7});
  return pair_sum<double>(t0, t1, I{0, 1, 4, 5}, I{2, 3, 6, 7});
}

template <typename T>
__attribute__((always_inline)) inline T lane_sum(Vec<T> v) {
  T s = 0;
  for (int l = 0; l < kLanes<T>; ++l) s += v[l];
  return s;
}

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
    constexpr int L = kLanes<T>;
    int64_t c = 0;
    for (; c + L <= n; c += L) {
      Vec<T> av[RB];
      for (int b = 0; b < RB; ++b) av[b] = load(a[b] + c);
      for (int j = 0; j < RW; ++j) {
        const Vec<T> wv = load(w[j] + c);
        for (int b = 0; b < RB; ++b) sum[b * RW + j] += av[b] * wv;
      }
    }
    for (; c < n; ++c)
      for (int b = 0; b < RB; ++b)
        for (int j = 0; j < RW; ++j) tail[b * RW + j] += a[b][c] * w[j][c];
  }

  // total[i] = the dot product i.
  __attribute__((always_inline)) void totals(T* total) const {
    constexpr int L = kLanes<T>;
    int i = 0;
    for (; i + L <= N; i += L) {
      const Vec<T> s = lane_sums(sum + i);
      std::memcpy(total + i, &s, sizeof(s));
    }
    for (; i < N; ++i) total[i] = lane_sum<T>(sum[i]);
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

CWRNN_MULTIVERSION void step_group_rows(const StepRows<float>& p, int64_t begin, int64_t r0,
                                        int64_t r1, const int64_t* rows, int64_t num_rows) {
  step_group_rows_impl(p, begin, r0, r1, rows, num_rows);
}
CWRNN_MULTIVERSION void step_group_rows(const StepRows<double>& p, int64_t begin, int64_t r0,
                                        int64_t r1, const int64_t* rows, int64_t num_rows) {
  step_group_rows_impl(p, begin, r0, r1, rows, num_rows);
}

}  // namespace cwrnn
