// float16 instantiations of the recurrence kernels (one file per dtype, so that nvcc compiles
// them in parallel).
#include "recurrence_launch.cuh"

namespace cwrnn {
namespace cuda {

void launch_forward_recurrence(const ForwardParams<c10::Half>& p, cudaStream_t stream) {
  detail::forward(p, stream);
}

// No backward: gradients of float16 inputs are computed in float32 (clockwork_cuda.cpp).

}  // namespace cuda
}  // namespace cwrnn
