// The block shape and shared-memory plan of the recurrence kernels (recurrence_kernels.cuh), as a
// pure function of the problem and two device numbers, so that it can be tested without a GPU.
//
// Untuned first guess (written without a GPU to measure on): one block per SM when the batch
// allows it, one batch row per thread unless the batch is large (register tiles of 4 rows cut the
// reads of W_ii per FMA by 4 but lengthen each tick's critical path), W_ii kept in shared memory
// whenever it fits.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace cwrnn {
namespace cuda {

// Threads per block at most, and the widest span of output units across threads (cols). The
// emulation test (tests/cuda_emulation) builds with a smaller value to reach the column loop.
#ifndef CWRNN_CUDA_MAX_THREADS
#define CWRNN_CUDA_MAX_THREADS 512
#endif
constexpr int kMaxThreads = CWRNN_CUDA_MAX_THREADS;

struct LaunchShape {
  int cols = 1;             // threads across output units; thread (cx, ry) owns units cx, cx + cols, ...
  int row_groups = 1;       // threads across batch rows; a block has cols * row_groups threads
  int rows_per_thread = 1;  // kRows of the kernels: 1 or 4
  bool resident = false;    // W_ii in shared memory (else read from global memory every tick)
  size_t shared_bytes = 0;  // dynamic shared memory per block
  int64_t blocks = 0;
  int rows() const { return row_groups * rows_per_thread; }
  int threads() const { return cols * row_groups; }
};

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Shared memory per block: two buffers of the tile's state (acc type) and, if resident, W_ii.
inline size_t state_bytes(int64_t rows, int64_t k, size_t acc_bytes) {
  return static_cast<size_t>(2 * rows * k) * acc_bytes;
}

// k units in the group, `batch` rows; `sms` multiprocessors and `shared_limit` bytes of shared
// memory a block may use (after opting in). nullopt: not even one row's state fits.
inline std::optional<LaunchShape> choose_shape(int64_t k, int64_t batch, size_t scalar_bytes,
                                               size_t acc_bytes, int sms, size_t shared_limit) {
  if (k <= 0 || batch <= 0) return std::nullopt;
  sms = std::max(sms, 1);
  const size_t w_bytes = static_cast<size_t>(k) * static_cast<size_t>(k) * scalar_bytes;
  const bool w_fits = k <= 46340 && w_bytes + state_bytes(1, k, acc_bytes) <= shared_limit;  // and k*k fits an int

  LaunchShape shape;
  shape.cols = static_cast<int>(k <= 32 ? k : std::min<int64_t>(ceil_div(k, 32) * 32, kMaxThreads));
  const int max_groups = std::max(1, kMaxThreads / shape.cols);
  // Without a resident W_ii every block streams it from L2 each tick: more rows per block, fewer
  // blocks, less traffic.
  shape.rows_per_thread = (batch >= 8 * static_cast<int64_t>(sms) || !w_fits) ? 4 : 1;
  shape.row_groups = static_cast<int>(std::min<int64_t>(
      std::max<int64_t>(ceil_div(batch, int64_t(sms) * shape.rows_per_thread), 1), max_groups));

  if (w_fits && w_bytes + state_bytes(shape.rows(), k, acc_bytes) <= shared_limit) {
    shape.resident = true;
  } else if (w_fits) {
    // Fewer rows per block keep W_ii resident, if the batch still fits in one wave of blocks.
    const int64_t groups = std::min<int64_t>(
        static_cast<int64_t>((shared_limit - w_bytes) / state_bytes(1, k, acc_bytes)), max_groups);
    if (ceil_div(batch, groups) <= sms) {
      shape.rows_per_thread = 1;
      shape.row_groups = static_cast<int>(groups);
      shape.resident = true;
    }
  }
  if (!shape.resident) {
    while (state_bytes(shape.rows(), k, acc_bytes) > shared_limit && shape.rows() > 1) {
      if (shape.row_groups > 1) shape.row_groups = (shape.row_groups + 1) / 2;
      else shape.rows_per_thread = 1;
    }
    if (state_bytes(shape.rows(), k, acc_bytes) > shared_limit) return std::nullopt;
  }
  shape.shared_bytes = state_bytes(shape.rows(), k, acc_bytes) + (shape.resident ? w_bytes : 0);
  shape.blocks = ceil_div(batch, shape.rows());
  return shape;
}

}  // namespace cuda
}  // namespace cwrnn
