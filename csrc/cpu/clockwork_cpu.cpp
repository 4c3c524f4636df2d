// CPU kernels: the module-major schedule with the recurrences of recurrence.cpp, parallel over
// batch rows (each thread runs every tick of its rows; no per-step synchronisation).
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <cstdlib>
#include <string>

#include "../module_major.h"
#include "schedule_cpu.h"
#include "threads.h"

namespace cwrnn {
namespace {

using at::Tensor;

// The recurrences as a backend of the device-generic schedule (pre with the held terms added,
// a grad_state buffer). The CPU runs its own schedule (schedule_cpu.h) unless
// CWRNN_UNFUSED_HELD_TERMS=1: the tests use that to cover the generic path, which the CUDA backend
// takes, on the CPU too.
class CpuRecurrence final : public RecurrenceBackend {
 public:
  void forward(const GroupTicks& g, const Tensor& pre, const Tensor& h0, const Tensor& diag_t,
               const Tensor& out, Activation activation) const override {
    AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "cwrnn_forward_cpu", [&] {
      ForwardRecurrence<scalar_t> p;
      fill_group(p, g, out, activation);
      p.diag = rows_of<scalar_t>(diag_t);
      p.pre = rows_of<scalar_t>(pre);
      p.h0 = rows_of<scalar_t>(h0);
      p.out = mutable_rows_of<scalar_t>(out);
      run_forward(p);
    });
  }

  void backward(const GroupTicks& g, const Tensor& out, const Tensor& grad_state, const Tensor& diag,
                const Tensor& delta, const Tensor& grad_h0, Activation activation) const override {
    AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "cwrnn_backward_cpu", [&] {
      BackwardRecurrence<scalar_t> p;
      fill_group(p, g, out, activation);
      p.diag = rows_of<scalar_t>(diag);
      p.out = rows_of<scalar_t>(out);
      p.grad_state = rows_of<scalar_t>(grad_state);
      p.delta = mutable_rows_of<scalar_t>(delta);
      p.grad_h0 = mutable_rows_of<scalar_t>(grad_h0);
      run_backward(p);
    });
  }
};

bool generic_schedule() {
  const char* unfused = std::getenv("CWRNN_UNFUSED_HELD_TERMS");
  return unfused != nullptr && std::string(unfused) == "1";
}

void check_cpu(const Tensor& input) {
  TORCH_CHECK(input.device().is_cpu(), "expected CPU tensors, got ", input.device());
  const auto dtype = input.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble || dtype == at::kBFloat16 || dtype == at::kHalf,
              "the CPU kernel supports float32, float64, bfloat16 and float16 inputs, got ", dtype);
}

// The generic schedule on the CPU is a test of that schedule, for the types CUDA shares with it.
bool generic_schedule(const Tensor& input) {
  return generic_schedule() && (input.scalar_type() == at::kFloat || input.scalar_type() == at::kDouble);
}

std::tuple<Tensor, Tensor> forward_cpu(const Tensor& input, const Tensor& hx,
                                       const Tensor& weight_ih, const Tensor& weight_hh,
                                       const std::optional<Tensor>& bias, c10::IntArrayRef periods,
                                       c10::IntArrayRef module_sizes, int64_t t0, c10::string_view nonlinearity,
                                       const std::optional<Tensor>& lengths) {
  const Activation activation = parse_activation(nonlinearity);
  check_cpu(input);
  const ThreadsForBatch threads(input.dim() == 3 ? input.size(1) : 1);
  if (generic_schedule(input))
    return module_major_forward(input, hx, weight_ih, weight_hh, bias, periods, module_sizes, t0,
                                activation, lengths, CpuRecurrence());
  return cpu_forward(input, hx, weight_ih, weight_hh, bias, periods, module_sizes, t0, activation, lengths);
}

OptionalGradients backward_cpu(const std::optional<Tensor>& grad_output,
                               const std::optional<Tensor>& grad_h_n, const Tensor& input,
                               const Tensor& hx, const Tensor& weight_ih, const Tensor& weight_hh,
                               const Tensor& output, c10::IntArrayRef periods,
                               c10::IntArrayRef module_sizes, int64_t t0, c10::string_view nonlinearity,
                               const std::optional<Tensor>& lengths, GradientMask output_mask) {
  const Activation activation = parse_activation(nonlinearity);
  check_cpu(input);
  const ThreadsForBatch threads(input.dim() == 3 ? input.size(1) : 1);
  if (generic_schedule(input))
    return as_optional(module_major_backward(grad_output, grad_h_n, input, hx, weight_ih, weight_hh,
                                             output, periods, module_sizes, t0, activation, lengths,
                                             output_mask, CpuRecurrence()));
  return as_optional(cpu_backward(grad_output, grad_h_n, input, hx, weight_ih, weight_hh, output,
                                  periods, module_sizes, t0, activation, lengths, output_mask));
}

}  // namespace

TORCH_LIBRARY_IMPL(cwrnn_ext, CPU, m) {
  m.impl("forward", &forward_cpu);
  m.impl("backward", &backward_cpu);
}

}  // namespace cwrnn
