// The sequence ops on the CPU: `forward` takes the path forward_path.h chooses (time-major, or
// module-major with the recurrences of recurrence_kernels.h, parallel over batch rows); `backward`
// is module-major.
#include <torch/library.h>

#include <vector>

#include "../generic/module_major.h"
#include "entry_checks.h"
#include "forward_path.h"
#include "module_major_cpu.h"
#include "threads.h"
#include "time_major.h"

namespace cwrnn {
namespace {

using at::Tensor;


std::tuple<Tensor, Tensor> forward_cpu(const Tensor& input, const Tensor& hx,
                                       const Tensor& weight_ih, const Tensor& weight_hh,
                                       const std::optional<Tensor>& bias, c10::IntArrayRef periods,
                                       c10::IntArrayRef module_sizes, int64_t t0, c10::string_view nonlinearity,
                                       const std::optional<Tensor>& lengths) {
  const Activation activation = parse_activation(nonlinearity);
  check_cpu_call(KernelOp::kSequence, input);
  check_forward_arguments(input, hx, weight_ih, weight_hh, bias, lengths);
  check_clocks_fit(t0, input.size(0));
  const auto groups = make_period_groups(periods, module_sizes, weight_hh.size(0));
  const ForwardPath path = choose_forward_path(input.size(0), input.size(1), weight_hh.size(0),
                                               groups.size(), input.scalar_type());
  if (path == ForwardPath::kTimeMajor)
    return time_major_forward(input, hx, weight_ih, weight_hh, bias, groups, t0, activation, lengths);
  return cpu_forward(input, hx, weight_ih, weight_hh, bias, periods, module_sizes, t0, activation,
                     lengths, path);  // sets its own thread count
}

OptionalGradients backward_cpu(const std::optional<Tensor>& grad_output,
                               const std::optional<Tensor>& grad_h_n, const Tensor& input,
                               const Tensor& hx, const Tensor& weight_ih, const Tensor& weight_hh,
                               const Tensor& output, c10::IntArrayRef periods,
                               c10::IntArrayRef module_sizes, int64_t t0, c10::string_view nonlinearity,
                               const std::optional<Tensor>& lengths, GradientMask output_mask) {
  const Activation activation = parse_activation(nonlinearity);
  check_cpu_call(KernelOp::kSequence, input);  // cpu_backward sets its own thread count
  return as_optional(cpu_backward(grad_output, grad_h_n, input, hx, weight_ih, weight_hh, output,
                                  periods, module_sizes, t0, activation, lengths, output_mask));
}

}  // namespace

TORCH_LIBRARY_IMPL(cwrnn_ext, CPU, m) {
  m.impl("forward", &forward_cpu);
  m.impl("backward", &backward_cpu);
}

}  // namespace cwrnn
