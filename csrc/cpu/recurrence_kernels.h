// The CPU recurrences' per-thread loops (recurrence.h), compiled once per instruction set
// (isa_kernels.h): the micro-kernel's tile is sized from that set's vector width and registers.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "../schedule.h"
#include "activations.h"
#include "recurrence.h"
#include "simd.h"

namespace cwrnn::CWRNN_ISA {
namespace {

using simd::Vec;

// The micro-kernel's register tile: kRowTile batch rows share each load of a weight row, and each
// row accumulates kColumnVectors registers of columns. Its accumulators, the weight row's vectors
// and a broadcast must fit the register file, or GCC keeps them on the stack.
constexpr int64_t kRowTile = 4;
constexpr int kColumnVectors = 2;
static_assert(kRowTile * kColumnVectors + kColumnVectors + 1 <= simd::kRegisters,
              "the micro-kernel's tile must fit the vector registers");

// Columns per register block.
template <typename T>
constexpr int64_t kColBlock = kColumnVectors * simd::kLanes<T>;

// A (depth x width) block of a row-major matrix whose rows lie `stride` values apart.
template <typename T>
struct Block {
  const T* m;
  int64_t stride, depth, width;
};

// acc[r][c0:c0+C] += sum_j x[r][j] * m[j][c0:c0+C] for R rows, accumulators held in registers
// for the whole j loop (the GEMM micro-kernel shape: one load of m feeds R FMAs). Written with
// explicit vectors: as plain arrays, GCC kept the accumulators of the narrower blocks on the
// stack, one store-to-load round trip per FMA.
template <typename T, int R, int C>
__attribute__((always_inline)) inline void accumulate_block(const Block<T>& b, const T* const* x,
                                                             T* const* acc, int64_t c0) {
  const T* __restrict m = b.m;
  const int64_t k = b.depth, ld = b.stride;
  // With few rows there are too few independent FMA chains to hide their latency, so S
  // interleaved subsets of j accumulate separately and are added at the end (a single row, as at
  // B = 1, is a chain of k dependent FMAs per vector otherwise: the whole tick's latency).
  constexpr int S = R == 1 ? 4 : R == 2 ? 2 : 1;
  constexpr int W = C < simd::kLanes<T> ? C : simd::kLanes<T>;  // lanes per vector
  constexpr int NV = C / W;  // vectors per row
  using V = Vec<T, W>;
  V sum[S][R][NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      sum[0][r][v] = simd::load<V>(acc[r] + c0 + v * W);
      for (int u = 1; u < S; ++u) sum[u][r][v] = V{};
    }
  int64_t j = 0;
  for (; j + S <= k; j += S) {
#pragma GCC unroll 4
    for (int u = 0; u < S; ++u) {
      V mj[NV];
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) mj[v] = simd::load<V>(m + (j + u) * ld + c0 + v * W);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const T xj = x[r][j + u];
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) sum[u][r][v] = simd::multiply_add(sum[u][r][v], xj, mj[v]);
      }
    }
  }
  for (; j < k; ++j) {
    V mj[NV];
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) mj[v] = simd::load<V>(m + j * ld + c0 + v * W);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const T xj = x[r][j];
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) sum[0][r][v] = simd::multiply_add(sum[0][r][v], xj, mj[v]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      V total = sum[0][r][v];
      for (int u = 1; u < S; ++u) total += sum[u][r][v];
      simd::store(acc[r] + c0 + v * W, total);
    }
}

// The ragged edge of a tile from column c0, in blocks of C columns, then C / 2, ... while a block
// is at least a 16-byte vector (all of a small group, e.g. 16 or 21 units); the last few columns one
// at a time.
template <typename T, int R, int C>
__attribute__((always_inline)) inline void accumulate_edge(const Block<T>& m, const T* const* x,
                                                            T* const* acc, int64_t c0) {
  if constexpr (C * sizeof(T) >= 16) {
    if (c0 + C <= m.width) {
      accumulate_block<T, R, C>(m, x, acc, c0);
      c0 += C;
    }
    accumulate_edge<T, R, C / 2>(m, x, acc, c0);
  } else {
    for (; c0 < m.width; ++c0) accumulate_block<T, R, 1>(m, x, acc, c0);
  }
}

