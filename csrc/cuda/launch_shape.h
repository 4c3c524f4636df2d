// The block shape and memory plan of the recurrence kernels (recurrence_kernels.cuh), as a pure
// function of the problem and two device numbers, so that it can be tested without a GPU.
//
// A block runs every tick of `rows` batch rows. Each row has split * units lanes (whole warps):
// lane (unit u, part s) owns output units c = u, u + units, ... (one per pass) and, for each,
// sums M[c][j] x[j] over its slice of j (4-wide chunks q * split + s), then the split lanes of a
// unit add their sums with warp shuffles. The first reg_chunks chunks of its W_ii slice stay in
// registers for the whole launch; the rest are read every tick from shared memory (filled once)
// or, when they do not fit there, from global memory.
//
// The choice minimises a cost model whose constants are guesses (no GPU has run these kernels):
// see csrc/cuda/NOTES.md, where the predictions it rests on are written down.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace cwrnn {
namespace cuda {

// Threads per block at most (the kernels' __launch_bounds__).
#ifndef CWRNN_CUDA_MAX_THREADS
#define CWRNN_CUDA_MAX_THREADS 512
#endif
constexpr int kMaxThreads = CWRNN_CUDA_MAX_THREADS;

#ifdef __CUDACC__
#define CWRNN_HOST_DEVICE __host__ __device__
#else
#define CWRNN_HOST_DEVICE
#endif

// Terms a lane keeps in registers, loaded one work item ahead: forward, held terms (`pre` has
// its own); backward, rows of grad_state and sinks. Further ones take a slower path.
constexpr int kSlots = 4;

// Chunks of 4 weights in registers: a small kernel (16 per lane) for small groups, a big one (64
// floats or 32 doubles per lane, at most kBigThreads threads so that a thread may hold them), and
// 0 (W_ii from memory only).
constexpr int kSmallRegChunks = 4;
constexpr int kBigThreads = 256;
inline int big_reg_chunks(size_t acc_bytes) { return acc_bytes == 8 ? 8 : 16; }

struct LaunchShape {
  int split = 1;        // lanes per output unit (a power of two <= 32)
  int units = 1;        // output units per pass
  int passes = 1;       // lane (u, s) owns units u + pass * units
  int chunks = 1;       // 4-wide chunks of j per lane (a state row: `split` runs of chunks + 1)
  int reg_chunks = 0;   // of them in registers (the kernel variant; only with one pass)
  bool shared_w = true; // the others in shared memory (else read from global memory every tick)
  int rows = 1;         // batch rows per block
  size_t shared_bytes = 0;
  int64_t blocks = 0;
  CWRNN_HOST_DEVICE int lanes() const { return split * units; }
  CWRNN_HOST_DEVICE int threads() const { return rows * lanes(); }
  CWRNN_HOST_DEVICE int stride() const { return 4 * (chunks + 1) * split; }
};

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Shared memory: two state buffers ([2][rows][stride], accumulation type), then W_ii's chunks
// beyond the registers, packed so that a warp's 16-byte reads are contiguous.
inline size_t state_bytes(const LaunchShape& s, size_t acc_bytes) {
  return static_cast<size_t>(2) * s.rows * s.stride() * acc_bytes;
}
inline size_t weight_bytes(const LaunchShape& s, size_t acc_bytes) {
  if (!s.shared_w) return 0;
  return static_cast<size_t>(s.passes) * (s.chunks - s.reg_chunks) * s.lanes() * 4 * acc_bytes;
}

// Predicted cycles for one tick of every row (untuned: see NOTES.md).
inline double predicted_cycles(const LaunchShape& s, int64_t k, int64_t batch, int64_t addends,
                               size_t acc_bytes, int sms) {
  int log_split = 0;
  while ((1 << log_split) < s.split) ++log_split;
  const double warps = s.threads() / 32.0;
  const int64_t w_loads = s.chunks - s.reg_chunks;  // chunks of W_ii read from memory per pass
  // Per warp and pass: a state load and 4 FMAs per chunk, a W load per chunk not in registers,
  // the shuffles, and ~130 for the rest (addends, sums, activation, stores, loop; counted in the
  // SASS of the sm_90 build, NOTES.md).
  const double per_lane = s.passes * (5.0 * s.chunks + w_loads + 8.0 * log_split + 130.0);
  const double issue = std::ceil(warps / 4.0) * per_lane;  // 4 schedulers per SM
  // Shared memory: a state chunk is one broadcast wavefront, a W chunk four.
  const double wavefronts = warps * s.passes * (s.chunks + (s.shared_w ? 4.0 * w_loads : 0.0));
  // W_ii from L2 at ~32 bytes per cycle per SM.
  const double from_l2 = s.shared_w ? 0.0 : static_cast<double>(k) * k * acc_bytes / 32.0;
  // The dependent chain: barrier and state load, two FMA chains per component, the shuffles,
  // the activation and the store for the next tick.
  const double latency = 60.0 + 4.0 * std::ceil(s.chunks / 2.0) + 30.0 * log_split + 100.0;
  const double slow_addends = addends - 1 > static_cast<int64_t>(s.split) * kSlots ? 400.0 : 0.0;
  const double waves = static_cast<double>(ceil_div(s.blocks, sms));
  return waves * (std::max({issue, wavefronts, from_l2}) + latency + slow_addends);
}

// k units in the group, `batch` rows, `addends` terms per tick besides W_ii h (forward: 1 + held
// terms; backward: sinks); `sms` multiprocessors, `shared_limit` bytes of shared memory a block may
// use (after opting in), at most `max_threads` per block. nullopt: not even one row's state fits.
inline std::optional<LaunchShape> choose_shape(int64_t k, int64_t batch, int64_t addends,
                                               size_t acc_bytes, int sms, size_t shared_limit,
                                               int max_threads = kMaxThreads) {
  if (k <= 0 || batch <= 0 || max_threads < 32) return std::nullopt;
  sms = std::max(sms, 1);
  std::optional<LaunchShape> best;
  double best_cost = 0;
  for (int split = 1; split <= 32; split *= 2) {
    for (int reg : {kSmallRegChunks, big_reg_chunks(acc_bytes), 0}) {
      const int threads = reg > kSmallRegChunks ? std::min(max_threads, kBigThreads) : max_threads;
      const int per_warp = 32 / split;  // units in a warp: a row's lanes are whole warps
      const int64_t max_units = static_cast<int64_t>(threads / split) / per_warp * per_warp;
      if (max_units == 0) continue;
      const int64_t passes = ceil_div(k, max_units);
      const int64_t units = ceil_div(ceil_div(k, passes), per_warp) * per_warp;
      const int64_t chunks = ceil_div(ceil_div(k, 4), split);
      if (passes > (1 << 20) || chunks > (1 << 20)) continue;  // keeps every index an int
      if (reg > 0 && passes > 1) continue;                     // registers hold one pass's W_ii
      if (reg == kSmallRegChunks && chunks > kSmallRegChunks) continue;
      if (reg > kSmallRegChunks && chunks <= kSmallRegChunks) continue;
      for (bool shared_w : {true, false}) {
        if (reg > 0 && !shared_w) continue;  // the register kernels keep the rest in shared memory
        LaunchShape s;
        s.split = split;
        s.units = static_cast<int>(units);
        s.passes = static_cast<int>(passes);
        s.chunks = static_cast<int>(std::max<int64_t>(chunks, reg));
        s.reg_chunks = reg;
        s.shared_w = shared_w;
        s.rows = 1;
        const size_t w = weight_bytes(s, acc_bytes);
        if (state_bytes(s, acc_bytes) + w > shared_limit) continue;
        // One row per block while the batch fits one per SM (the shortest tick); more rows per
        // block beyond that, as threads and shared memory allow.
        if (batch > sms) {
          s.rows = static_cast<int>(std::min<int64_t>(ceil_div(batch, sms), threads / s.lanes()));
          while (s.rows > 1 && state_bytes(s, acc_bytes) + w > shared_limit) --s.rows;
        }
        s.shared_bytes = state_bytes(s, acc_bytes) + w;
        s.blocks = ceil_div(batch, s.rows);
        const double cost = predicted_cycles(s, k, batch, addends, acc_bytes, sms);
        if (!best || cost < best_cost) {
          best = s;
          best_cost = cost;
        }
      }
    }
  }
  return best;
}

}  // namespace cuda
}  // namespace cwrnn
