// The sequence ops on the CPU: `forward` takes the path forward_path.h chooses (time-major, or
// module-major with the recurrences of recurrence_kernels.h, parallel over batch rows); `backward`
// is module-major.
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <vector>

#include "../module_major.h"
#include "entry_checks.h"
#include "forward_path.h"
#include "schedule_cpu.h"
#include "threads.h"
#include "time_major.h"

namespace cwrnn {
namespace {

using at::Tensor;

// The recurrences as a backend of the device-generic schedule (module_major.cpp, the one the CUDA
// backend runs). The CPU runs its own schedule (schedule_cpu.h); the tests run the generic one on
// the CPU through the ops _generic_forward / _generic_backward below, to check it without a GPU.
class CpuRecurrence final : public RecurrenceBackend {
 public:
  void forward_with_held(const GroupTicks& g, const Tensor& pre, const Tensor& h0,
                         const Tensor& diag_t, const Tensor& out, Activation activation,
                         const std::vector<HeldTerm>& held) const override {
    AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "cwrnn_forward_cpu", [&] {
      std::vector<HeldSource<scalar_t>> sources;
      for (const auto& h : held)
        sources.push_back({rows_of<scalar_t>(h.values), h.values.size(2), h.first, h.period});
      ForwardRecurrence<scalar_t> p;
      fill_group(p, g, out, activation);
      p.diag = rows_of<scalar_t>(diag_t);
      p.pre = rows_of<scalar_t>(pre);
      p.h0 = rows_of<scalar_t>(h0);
      p.out = mutable_rows_of<scalar_t>(out);
      p.held = sources.data();
      p.num_held = static_cast<int64_t>(sources.size());
      run_forward(p);
    });
    fill_held(out, h0, {g});
  }

  void backward_with_held(const GroupTicks& g, const Tensor& out, const Tensor& grad_state,
                          const Tensor& diag, const Tensor& delta, const Tensor& grad_h0,
                          Activation activation, const std::vector<HeldTerm>& sinks) const override {
    AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "cwrnn_backward_cpu", [&] {
      std::vector<HeldSink<scalar_t>> sums;
      for (const auto& h : sinks)
        sums.push_back({mutable_rows_of<scalar_t>(h.values), h.values.size(2), h.first, h.period});
      BackwardRecurrence<scalar_t> p;
      fill_group(p, g, out, activation);
      p.diag = rows_of<scalar_t>(diag);
      p.out = rows_of<scalar_t>(out);
      p.grad_state = rows_of<scalar_t>(grad_state);
      p.delta = mutable_rows_of<scalar_t>(delta);
      p.grad_h0 = mutable_rows_of<scalar_t>(grad_h0);
      p.sinks = sums.data();
      p.num_sinks = static_cast<int64_t>(sums.size());
      run_backward(p);
    });
  }
};

std::tuple<Tensor, Tensor> forward_cpu(const Tensor& input, const Tensor& hx,
                                       const Tensor& weight_ih, const Tensor& weight_hh,
                                       const std::optional<Tensor>& bias, c10::IntArrayRef periods,
                                       c10::IntArrayRef module_sizes, int64_t t0, c10::string_view nonlinearity,
                                       const std::optional<Tensor>& lengths) {
  const Activation activation = parse_activation(nonlinearity);
  check_cpu_call(KernelOp::kSequence, input);
  check_forward_arguments(input, hx, weight_ih, weight_hh, bias, lengths);
  check_clocks_fit(t0, input.size(0));
  const size_t groups = make_period_groups(periods, module_sizes, weight_hh.size(0)).size();
  const ForwardPath path = choose_forward_path(input.size(0), input.size(1), weight_hh.size(0),
                                               groups, input.scalar_type());
  if (path == ForwardPath::kTimeMajor)
    return time_major_forward(input, hx, weight_ih, weight_hh, bias, periods, module_sizes, t0,
                              activation, lengths);
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

// The generic schedule on the CPU (float32 and float64, the types whose CUDA backward it shares).
void check_generic(const Tensor& input) {
  check_cpu_call(KernelOp::kSequence, input);
  TORCH_CHECK(input.scalar_type() == at::kFloat || input.scalar_type() == at::kDouble,
              "_generic_forward / _generic_backward take float32 or float64, got ", input.scalar_type());
}

std::tuple<Tensor, Tensor> generic_forward_cpu(const Tensor& input, const Tensor& hx,
                                               const Tensor& weight_ih, const Tensor& weight_hh,
                                               const std::optional<Tensor>& bias, c10::IntArrayRef periods,
                                               c10::IntArrayRef module_sizes, int64_t t0,
                                               c10::string_view nonlinearity,
                                               const std::optional<Tensor>& lengths) {
  check_generic(input);
  return module_major_forward(input, hx, weight_ih, weight_hh, bias, periods, module_sizes, t0,
                              parse_activation(nonlinearity), lengths, CpuRecurrence());
}

OptionalGradients generic_backward_cpu(const std::optional<Tensor>& grad_output,
                                       const std::optional<Tensor>& grad_h_n, const Tensor& input,
                                       const Tensor& hx, const Tensor& weight_ih, const Tensor& weight_hh,
                                       const Tensor& output, c10::IntArrayRef periods,
                                       c10::IntArrayRef module_sizes, int64_t t0,
                                       c10::string_view nonlinearity,
                                       const std::optional<Tensor>& lengths, GradientMask output_mask) {
  check_generic(input);
  return as_optional(module_major_backward(grad_output, grad_h_n, input, hx, weight_ih, weight_hh,
                                           output, periods, module_sizes, t0,
                                           parse_activation(nonlinearity), lengths, output_mask,
                                           CpuRecurrence()));
}

}  // namespace

// For tests only: forward and backward through the device-generic schedule (the one CUDA runs),
// with the same arguments and results as cwrnn_ext::forward / backward. No autograd, no fake kernel.
TORCH_LIBRARY_FRAGMENT(cwrnn_ext, m) {
  m.def(
      "_generic_forward(Tensor input, Tensor hx, Tensor weight_ih, Tensor weight_hh, Tensor? bias, "
      "int[] periods, int[] module_sizes, int t0, str nonlinearity, Tensor? lengths) -> (Tensor, Tensor)");
  m.def(
      "_generic_backward(Tensor? grad_output, Tensor? grad_h_n, Tensor input, Tensor hx, "
      "Tensor weight_ih, Tensor weight_hh, Tensor output, int[] periods, int[] module_sizes, int t0, "
      "str nonlinearity, Tensor? lengths, bool[5] output_mask=[True, True, True, True, True]) "
      "-> (Tensor?, Tensor?, Tensor?, Tensor?, Tensor?)");
}

TORCH_LIBRARY_IMPL(cwrnn_ext, CPU, m) {
  m.impl("forward", &forward_cpu);
  m.impl("backward", &backward_cpu);
  m.impl("_generic_forward", &generic_forward_cpu);
  m.impl("_generic_backward", &generic_backward_cpu);
}

}  // namespace cwrnn