// acc[r][0:width] += sum_j x[r][j] * m[j][0:width] for R rows.
template <typename T, int R>
__attribute__((always_inline)) inline void accumulate_tile(const Block<T>& m, const T* const* x,
                                                            T* const* acc) {
  constexpr int64_t C = kColBlock<T>;
  int64_t c0 = 0;
  for (; c0 + C <= m.width; c0 += C) accumulate_block<T, R, C>(m, x, acc, c0);
  accumulate_edge<T, R, C / 2>(m, x, acc, c0);
}

// accumulate_tile for 1 to kRowTile rows.
template <typename T>
__attribute__((always_inline)) inline void accumulate_rows(const Block<T>& m, const T* const* x,
                                                            T* const* acc, int64_t rows) {
  switch (rows) {
    case 4: accumulate_tile<T, 4>(m, x, acc); break;
    case 3: accumulate_tile<T, 3>(m, x, acc); break;
    case 2: accumulate_tile<T, 2>(m, x, acc); break;
    default: accumulate_tile<T, 1>(m, x, acc); break;
  }
}

// dst[0:n] = src[0:n] inline. The rows copied here are one group's k values, often 16 to 64
// bytes, where a call to memcpy costs more than the copy: fixed-size pieces, which the compiler
// turns into vector moves.
template <typename D>
__attribute__((always_inline)) inline void copy_row(D* __restrict dst, const D* __restrict src, int64_t n) {
  auto* d = reinterpret_cast<char*>(dst);
  const auto* s = reinterpret_cast<const char*>(src);
  int64_t bytes = n * static_cast<int64_t>(sizeof(D));
  for (; bytes >= 64; bytes -= 64, d += 64, s += 64) __builtin_memcpy(d, s, 64);
  if (bytes & 32) { __builtin_memcpy(d, s, 32); d += 32; s += 32; }
  if (bytes & 16) { __builtin_memcpy(d, s, 16); d += 16; s += 16; }
  if (bytes & 8) { __builtin_memcpy(d, s, 8); d += 8; s += 8; }
  if (bytes & 4) { __builtin_memcpy(d, s, 4); d += 4; s += 4; }
  if (bytes & 2) __builtin_memcpy(d, s, 2);
}

// dst[0:n] = src[0:n], converting between the storage and the arithmetic type.
template <typename D, typename S>
__attribute__((always_inline)) inline void convert(D* __restrict dst, const S* __restrict src, int64_t n) {
  if constexpr (std::is_same_v<D, S>) {
    copy_row(dst, src, n);
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
  } else if (stride == 0) {  // the expanded gradient of output.sum() or .mean(): one value
    const A value = static_cast<A>(src[0]);
    for (int64_t c = 0; c < n; ++c) dst[c] += value;
  } else {  // any other layout, one element at a time
    for (int64_t c = 0; c < n; ++c) dst[c] += static_cast<A>(src[c * stride]);
  }
}

// Hints the cache to fetch n values of T from `address` (rw = 1: to be written). An address, not
// a pointer: a guess past the end of a buffer costs nothing (a prefetch never faults), and as an
// integer it is not out-of-bounds pointer arithmetic.
template <typename T>
__attribute__((always_inline)) inline void prefetch_row(uintptr_t address, int64_t n, int rw = 0) {
  for (int64_t offset = 0; offset < n * static_cast<int64_t>(sizeof(T)); offset += 64) {
    const auto* line = reinterpret_cast<const char*>(address + offset);
    if (rw) {
      __builtin_prefetch(line, 1, 3);
    } else {
      __builtin_prefetch(line, 0, 3);
    }
  }
}

// The address of row `row` (of `width` values) of `base`, plus `offset` values.
template <typename T>
__attribute__((always_inline)) inline uintptr_t row_address(const T* base, int64_t row, int64_t width,
                                                             int64_t offset) {
  return reinterpret_cast<uintptr_t>(base) + static_cast<uintptr_t>(row * width + offset) * sizeof(T);
}

