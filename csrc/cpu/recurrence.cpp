// Per-thread loops of recurrence.h. The public entry points are compiled for several x86-64
// levels (function multi-versioning) and the loader picks the best one for the running CPU, so
// the build needs no -march flag and still uses AVX2/AVX-512 where the CPU has them.
#include "recurrence.h"

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <utility>
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

// dst[0:n] = src[0:n], converting between the storage and the arithmetic type.
template <typename D, typename S>
__attribute__((always_inline)) inline void convert(D* __restrict dst, const S* __restrict src, int64_t n) {
  if constexpr (std::is_same_v<D, S>) {
    std::memcpy(dst, src, n * sizeof(D));
  } else {
    for (int64_t c = 0; c < n; ++c) dst[c] = static_cast<D>(static_cast<float>(src[c]));
  }
}

// dst[0:n] += src[0:n * stride : stride] in the arithmetic type.
template <typename A, typename S>
__attribute__((always_inline)) inline void add_row(A* __restrict dst, const S* __restrict src, int64_t n,
                                                   int64_t stride = 1) {
  if (stride == 1) {
    for (int64_t c = 0; c < n; ++c) dst[c] += static_cast<A>(src[c]);
  } else {  // e.g. the expanded gradient of output.sum()
    for (int64_t c = 0; c < n; ++c) dst[c] += static_cast<A>(src[c * stride]);
  }
}

template <typename T, typename A>
__attribute__((always_inline)) inline void forward_rows(const ForwardRecurrence<T, A>& p, int64_t b0,
                                                        int64_t b1) {
  const int64_t k = p.size, B = p.batch, H = p.hidden;
  const int64_t pre_stride = p.pre_stride > 0 ? p.pre_stride : k;
  std::vector<A> buffer(2 * kRowTile * k);
  std::vector<int64_t> held_value(p.num_held);  // per slower group, the value read at this tick
  for (int64_t tile = b0; tile < b1; tile += kRowTile) {
    const int64_t rows = std::min(kRowTile, b1 - tile);
    // The group's state after the previous tick and the next one's accumulators, swapped each
    // tick: the state stays in A from tick to tick, whatever `out` stores.
    A* state[kRowTile];
    A* acc[kRowTile];
    for (int64_t r = 0; r < rows; ++r) {
      state[r] = buffer.data() + r * k;
      acc[r] = buffer.data() + (kRowTile + r) * k;
      convert(state[r], p.h0 + (tile + r) * H + p.begin, k);
      if (p.values != nullptr) std::memcpy(p.values + (tile + r) * k, state[r], k * sizeof(A));
    }
    // Before its first tick the group holds its initial state.
    for (int64_t s = 0; s < std::min(p.first, p.steps); ++s)
      for (int64_t r = 0; r < rows; ++r)
        std::memcpy(p.out + (s * B + tile + r) * H + p.begin, p.h0 + (tile + r) * H + p.begin, k * sizeof(T));
    std::fill(held_value.begin(), held_value.end(), 0);
    for (int64_t n = 0; n < p.ticks; ++n) {
      const int64_t s = p.first + n * p.period;
      for (int64_t r = 0; r < rows; ++r) convert(acc[r], p.pre + (n * B + tile + r) * pre_stride, k);
      for (int64_t j = 0; j < p.num_held; ++j) {
        const HeldSource<A>& h = p.held[j];
        // = held_value_index(s, ...), advanced incrementally: a division per tick would cost
        // as much as the rest of a small group's step.
        int64_t& m = held_value[j];
        while (h.first + m * h.period <= s - 1) ++m;
        for (int64_t r = 0; r < rows; ++r)
          add_row(acc[r], h.values + (m * B + tile + r) * h.width + p.begin, k);
      }
      accumulate_rows(p.diag, k, state, acc, rows);
      const int64_t held_until = std::min(s + p.period, p.steps);
      for (int64_t r = 0; r < rows; ++r) {
        activate(acc[r], k, p.relu);
        T* first_row = p.out + (s * B + tile + r) * H + p.begin;
        convert(first_row, acc[r], k);
        for (int64_t h = s + 1; h < held_until; ++h)
          std::memcpy(p.out + (h * B + tile + r) * H + p.begin, first_row, k * sizeof(T));
        if (p.values != nullptr)
          std::memcpy(p.values + ((n + 1) * B + tile + r) * k, acc[r], k * sizeof(A));
        std::swap(state[r], acc[r]);
      }
    }
  }
}

// dh += what reaches the states after steps [from, to) of batch row b from outside the group: the
// output's gradient (within the sequence's length), h_n's if one of them is the final state, and
// what faster groups sent to held value m.
template <typename T, typename A>
__attribute__((always_inline)) inline void add_upstream(const UpstreamGradient<T, A>& u,
                                                        const GroupRecurrence<T, A>& p, int64_t b,
                                                        int64_t from, int64_t to, int64_t m, A* dh) {
  const int64_t k = p.size;
  const int64_t length = u.lengths != nullptr ? u.lengths[b] : p.steps;
  if (u.output != nullptr) {
    const int64_t* st = u.output_strides;
    const T* row = u.output + b * st[1] + p.begin * st[2];
    for (int64_t s = from; s < std::min(to, length); ++s) add_row(dh, row + s * st[0], k, st[2]);
  }
  if (u.h_n != nullptr && length - 1 >= (m == 0 ? -1 : from) && length - 1 < to)
    add_row(dh, u.h_n + b * p.hidden + p.begin, k);
  if (u.held != nullptr) add_row(dh, u.held + (m * p.batch + b) * k, k);
}

