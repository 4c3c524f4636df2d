// CUDA kernels for the sequential part of the module-major schedule: one period group's k x k
// recurrence over all of its ticks, forward and backward (semantics: ../cpu/recurrence.h).
//
// One thread block owns a tile of batch rows and runs every tick of the group for them, one
// __syncthreads per tick; rows are independent, so blocks never wait for each other (no grid-wide
// synchronisation, one launch per group). Inside a block, thread (cx, ry) owns output units
// c = cx, cx + cols, ... (a loop over column chunks when k > cols) of the local rows
// ry, ry + row_groups, ... (kRows of them, accumulated in registers so that each load of W_ii
// serves kRows rows). Shared memory holds two buffers of the tile's state (float32 for the half
// types, the input type otherwise: read at tick n, written for tick n + 1) and, when it fits, the
// whole diagonal block W_ii, loaded once per launch; otherwise W_ii is read from global memory
// (L2/L1-cached; every block reads all of it every tick). Stores into the (T, B, H) tensors are
// contiguous over the units of a row, so a warp's stores coalesce.
//
// Only kernels here, no CUDA runtime calls (recurrence_launch.cuh launches them), so that
// tests/cuda_emulation can run this very source on the CPU.
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>

#include "../cpu/recurrence.h"
#include "launch_shape.h"

