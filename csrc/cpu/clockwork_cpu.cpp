// CPU kernels: the module-major schedule with the recurrences of recurrence_kernels.h, parallel over
// batch rows (each thread runs every tick of its rows; no per-step synchronisation).
#include <torch/library.h>

#include "../generic/module_major.h"
#include "schedule_cpu.h"
#include "threads.h"

namespace cwrnn {
namespace {

using at::Tensor;

void check_cpu(const Tensor& input) {
  TORCH_CHECK(input.device().is_cpu(), "expected CPU tensors, got ", input.device());
  const auto dtype = input.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble || dtype == at::kBFloat16 || dtype == at::kHalf,
              "the CPU kernel supports float32, float64, bfloat16 and float16 inputs, got ", dtype);
}

std::tuple<Tensor, Tensor> forward_cpu(const Tensor& input, const Tensor& hx,
                                       const Tensor& weight_ih, const Tensor& weight_hh,
                                       const std::optional<Tensor>& bias, c10::IntArrayRef periods,
                                       c10::IntArrayRef module_sizes, int64_t t0, c10::string_view nonlinearity,
                                       const std::optional<Tensor>& lengths) {
  const Activation activation = parse_activation(nonlinearity);
  check_cpu(input);  // cpu_forward sets its own thread count
  return cpu_forward(input, hx, weight_ih, weight_hh, bias, periods, module_sizes, t0, activation, lengths);
}

OptionalGradients backward_cpu(const std::optional<Tensor>& grad_output,
                               const std::optional<Tensor>& grad_h_n, const Tensor& input,
                               const Tensor& hx, const Tensor& weight_ih, const Tensor& weight_hh,
                               const Tensor& output, c10::IntArrayRef periods,
                               c10::IntArrayRef module_sizes, int64_t t0, c10::string_view nonlinearity,
                               const std::optional<Tensor>& lengths, GradientMask output_mask) {
  const Activation activation = parse_activation(nonlinearity);
  check_cpu(input);  // cpu_backward sets its own thread count
  return as_optional(cpu_backward(grad_output, grad_h_n, input, hx, weight_ih, weight_hh, output,
                                  periods, module_sizes, t0, activation, lengths, output_mask));
}

}  // namespace

TORCH_LIBRARY_IMPL(cwrnn_ext, CPU, m) {
  m.impl("forward", &forward_cpu);
  m.impl("backward", &backward_cpu);
}

}  // namespace cwrnn
