// The `step` op's forward on CUDA (its backward, for every device, is step_backward.cpp): the ATen
// composite of step_generic.cpp (a few cuBLAS GEMMs and elementwise kernels per active group) on
// the current stream, without host syncs: per-row clocks are compared on the device. A fused
// kernel (one launch per step) would cut the launch count; none is written. The tests check the
// same composite on the CPU through the test op _generic_step.
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../kernel_dtypes.h"
#include "../schedule.h"
#include "../checks.h"
#include "../generic/step_generic.h"

namespace cwrnn {
namespace {

using at::Tensor;

void check_cuda(const Tensor& input) {
  TORCH_CHECK(input.is_cuda(), "cwrnn_ext CUDA step: input is on ", input.device(),
              " but another argument is a CUDA tensor; all tensors must be on one CUDA device");
  check_kernel_dtype(KernelOp::kStep, input);
}

Tensor step_cuda(const Tensor& input, const Tensor& hx, const Tensor& weight_ih,
                 const Tensor& weight_hh, const std::optional<Tensor>& bias_ih,
                 const std::optional<Tensor>& bias_hh, c10::IntArrayRef periods,
                 c10::IntArrayRef module_sizes, int64_t t, const std::optional<Tensor>& clocks,
                 c10::string_view nonlinearity) {
  check_cuda(input);
  const bool relu = parse_activation(nonlinearity) == Activation::kRelu;
  check_step_arguments(input, hx, weight_ih, weight_hh, bias_ih, bias_hh, t, clocks);
  const c10::cuda::CUDAGuard guard(input.device());
  return step_generic(input, hx, weight_ih, weight_hh, bias_ih, bias_hh, periods, module_sizes, t,
                      clocks, relu);
}

}  // namespace

TORCH_LIBRARY_IMPL(cwrnn_ext, CUDA, m) {
  m.impl("step", &step_cuda);
}

}  // namespace cwrnn
