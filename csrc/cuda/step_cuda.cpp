// The `step` op on CUDA: the ATen composite of step_generic.cpp (a few cuBLAS GEMMs and
// elementwise kernels per active group) on the current stream, without host syncs: per-row
// clocks are compared on the device. A fused kernel (one launch per step) would cut the launch
// count; this composite is what exists today, and it has only been compiled, never run on a GPU
// here (the tests check the same composite on the CPU through the test op _generic_step).
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../schedule.h"
#include "../step_arguments.h"
#include "../generic/step_generic.h"

namespace cwrnn {
namespace {

using at::Tensor;

void check_cuda(const Tensor& input) {
  TORCH_CHECK(input.is_cuda(), "cwrnn_ext CUDA step: input is on ", input.device(),
              " but another argument is a CUDA tensor; all tensors must be on one CUDA device");
  const auto dtype = input.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble || dtype == at::kHalf ||
                  dtype == at::kBFloat16,
              "the CUDA step supports float32, float64, float16 and bfloat16 inputs, got ", dtype);
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

StepGradients step_backward_cuda(const Tensor& grad, const Tensor& input, const Tensor& hx,
                                 const Tensor& weight_ih, const Tensor& weight_hh,
                                 const Tensor& output, c10::IntArrayRef periods,
                                 c10::IntArrayRef module_sizes, int64_t t,
                                 const std::optional<Tensor>& clocks,
                                 c10::string_view nonlinearity, StepGradientMask mask) {
  check_cuda(input);
  const bool relu = parse_activation(nonlinearity) == Activation::kRelu;
  check_step_arguments(input, hx, weight_ih, weight_hh, std::nullopt, std::nullopt, t, clocks);
  check_step_tensor(grad, "grad", input);
  check_step_tensor(output, "output", input);
  TORCH_CHECK(grad.sizes() == hx.sizes() && output.sizes() == hx.sizes(),
              "grad and output must be (B, H) like hx, got ", grad.sizes(), " and ", output.sizes());
  const c10::cuda::CUDAGuard guard(input.device());
  return step_backward_generic(grad, input, hx, weight_ih, weight_hh, output, periods,
                               module_sizes, t, clocks, relu, mask);
}

}  // namespace

TORCH_LIBRARY_IMPL(cwrnn_ext, CUDA, m) {
  m.impl("step", &step_cuda);
  m.impl("step_backward", &step_backward_cuda);
}

}  // namespace cwrnn
