// float32 instantiations of the recurrence kernels (one file per dtype, so that nvcc compiles
// them in parallel).
#include "recurrence_launch.cuh"

namespace cwrnn {
namespace cuda {

void launch_forward_recurrence(const ForwardParams<float>& p, cudaStream_t stream) {
  detail::forward(p, stream);
}

void launch_backward_recurrence(const BackwardParams<float>& p, cudaStream_t stream) {
  detail::backward(p, stream);
}

}  // namespace cuda
}  // namespace cwrnn