template <typename T, typename A>
__attribute__((always_inline)) inline void backward_rows(const BackwardRecurrence<T, A>& p, int64_t b0,
                                                         int64_t b1) {
  const int64_t k = p.size, B = p.batch, H = p.hidden;
  std::vector<A> buffer(3 * kRowTile * k);
  std::vector<int64_t> held_value(p.num_sinks);  // per slower group, the value read at this tick
  for (int64_t tile = b0; tile < b1; tile += kRowTile) {
    const int64_t rows = std::min(kRowTile, b1 - tile);
    A* carry[kRowTile];  // W_ii^T delta_{n+1}: what tick n+1 sends back to h_n
    A* dh[kRowTile];
    A* h = buffer.data() + 2 * kRowTile * k;  // the state after the tick, in A
    for (int64_t r = 0; r < rows; ++r) {
      carry[r] = buffer.data() + r * k;
      dh[r] = buffer.data() + (kRowTile + r) * k;
      std::fill(carry[r], carry[r] + k, A(0));
    }
    // dh = carry + the gradient reaching the states after steps [from, to) from outside, and for
    // held value m (the state those steps hold).
    auto gather = [&](int64_t from, int64_t to, int64_t m) {
      for (int64_t r = 0; r < rows; ++r) {
        std::memcpy(dh[r], carry[r], k * sizeof(A));
        if (p.grad_state != nullptr) {  // row s + 1 = state after step s; row 0 = h0
          for (int64_t row = m == 0 ? 0 : from + 1; row <= to; ++row)
            add_row(dh[r], p.grad_state + (row * B + tile + r) * H + p.begin, k);
        } else {
          add_upstream(p.upstream, p, tile + r, from, to, m, dh[r]);
        }
      }
    };
    for (int64_t j = 0; j < p.num_sinks; ++j) {
      const HeldSink<A>& sink = p.sinks[j];
      held_value[j] = held_value_index(p.first + (p.ticks - 1) * p.period, sink.first, sink.period);
    }
    for (int64_t n = p.ticks - 1; n >= 0; --n) {
      const int64_t s = p.first + n * p.period;
      for (int64_t j = 0; j < p.num_sinks; ++j) {  // held_value_index(s, ...), walked backwards
        const HeldSink<A>& sink = p.sinks[j];
        int64_t& m = held_value[j];
        while (m > 0 && sink.first + (m - 1) * sink.period > s - 1) --m;
      }
      gather(s, std::min(s + p.period, p.steps), n + 1);
      const A* d[kRowTile];
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t b = tile + r;
        convert(h, p.out + (s * B + b) * H + p.begin, k);
        if (p.values != nullptr) std::memcpy(p.values + ((n + 1) * B + b) * k, h, k * sizeof(A));
        times_derivative(dh[r], h, k, p.relu);
        A* delta = p.delta + (n * B + b) * k;
        std::memcpy(delta, dh[r], k * sizeof(A));
        for (int64_t j = 0; j < p.num_sinks; ++j) {
          const HeldSink<A>& sink = p.sinks[j];
          const int64_t m = held_value[j];
          A* __restrict sum = sink.sums + (m * B + b) * sink.width + p.begin;
          for (int64_t c = 0; c < k; ++c) sum[c] += delta[c];
        }
        d[r] = delta;
        std::fill(carry[r], carry[r] + k, A(0));
      }
      accumulate_rows(p.diag, k, d, carry, rows);
    }
    gather(0, std::min(p.first, p.steps), 0);
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(p.grad_h0 + (tile + r) * H + p.begin, dh[r], k * sizeof(A));
  }
}

}  // namespace

CWRNN_MULTIVERSION void run_forward_recurrence(const ForwardRecurrence<float>& r, int64_t b0, int64_t b1) {
  forward_rows(r, b0, b1);
}
CWRNN_MULTIVERSION void run_forward_recurrence(const ForwardRecurrence<double>& r, int64_t b0, int64_t b1) {
  forward_rows(r, b0, b1);
}
CWRNN_MULTIVERSION void run_forward_recurrence(const ForwardRecurrence<c10::BFloat16, float>& r,
                                               int64_t b0, int64_t b1) {
  forward_rows(r, b0, b1);
}
CWRNN_MULTIVERSION void run_forward_recurrence(const ForwardRecurrence<c10::Half, float>& r,
                                               int64_t b0, int64_t b1) {
  forward_rows(r, b0, b1);
}
CWRNN_MULTIVERSION void run_backward_recurrence(const BackwardRecurrence<float>& r, int64_t b0, int64_t b1) {
  backward_rows(r, b0, b1);
}
CWRNN_MULTIVERSION void run_backward_recurrence(const BackwardRecurrence<double>& r, int64_t b0, int64_t b1) {
  backward_rows(r, b0, b1);
}
CWRNN_MULTIVERSION void run_backward_recurrence(const BackwardRecurrence<c10::BFloat16, float>& r,
                                                int64_t b0, int64_t b1) {
  backward_rows(r, b0, b1);
}
CWRNN_MULTIVERSION void run_backward_recurrence(const BackwardRecurrence<c10::Half, float>& r,
                                                int64_t b0, int64_t b1) {
  backward_rows(r, b0, b1);
}

}  // namespace cwrnn
