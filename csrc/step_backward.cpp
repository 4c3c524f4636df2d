// The step op's backward: one ATen composite (step_generic.h) for every device, registered once,
// below autograd (step_autograd.cpp is its autograd kernel, which refuses a second derivative).
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include "checks.h"
#include "schedule.h"
#include "generic/step_generic.h"

namespace cwrnn {
namespace {

using at::Tensor;

StepGradients step_backward(const Tensor& grad, const Tensor& input, const Tensor& hx,
                            const Tensor& weight_ih, const Tensor& weight_hh, const Tensor& output,
                            c10::IntArrayRef periods, c10::IntArrayRef module_sizes, int64_t t,
                            const std::optional<Tensor>& clocks, c10::string_view nonlinearity,
                            StepGradientMask mask) {
  check_kernel_dtype(KernelOp::kStep, input);
  const bool relu = parse_activation(nonlinearity) == Activation::kRelu;
  check_step_backward_arguments(grad, input, hx, weight_ih, weight_hh, output, t, clocks);
  const c10::DeviceGuard guard(input.device());
  return step_backward_generic(grad, input, hx, weight_ih, weight_hh, output, periods,
                               module_sizes, t, clocks, relu, mask);
}

}  // namespace

TORCH_LIBRARY_IMPL(cwrnn_ext, CompositeExplicitAutograd, m) {
  m.impl("step_backward", &step_backward);
}

}  // namespace cwrnn