namespace cwrnn {
namespace cuda {
namespace detail {

// Accumulation type: float32 for float32 and the half types, float64 for float64.
template <typename T>
struct AccType {
  using type = float;
};
template <>
struct AccType<double> {
  using type = double;
};

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

// A load through the read-only (non-coherent) data path, for W_ii when it is not resident.
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

// diag[j * k + c] (= W_ii[c][j]) from shared memory when W_ii is resident, else from global memory.
template <typename acc_t, bool kResident, typename scalar_t>
__device__ __forceinline__ acc_t diag_entry(const scalar_t* w_shared, const scalar_t* diag, int k,
                                            int j, int c) {
  if constexpr (kResident) {
    return static_cast<acc_t>(w_shared[j * k + c]);
  } else {
    return static_cast<acc_t>(load_readonly(diag + static_cast<int64_t>(j) * k + c));
  }
}

// ---------------------------------------------------------------------------------------------
// Forward: h_n = f(pre_n + W_ii h_{n-1}), written to out over the steps it is held.
// diag = W_ii^T (k x k, row j = input unit j), so diag[j * k + c] is contiguous over c.
template <typename scalar_t, int kRows, bool kResident>
__global__ void __launch_bounds__(kMaxThreads, 1)
    forward_recurrence_kernel(const ForwardRecurrence<scalar_t> p, const int cols,
                              const int row_groups) {
  using acc_t = typename AccType<scalar_t>::type;
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  const int k = static_cast<int>(p.size);
  const int rows = row_groups * kRows;
  acc_t* const state = reinterpret_cast<acc_t*>(shared_bytes);  // [2][rows][k]
  scalar_t* const w_shared = reinterpret_cast<scalar_t*>(state + 2 * rows * k);  // [k][k]
  const int cx = threadIdx.x % cols, ry = threadIdx.x / cols;
  const int64_t B = p.batch, H = p.hidden;
  const int64_t tile = static_cast<int64_t>(blockIdx.x) * rows;

  int local[kRows];  // the thread's rows within the tile
  int64_t row[kRows];  // and in the batch
  bool valid[kRows];
#pragma unroll
  for (int q = 0; q < kRows; ++q) {
    local[q] = ry + q * row_groups;
    row[q] = tile + local[q];
    valid[q] = row[q] < B;
  }

  if constexpr (kResident) {
    for (int i = threadIdx.x; i < k * k; i += blockDim.x) w_shared[i] = p.diag[i];
  }
  // The state before the first tick is h0; the group holds it on the steps before that tick.
  const int64_t before_first = p.first < p.steps ? p.first : p.steps;
  for (int c = cx; c < k; c += cols) {
#pragma unroll
    for (int q = 0; q < kRows; ++q) {
      const scalar_t v = valid[q] ? p.h0[row[q] * H + p.begin + c] : scalar_t(0);
      state[local[q] * k + c] = static_cast<acc_t>(v);
      if (valid[q]) {
        for (int64_t s = 0; s < before_first; ++s) p.out[(s * B + row[q]) * H + p.begin + c] = v;
      }
    }
  }
  __syncthreads();

  int cur = 0;
  for (int64_t n = 0; n < p.ticks; ++n) {
    const int64_t s = p.first + n * p.period;
    const int64_t held_until = s + p.period < p.steps ? s + p.period : p.steps;
    const acc_t* const prev = state + cur * rows * k;
    acc_t* const next = state + (cur ^ 1) * rows * k;
    for (int c = cx; c < k; c += cols) {
      acc_t pre[kRows], acc[kRows];
#pragma unroll
      for (int q = 0; q < kRows; ++q) {  // issued first: the loads complete during the j loop
        pre[q] = valid[q] ? static_cast<acc_t>(p.pre[(n * B + row[q]) * k + c]) : acc_t(0);
        acc[q] = acc_t(0);
      }
#pragma unroll 4
      for (int j = 0; j < k; ++j) {
        const acc_t w = diag_entry<acc_t, kResident>(w_shared, p.diag, k, j, c);
#pragma unroll
        for (int q = 0; q < kRows; ++q) acc[q] += prev[local[q] * k + j] * w;
      }
#pragma unroll
      for (int q = 0; q < kRows; ++q) {
        const acc_t h = activate(acc[q] + pre[q], p.relu);
        next[local[q] * k + c] = h;  // kept unrounded for the next tick
        if (valid[q]) {
          const scalar_t v = static_cast<scalar_t>(h);
          for (int64_t t = s; t < held_until; ++t) p.out[(t * B + row[q]) * H + p.begin + c] = v;
        }
      }
    }
    __syncthreads();
    cur ^= 1;
  }
}

// grad_state summed over rows [from, to) at batch row b, unit c of the group.
template <typename acc_t, typename scalar_t>
__device__ __forceinline__ acc_t gather(const BackwardRecurrence<scalar_t>& p, int64_t from,
                                        int64_t to, int64_t b, int c) {
  acc_t sum = acc_t(0);
  for (int64_t r = from; r < to; ++r)
    sum += static_cast<acc_t>(p.grad_state[(r * p.batch + b) * p.hidden + p.begin + c]);
  return sum;
}

// ---------------------------------------------------------------------------------------------
// Backward, last tick first:
//   delta_n = (G_n + W_ii^T delta_{n+1}) * f'(out at tick n),  G_n = grad_state summed over the
//   rows h_n is held (s_n + 1 .. min(s_n + period, T));  grad_h0 = rows 0 .. first + W^T delta_0.
// diag = W_ii (k x k), so (W_ii^T d)[c] = sum_j diag[j * k + c] d[j]: contiguous over c.
// G_n is first written into delta[n] (every tick at once, no dependency between them), then each
// tick reads it back: each element is written and read by the same thread, so no barrier.
template <typename scalar_t, int kRows, bool kResident>
__global__ void __launch_bounds__(kMaxThreads, 1)
    backward_recurrence_kernel(const BackwardRecurrence<scalar_t> p, const int cols,
                               const int row_groups) {
  using acc_t = typename AccType<scalar_t>::type;
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  const int k = static_cast<int>(p.size);
  const int rows = row_groups * kRows;
  acc_t* const state = reinterpret_cast<acc_t*>(shared_bytes);  // [2][rows][k]: deltas
  scalar_t* const w_shared = reinterpret_cast<scalar_t*>(state + 2 * rows * k);  // [k][k]
  const int cx = threadIdx.x % cols, ry = threadIdx.x / cols;
  const int64_t B = p.batch, H = p.hidden, T = p.steps, P = p.period;
  const int64_t tile = static_cast<int64_t>(blockIdx.x) * rows;

  int local[kRows];
  int64_t row[kRows];
  bool valid[kRows];
#pragma unroll
  for (int q = 0; q < kRows; ++q) {
    local[q] = ry + q * row_groups;
    row[q] = tile + local[q];
    valid[q] = row[q] < B;
  }

  if constexpr (kResident) {
    for (int i = threadIdx.x; i < k * k; i += blockDim.x) w_shared[i] = p.diag[i];
  }
  for (int64_t n = 0; n < p.ticks; ++n) {  // G_n into delta[n]
    const int64_t s = p.first + n * P;
    const int64_t until = s + P < T ? s + P : T;
    for (int c = cx; c < k; c += cols) {
#pragma unroll
      for (int q = 0; q < kRows; ++q) {
        if (valid[q])
          p.delta[(n * B + row[q]) * k + c] = static_cast<scalar_t>(gather<acc_t>(p, s + 1, until + 1, row[q], c));
      }
    }
  }
  if (p.ticks > 0) {  // the last tick: nothing comes back through W_ii
    const int64_t n = p.ticks - 1, s = p.first + n * P;
    for (int c = cx; c < k; c += cols) {
#pragma unroll
      for (int q = 0; q < kRows; ++q) {
        acc_t d = acc_t(0);
        if (valid[q]) {
          const int64_t at = (n * B + row[q]) * k + c;
          d = times_derivative(static_cast<acc_t>(p.delta[at]),
                               static_cast<acc_t>(p.out[(s * B + row[q]) * H + p.begin + c]), p.relu);
          p.delta[at] = static_cast<scalar_t>(d);
        }
        state[local[q] * k + c] = d;
      }
    }
  }
  __syncthreads();

  int cur = 0;
  for (int64_t n = p.ticks - 1; n >= 0; --n) {  // state[cur] holds delta_n
    const acc_t* const d_cur = state + cur * rows * k;
    acc_t* const d_prev = state + (cur ^ 1) * rows * k;
    const int64_t s_prev = p.first + (n - 1) * P;  // step of tick n - 1 (if n > 0)
    for (int c = cx; c < k; c += cols) {
      acc_t g[kRows], h[kRows], acc[kRows];
#pragma unroll
      for (int q = 0; q < kRows; ++q) {  // issued before the j loop, used after it
        g[q] = h[q] = acc[q] = acc_t(0);
        if (valid[q]) {
          if (n > 0) {
            g[q] = static_cast<acc_t>(p.delta[((n - 1) * B + row[q]) * k + c]);
            h[q] = static_cast<acc_t>(p.out[(s_prev * B + row[q]) * H + p.begin + c]);
          } else {  // ticks > 0 here, so first < T
            g[q] = gather<acc_t>(p, 0, p.first + 1, row[q], c);
          }
        }
      }
#pragma unroll 4
      for (int j = 0; j < k; ++j) {
        const acc_t w = diag_entry<acc_t, kResident>(w_shared, p.diag, k, j, c);
#pragma unroll
        for (int q = 0; q < kRows; ++q) acc[q] += d_cur[local[q] * k + j] * w;
      }
#pragma unroll
      for (int q = 0; q < kRows; ++q) {
        if (n > 0) {
          const acc_t d = times_derivative(acc[q] + g[q], h[q], p.relu);
          d_prev[local[q] * k + c] = d;
          if (valid[q]) p.delta[((n - 1) * B + row[q]) * k + c] = static_cast<scalar_t>(d);
        } else if (valid[q]) {
          p.grad_h0[row[q] * H + p.begin + c] = static_cast<scalar_t>(acc[q] + g[q]);
        }
      }
    }
    __syncthreads();
    cur ^= 1;
  }
  if (p.ticks == 0) {  // the group never ticks: its h0 is held to the end
    for (int c = cx; c < k; c += cols) {
#pragma unroll
      for (int q = 0; q < kRows; ++q) {
        if (valid[q])
          p.grad_h0[row[q] * H + p.begin + c] = static_cast<scalar_t>(gather<acc_t>(p, 0, T + 1, row[q], c));
      }
    }
  }
}

}  // namespace detail
}  // namespace cuda
}  // namespace cwrnn
