// Per-thread loops of recurrence.h. The public entry points are compiled for several x86-64
// levels (function multi-versioning) and the loader picks the best one for the running CPU, so
// the build needs no -march flag and still uses AVX2/AVX-512 where the CPU has them.
#include "recurrence.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "../schedule.h"
#include "activations.h"

// CWRNN_NO_MULTIVERSION: one version (ThreadSanitizer crashes at start-up on the resolvers).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(CWRNN_NO_MULTIVERSION)
#define CWRNN_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CWRNN_MULTIVERSION
#endif

namespace cwrnn {
namespace {

constexpr int64_t kRowTile = 4;  // batch rows sharing each load of the diagonal block

// Columns per register block: 128 bytes of accumulators per row (two AVX-512 or four AVX2
// registers), enough independent FMA chains to hide their latency.
template <typename T>
constexpr int64_t kColBlock = 128 / sizeof(T);

// acc[r][c0:c0+C] += sum_j x[r][j] * m[j][c0:c0+C] for R rows, accumulators held in registers
// for the whole j loop (the GEMM micro-kernel shape: one load of m feeds R FMAs).
template <typename T, int R, int C>
__attribute__((always_inline)) inline void accumulate_block(const T* __restrict m, int64_t k,
                                                             const T* const* x, T* const* acc,
                                                             int64_t c0) {
  // With few rows there are too few independent FMA chains to hide their latency, so even and
  // odd j accumulate separately (S = 2) and are added at the end.
  constexpr int S = R <= 2 ? 2 : 1;
  T sum[S][R][C] = {};
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) sum[0][r][c] = acc[r][c0 + c];
  int64_t j = 0;
  for (; j + S <= k; j += S) {
    for (int u = 0; u < S; ++u) {
      const T* __restrict mj = m + (j + u) * k + c0;
      for (int r = 0; r < R; ++r) {
        const T xj = x[r][j + u];
        for (int c = 0; c < C; ++c) sum[u][r][c] += xj * mj[c];
      }
    }
  }
  for (; j < k; ++j) {
    const T* __restrict mj = m + j * k + c0;
    for (int r = 0; r < R; ++r) {
      const T xj = x[r][j];
      for (int c = 0; c < C; ++c) sum[0][r][c] += xj * mj[c];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      T total = sum[0][r][c];
      for (int u = 1; u < S; ++u) total += sum[u][r][c];
      acc[r][c0 + c] = total;
    }
}

// acc[r][:] += sum_j x[r][j] * m[j][:] for R rows; m is (k x k) row-major.
template <typename T, int R>
__attribute__((always_inline)) inline void accumulate_tile(const T* m, int64_t k, const T* const* x,
                                                            T* const* acc) {
  constexpr int64_t C = kColBlock<T>;
  int64_t c0 = 0;
  for (; c0 + C <= k; c0 += C) accumulate_block<T, R, C>(m, k, x, acc, c0);
  for (; c0 < k; ++c0) accumulate_block<T, R, 1>(m, k, x, acc, c0);  // the ragged edge
}

template <typename T>
__attribute__((always_inline)) inline void accumulate_rows(const T* m, int64_t k, const T* const* x,
                                                            T* const* acc, int64_t rows) {
  switch (rows) {
    case 4: accumulate_tile<T, 4>(m, k, x, acc); break;
    case 3: accumulate_tile<T, 3>(m, k, x, acc); break;
    case 2: accumulate_tile<T, 2>(m, k, x, acc); break;
    default: accumulate_tile<T, 1>(m, k, x, acc); break;
  }
}

template <typename T>
__attribute__((always_inline)) inline void forward_rows(const ForwardRecurrence<T>& p, int64_t b0,
                                                        int64_t b1) {
  const int64_t k = p.size, B = p.batch, H = p.hidden;
  std::vector<T> buffer(kRowTile * k);
  std::vector<int64_t> held_value(p.num_held);  // per slower group, the value read at this tick
  for (int64_t tile = b0; tile < b1; tile += kRowTile) {
    const int64_t rows = std::min(kRowTile, b1 - tile);
    T* acc[kRowTile];
    const T* prev[kRowTile];
    for (int64_t r = 0; r < rows; ++r) acc[r] = buffer.data() + r * k;
    // Before its first tick the group holds its initial state.
    for (int64_t s = 0; s < std::min(p.first, p.steps); ++s)
      for (int64_t r = 0; r < rows; ++r)
        std::memcpy(p.out + (s * B + tile + r) * H + p.begin, p.h0 + (tile + r) * H + p.begin, k * sizeof(T));
    std::fill(held_value.begin(), held_value.end(), 0);
    for (int64_t n = 0; n < p.ticks; ++n) {
      const int64_t s = p.first + n * p.period;
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t b = tile + r;
        prev[r] = n == 0 ? p.h0 + b * H + p.begin : p.out + ((s - p.period) * B + b) * H + p.begin;
        std::memcpy(acc[r], p.pre + (n * B + b) * k, k * sizeof(T));
      }
      for (int64_t j = 0; j < p.num_held; ++j) {
        const HeldSource<T>& h = p.held[j];
        // = held_value_index(s, ...), advanced incrementally: a division per tick would cost
        // as much as the rest of a small group's step.
        int64_t& m = held_value[j];
        while (h.first + m * h.period <= s - 1) ++m;
        for (int64_t r = 0; r < rows; ++r) {
          const T* __restrict v = h.values + (m * B + tile + r) * h.width + p.begin;
          T* __restrict a = acc[r];
          for (int64_t c = 0; c < k; ++c) a[c] += v[c];
        }
      }
      accumulate_rows(p.diag, k, prev, acc, rows);
      const int64_t held_until = std::min(s + p.period, p.steps);
      for (int64_t r = 0; r < rows; ++r) {
        activate(acc[r], k, p.relu);
        for (int64_t h = s; h < held_until; ++h)
          std::memcpy(p.out + (h * B + tile + r) * H + p.begin, acc[r], k * sizeof(T));
      }
    }
  }
}

template <typename T>
__attribute__((always_inline)) inline void backward_rows(const BackwardRecurrence<T>& p, int64_t b0,
                                                         int64_t b1) {
  const int64_t k = p.size, B = p.batch, H = p.hidden;
  std::vector<T> buffer(2 * kRowTile * k);
  std::vector<int64_t> held_value(p.num_sinks);  // per slower group, the value read at this tick
  for (int64_t tile = b0; tile < b1; tile += kRowTile) {
    const int64_t rows = std::min(kRowTile, b1 - tile);
    T* carry[kRowTile];  // W_ii^T delta_{n+1}: what tick n+1 sends back to h_n
    T* dh[kRowTile];
    for (int64_t r = 0; r < rows; ++r) {
      carry[r] = buffer.data() + r * k;
      dh[r] = buffer.data() + (kRowTile + r) * k;
      std::fill(carry[r], carry[r] + k, T(0));
    }
    // Sums rows [from, to) of grad_state (row s + 1 = state after step s) into dh, on top of carry.
    auto gather = [&](int64_t from, int64_t to) {
      for (int64_t r = 0; r < rows; ++r) {
        std::memcpy(dh[r], carry[r], k * sizeof(T));
        for (int64_t row = from; row < to; ++row) {
          const T* g = p.grad_state + (row * B + tile + r) * H + p.begin;
          for (int64_t c = 0; c < k; ++c) dh[r][c] += g[c];
        }
      }
    };
    for (int64_t j = 0; j < p.num_sinks; ++j) {
      const HeldSource<T>& h = p.sinks[j];
      held_value[j] = held_value_index(p.first + (p.ticks - 1) * p.period, h.first, h.period);
    }
    for (int64_t n = p.ticks - 1; n >= 0; --n) {
      const int64_t s = p.first + n * p.period;
      for (int64_t j = 0; j < p.num_sinks; ++j) {  // held_value_index(s, ...), walked backwards
        const HeldSource<T>& h = p.sinks[j];
        int64_t& m = held_value[j];
        while (m > 0 && h.first + (m - 1) * h.period > s - 1) --m;
      }
      gather(s + 1, std::min(s + p.period, p.steps) + 1);
      const T* d[kRowTile];
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t b = tile + r;
        times_derivative(dh[r], p.out + (s * B + b) * H + p.begin, k, p.relu);
        T* delta = p.delta + (n * B + b) * k;
        std::memcpy(delta, dh[r], k * sizeof(T));
        for (int64_t j = 0; j < p.num_sinks; ++j) {
          const HeldSource<T>& h = p.sinks[j];
          const int64_t m = held_value[j];
          T* __restrict sum = const_cast<T*>(h.values) + (m * B + b) * h.width + p.begin;
          for (int64_t c = 0; c < k; ++c) sum[c] += delta[c];
        }
        d[r] = delta;
        std::fill(carry[r], carry[r] + k, T(0));
      }
      accumulate_rows(p.diag, k, d, carry, rows);
    }
    gather(0, std::min(p.first, p.steps) + 1);
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(p.grad_h0 + (tile + r) * H + p.begin, dh[r], k * sizeof(T));
  }
}

}  // namespace

CWRNN_MULTIVERSION void run_forward_recurrence(const ForwardRecurrence<float>& r, int64_t b0, int64_t b1) {
  forward_rows(r, b0, b1);
}
CWRNN_MULTIVERSION void run_forward_recurrence(const ForwardRecurrence<double>& r, int64_t b0, int64_t b1) {
  forward_rows(r, b0, b1);
}
CWRNN_MULTIVERSION void run_backward_recurrence(const BackwardRecurrence<float>& r, int64_t b0, int64_t b1) {
  backward_rows(r, b0, b1);
}
CWRNN_MULTIVERSION void run_backward_recurrence(const BackwardRecurrence<double>& r, int64_t b0, int64_t b1) {
  backward_rows(r, b0, b1);
}

}  // namespace cwrnn