// Value m of a group's held term for the faster groups (ForwardRecurrence::held_out) for batch
// rows b0.. b0 + rows, from their states.
template <typename T, typename A>
__attribute__((always_inline)) inline void emit_held(const ForwardRecurrence<T, A>& p, const Block<A>& column,
                                                     A* const* state, int64_t b0, int64_t rows, int64_t m) {
  for (int64_t tile = 0; tile < rows; tile += kRowTile) {
    const int64_t tile_rows = std::min(kRowTile, rows - tile);
    A* sums[kRowTile];
    for (int64_t r = 0; r < tile_rows; ++r) {
      sums[r] = p.held_out + (m * p.batch + b0 + tile + r) * p.begin;
      std::fill(sums[r], sums[r] + p.begin, A(0));
    }
    accumulate_rows(column, state + tile, sums, tile_rows);
  }
}

// Ticks in the outer loop, the thread's batch rows inside: a tick's rows of input, held values and
// out are the rows b0..b1 of one step, close together, and the next tick's are fetched while this
// one computes; rows outside and ticks inside would jump a whole period of steps between
// accesses and wait on memory for every row.
template <typename T, typename A>
__attribute__((always_inline)) inline void forward_rows(const ForwardRecurrence<T, A>& p, int64_t b0,
                                                        int64_t b1) {
  const int64_t k = p.size, B = p.batch, H = p.hidden, I = p.input_size, rows = b1 - b0;
  const bool project = I > 0;
  const Block<A> diag{p.diag, p.diag_stride > 0 ? p.diag_stride : k, k, k};
  const Block<A> projection{p.weight_ih_t, p.weight_ih_stride, I, k};
  const Block<A> column{p.column_t, p.column_stride, k, p.begin};
  constexpr bool converts = !std::is_same_v<T, A>;  // half storage: inputs converted per row
  // Per batch row, the group's state after the previous tick and the next one's accumulators,
  // swapped each tick: the state stays in A from tick to tick, whatever `out` stores.
  std::vector<A> buffer(2 * rows * k + (converts && project ? rows * I : 0));
  std::vector<A*> state(rows), acc(rows);
  std::vector<const A*> inputs(rows);  // the tile's input rows, in A
  const int64_t n0 = p.tick_begin, n1 = p.tick_end < 0 ? p.ticks : std::min(p.tick_end, p.ticks);
  for (int64_t r = 0; r < rows; ++r) {
    state[r] = buffer.data() + r * k;
    acc[r] = buffer.data() + (rows + r) * k;
    if (!p.starts) {
      copy_row(state[r], p.carry + (b0 + r) * k, k);
    } else {
      convert(state[r], p.h0 + (b0 + r) * H + p.begin, k);
    }
  }
  if (p.held_out != nullptr && p.starts) emit_held(p, column, state.data(), b0, rows, 0);
  std::vector<int64_t> held_value(p.num_held);  // per slower group, the value read at this tick
  for (int64_t j = 0; j < p.num_held; ++j)
    held_value[j] = held_value_index(p.first + n0 * p.period, p.held[j].first, p.held[j].period);
  for (int64_t n = n0; n < n1; ++n) {
    const int64_t s = p.first + n * p.period;
    for (int64_t j = 0; j < p.num_held; ++j) {
      // = held_value_index(s, ...), advanced incrementally: a division per tick would cost as
      // much as the rest of a small group's step.
      const HeldSource<A>& h = p.held[j];
      while (h.first + held_value[j] * h.period <= s - 1) ++held_value[j];
    }
    // A single row's next rows follow its current ones in every stream, which the hardware
    // prefetcher already follows; the hints would only cost instructions there.
    if (n + 1 < n1 && rows > 1) {
      for (int64_t b = b0; b < b1; ++b) {
        if (project) prefetch_row<T>(row_address(p.input, (s + p.period) * B + b, I, 0), I);
        for (int64_t j = 0; j < p.num_held; ++j)  // the value read next tick, or the one after
          prefetch_row<A>(row_address(p.held[j].values, (held_value[j] + 1) * B + b, p.held[j].width, p.begin), k);
      }
    }
    for (int64_t tile = 0; tile < rows; tile += kRowTile) {
      const int64_t tile_rows = std::min(kRowTile, rows - tile);
      for (int64_t r = tile; r < tile + tile_rows; ++r) {
        if (p.bias != nullptr) {
          copy_row(acc[r], p.bias, k);
        } else {
          std::fill(acc[r], acc[r] + k, A(0));
        }
        for (int64_t j = 0; j < p.num_held; ++j) {
          const HeldSource<A>& h = p.held[j];
          add_row(acc[r], h.values + (held_value[j] * B + b0 + r) * h.width + p.begin, k);
        }
        if (project) {
          const T* x = p.input + (s * B + b0 + r) * I;
          if constexpr (converts) {
            A* converted = buffer.data() + 2 * rows * k + r * I;
            convert(converted, x, I);
            inputs[r] = converted;
          } else {
            inputs[r] = x;
          }
        }
      }
      if (project) accumulate_rows(projection, inputs.data() + tile, acc.data() + tile, tile_rows);
      accumulate_rows(diag, state.data() + tile, acc.data() + tile, tile_rows);
    }
    for (int64_t r = 0; r < rows; ++r) {
      activate(acc[r], k, p.relu);
      convert(p.out + (s * B + b0 + r) * H + p.begin, acc[r], k);
      std::swap(state[r], acc[r]);
    }
    if (p.held_out != nullptr) emit_held(p, column, state.data(), b0, rows, n + 1);
  }
  if (p.carry != nullptr)
    for (int64_t r = 0; r < rows; ++r) copy_row(p.carry + (b0 + r) * k, state[r], k);
}

