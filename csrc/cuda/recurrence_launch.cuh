// Launches of the recurrence kernels on a stream: the device's numbers, the block shape
// (launch_shape.h), the kernel variant (chunks of W_ii in registers; the rest in shared or global
// memory), error checks.
// Included by one .cu file per dtype (recurrence_<dtype>.cu) so that nvcc compiles them in parallel.
#pragma once

#include <c10/cuda/CUDAException.h>
#include <c10/util/Exception.h>
#include <cuda_runtime.h>

#include <climits>
#include <mutex>
#include <set>
#include <unordered_map>
#include <utility>

#include "launch_shape.h"
#include "recurrence_cuda.h"
#include "recurrence_kernels.cuh"

namespace cwrnn {
namespace cuda {
namespace detail {

// What the launches need to know of a device, queried once per device (the queries cost more
// than a small group's whole tick loop).
struct DeviceLimits {
  int sms;
  int shared_optin;  // the most dynamic shared memory a block may opt in to
};

inline const DeviceLimits& limits_of_current_device() {
  int device = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  static std::mutex mutex;
  static std::unordered_map<int, DeviceLimits> cache;  // node-based: references stay valid
  std::lock_guard<std::mutex> lock(mutex);
  auto found = cache.find(device);
  if (found != cache.end()) return found->second;
  DeviceLimits limits{};
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&limits.sms, cudaDevAttrMultiProcessorCount, device));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&limits.shared_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  return cache.emplace(device, limits).first->second;
}

// The shape for the current device (the caller's CUDAGuard made it input's device).
inline LaunchShape shape_for_current_device(int64_t k, int64_t batch, int64_t addends,
                                            size_t acc_bytes) {
  const DeviceLimits& limits = limits_of_current_device();
  const auto shape = choose_shape(k, batch, addends, acc_bytes, limits.sms,
                                  static_cast<size_t>(limits.shared_optin));
  TORCH_CHECK(shape.has_value(), "cwrnn_ext CUDA kernel: a period group of ", k,
              " units needs about ", 2 * (k + 3) / 4 * 4 * acc_bytes,
              " bytes of shared memory per batch row, more than the ", limits.shared_optin,
              " this GPU gives a block; use fewer units per period (or the CPU kernel)");
  TORCH_CHECK(shape->blocks <= INT_MAX, "cwrnn_ext CUDA kernel: batch too large (", batch, ")");
  return *shape;
}

// Lets `kernel` use up to the device's opt-in shared memory: once per kernel and device, under a
// lock (the attribute is per function and device; setting it on every launch to the exact size
// let two host threads launching the same kernel race).
template <typename Kernel>
void allow_optin_shared_memory(Kernel kernel) {
  int device = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  static std::mutex mutex;
  static std::set<std::pair<const void*, int>> done;
  std::lock_guard<std::mutex> lock(mutex);
  const auto key = std::make_pair(reinterpret_cast<const void*>(kernel), device);
  if (done.count(key)) return;
  C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      limits_of_current_device().shared_optin));
  done.insert(key);
}

template <typename Kernel, typename Params>
void launch(Kernel kernel, const LaunchShape& shape, const Params& p, cudaStream_t stream) {
  if (shape.shared_bytes > 48 * 1024) allow_optin_shared_memory(kernel);
  kernel<<<static_cast<unsigned>(shape.blocks), shape.threads(), shape.shared_bytes, stream>>>(p, shape);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// The kernel variant the shape asks for: chunks of W_ii in registers (small, big or none), the
// rest in shared memory or read from global memory.
template <template <typename, int, bool> class Select, typename scalar_t, typename Params>
void launch_variant(const LaunchShape& shape, const Params& p, cudaStream_t stream) {
  constexpr int big = sizeof(acc_type<scalar_t>) == 8 ? 8 : 16;
  TORCH_INTERNAL_ASSERT(big == big_reg_chunks(sizeof(acc_type<scalar_t>)));
  if (shape.reg_chunks == kSmallRegChunks) {
    launch(Select<scalar_t, kSmallRegChunks, true>::kernel, shape, p, stream);
  } else if (shape.reg_chunks == big) {
    launch(Select<scalar_t, big, true>::kernel, shape, p, stream);
  } else if (shape.shared_w) {
    TORCH_INTERNAL_ASSERT(shape.reg_chunks == 0);
    launch(Select<scalar_t, 0, true>::kernel, shape, p, stream);
  } else {
    TORCH_INTERNAL_ASSERT(shape.reg_chunks == 0);
    launch(Select<scalar_t, 0, false>::kernel, shape, p, stream);
  }
}

template <typename scalar_t, int kQ, bool kShared>
struct ForwardKernel {
  static constexpr auto kernel = forward_recurrence_kernel<scalar_t, kQ, kShared>;
};
template <typename scalar_t, int kQ, bool kShared>
struct BackwardKernel {
  static constexpr auto kernel = backward_recurrence_kernel<scalar_t, kQ, kShared>;
};

template <typename scalar_t>
void forward(const ForwardParams<scalar_t>& p, cudaStream_t stream) {
  if (p.batch == 0 || p.size == 0 || p.steps == 0) return;
  const LaunchShape shape =
      shape_for_current_device(p.size, p.batch, 1 + p.num_held, sizeof(acc_type<scalar_t>));
  launch_variant<ForwardKernel, scalar_t>(shape, p, stream);
}

template <typename scalar_t>
void backward(const BackwardParams<scalar_t>& p, cudaStream_t stream) {
  if (p.batch == 0 || p.size == 0) return;  // steps == 0 still writes grad_h0 (from row 0)
  const LaunchShape shape =
      shape_for_current_device(p.size, p.batch, p.num_held, sizeof(acc_type<scalar_t>));
  launch_variant<BackwardKernel, scalar_t>(shape, p, stream);
}

}  // namespace detail
}  // namespace cuda
}  // namespace cwrnn