template <typename T>
__attribute__((always_inline)) inline void held_rows(const HeldRows<T>& p, int64_t s0, int64_t s1,
                                                     int64_t b0, int64_t b1) {
  const int64_t B = p.batch, H = p.hidden;
  // Per group, its last tick at or before step s (-1: none yet), advanced step by step (a division
  // per group and step costs as much as the copies at B = 1), and the step whose row it holds at
  // s (-1: h0), or -2 where it ticks at s.
  std::vector<int64_t> tick(p.num_groups), source(p.num_groups);
  for (int64_t g = 0; g < p.num_groups; ++g) {
    const HeldRowsGroup& group = p.groups[g];
    tick[g] = s0 < group.first || group.ticks == 0
                  ? -1 : std::min((s0 - group.first) / group.period, group.ticks - 1);
  }
  for (int64_t s = s0; s < s1; ++s) {
    for (int64_t g = 0; g < p.num_groups; ++g) {
      const HeldRowsGroup& group = p.groups[g];
      if (tick[g] + 1 < group.ticks && group.first + (tick[g] + 1) * group.period <= s) ++tick[g];
      const int64_t step = tick[g] < 0 ? -1 : group.first + tick[g] * group.period;
      source[g] = step == s ? -2 : step;
    }
    for (int64_t b = b0; b < b1; ++b) {
      T* row = p.out + (s * B + b) * H;
      for (int64_t g = 0; g < p.num_groups; ++g) {
        if (source[g] == -2) continue;
        const T* from = source[g] == -1 ? p.h0 + b * H : p.out + (source[g] * B + b) * H;
        copy_row(row + p.groups[g].begin, from + p.groups[g].begin, p.groups[g].size);
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

// Ticks in the outer loop, the thread's batch rows inside, the previous tick's rows fetched while
// this one computes: as in forward_rows.
template <typename T, typename A>
__attribute__((always_inline)) inline void backward_rows(const BackwardRecurrence<T, A>& p, int64_t b0,
                                                         int64_t b1) {
  const int64_t k = p.size, B = p.batch, H = p.hidden, rows = b1 - b0;
  const Block<A> diag{p.diag, p.diag_stride > 0 ? p.diag_stride : k, k, k};
  std::vector<A> buffer(2 * rows * k + k);
  // Per batch row, W_ii^T delta_{n+1} (what tick n+1 sends back to h_n) and dh_n.
  std::vector<A*> carry(rows), dh(rows);
  std::vector<const A*> delta_of(rows);
  A* h = buffer.data() + 2 * rows * k;  // one row's state after the tick, in A
  for (int64_t r = 0; r < rows; ++r) {
    carry[r] = buffer.data() + r * k;
    dh[r] = buffer.data() + (rows + r) * k;
    std::fill(carry[r], carry[r] + k, A(0));
  }
  // dh = carry + the gradient reaching the states after steps [from, to) from outside, and for
  // held value m (the state those steps hold).
  auto gather = [&](int64_t from, int64_t to, int64_t m) {
    for (int64_t r = 0; r < rows; ++r) {
      copy_row(dh[r], carry[r], k);
      add_upstream(p.upstream, p, b0 + r, from, to, m, dh[r]);
    }
  };
  std::vector<int64_t> held_value(p.num_sinks);  // per slower group, the value read at this tick
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
    if (n > 0) {  // the previous tick's rows that are not in the output's gradient
      for (int64_t b = b0; b < b1; ++b) {
        prefetch_row<T>(row_address(p.out, (s - p.period) * B + b, H, p.begin), k);
        if (p.upstream.held != nullptr) prefetch_row<A>(row_address(p.upstream.held, n * B + b, k, 0), k);
        for (int64_t j = 0; j < p.num_sinks; ++j)
          prefetch_row<A>(row_address(p.sinks[j].sums, held_value[j] * B + b, p.sinks[j].width, p.begin), k, 1);
      }
    }
    gather(s, std::min(s + p.period, p.steps), n + 1);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t b = b0 + r;
      convert(h, p.out + (s * B + b) * H + p.begin, k);
      if (p.values != nullptr) copy_row(p.values + ((n + 1) * B + b) * k, h, k);
      times_derivative(dh[r], h, k, p.relu);
      A* delta = p.delta + (n * B + b) * k;
      copy_row(delta, dh[r], k);
      for (int64_t j = 0; j < p.num_sinks; ++j) {
        const HeldSink<A>& sink = p.sinks[j];
        A* __restrict sum = sink.sums + (held_value[j] * B + b) * sink.width + p.begin;
        for (int64_t c = 0; c < k; ++c) sum[c] += delta[c];
      }
      delta_of[r] = delta;
      std::fill(carry[r], carry[r] + k, A(0));
    }
    for (int64_t tile = 0; tile < rows; tile += kRowTile)
      accumulate_rows(diag, delta_of.data() + tile, carry.data() + tile, std::min(kRowTile, rows - tile));
  }
  gather(0, std::min(p.first, p.steps), 0);
  for (int64_t r = 0; r < rows; ++r) copy_row(p.grad_h0 + (b0 + r) * H + p.begin, dh[r], k);
}

}  // namespace

void fill_held_rows(const HeldRows<float>& p, int64_t s0, int64_t s1, int64_t b0, int64_t b1) {
  held_rows(p, s0, s1, b0, b1);
}
void fill_held_rows(const HeldRows<double>& p, int64_t s0, int64_t s1, int64_t b0, int64_t b1) {
  held_rows(p, s0, s1, b0, b1);
}
void fill_held_rows(const HeldRows<c10::BFloat16>& p, int64_t s0, int64_t s1, int64_t b0, int64_t b1) {
  held_rows(p, s0, s1, b0, b1);
}
void fill_held_rows(const HeldRows<c10::Half>& p, int64_t s0, int64_t s1, int64_t b0, int64_t b1) {
  held_rows(p, s0, s1, b0, b1);
}
void run_forward_recurrence(const ForwardRecurrence<float>& r, int64_t b0, int64_t b1) { forward_rows(r, b0, b1); }
void run_forward_recurrence(const ForwardRecurrence<double>& r, int64_t b0, int64_t b1) { forward_rows(r, b0, b1); }
void run_forward_recurrence(const ForwardRecurrence<c10::BFloat16, float>& r, int64_t b0, int64_t b1) {
  forward_rows(r, b0, b1);
}
void run_forward_recurrence(const ForwardRecurrence<c10::Half, float>& r, int64_t b0, int64_t b1) {
  forward_rows(r, b0, b1);
}
void run_backward_recurrence(const BackwardRecurrence<float>& r, int64_t b0, int64_t b1) { backward_rows(r, b0, b1); }
void run_backward_recurrence(const BackwardRecurrence<double>& r, int64_t b0, int64_t b1) { backward_rows(r, b0, b1); }
void run_backward_recurrence(const BackwardRecurrence<c10::BFloat16, float>& r, int64_t b0, int64_t b1) {
  backward_rows(r, b0, b1);
}
void run_backward_recurrence(const BackwardRecurrence<c10::Half, float>& r, int64_t b0, int64_t b1) {
  backward_rows(r, b0, b1);
}

}  // namespace cwrnn::CWRNN_ISA
