// The CPU kernels of the ops for tests only (schemas in ../ops.cpp): the device-generic code that
// CUDA runs, run on the CPU so that the tests can check it without a GPU.
// - _generic_forward / _generic_backward: the generic module-major (module_major.cpp) with the
//   plain recurrences (plain_recurrence.h) as its backend, in place of the CUDA kernels;
// - _generic_step: the `step` op's ATen composite (step_generic.cpp), CUDA's step.
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <vector>

#include "../checks.h"
#include "module_major.h"
#include "plain_recurrence.h"
#include "step_generic.h"

namespace cwrnn {
namespace {

using at::Tensor;

// The sums run in double for both storage types: the reference's own rounding stays far below
// what the tests compare at.
using Sum = double;

// module_major hands the backend contiguous tensors; the loops index them as row-major arrays.
template <typename T>
T* rows(const Tensor& t) {
  TORCH_INTERNAL_ASSERT(t.is_contiguous());
  return t.mutable_data_ptr<T>();
}

// The group's shape and the slower groups' held terms (forward) or sinks (backward); `held`
// keeps the descriptions the group points to.
template <typename T>
plain::Group<T> group_of(const GroupTicks& g, const Tensor& out, Activation activation, const Tensor& diag,
                         const std::vector<HeldTerm>& terms, std::vector<plain::Held<T>>& held) {
  for (const HeldTerm& h : terms) held.push_back({rows<T>(h.values), h.values.size(2), h.first, h.period});
  plain::Group<T> p;
  fill_group(p, g, out, activation);
  p.diag = rows<T>(diag);
  p.held = held.data();
  p.num_held = static_cast<int64_t>(held.size());
  return p;
}

class PlainRecurrence final : public RecurrenceBackend {
 public:
  void forward_with_held(const GroupTicks& g, const Tensor& pre, const Tensor& h0, const Tensor& diag_t,
                         const Tensor& out, Activation activation,
                         const std::vector<HeldTerm>& held) const override {
    AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "cwrnn_generic_forward", [&] {
      std::vector<plain::Held<scalar_t>> terms;
      const auto p = group_of(g, out, activation, diag_t, held, terms);
      plain::forward<Sum>(p, rows<scalar_t>(pre), rows<scalar_t>(h0), rows<scalar_t>(out));
    });
  }

  void backward_with_held(const GroupTicks& g, const Tensor& out, const Tensor& grad_state, const Tensor& diag,
                          const Tensor& delta, const Tensor& grad_h0, Activation activation,
                          const std::vector<HeldTerm>& sinks) const override {
    AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "cwrnn_generic_backward", [&] {
      std::vector<plain::Held<scalar_t>> sums;
      const auto p = group_of(g, out, activation, diag, sinks, sums);
      plain::backward<Sum>(p, rows<scalar_t>(out), rows<scalar_t>(grad_state), rows<scalar_t>(delta),
                           rows<scalar_t>(grad_h0));
    });
  }
};

// float32 and float64: the types whose CUDA backward runs the generic module-major.
void check_generic(const Tensor& input) {
  TORCH_CHECK(input.device().is_cpu(), "expected CPU tensors, got ", input.device());
  TORCH_CHECK(input.scalar_type() == at::kFloat || input.scalar_type() == at::kDouble,
              "_generic_forward / _generic_backward take float32 or float64, got ", input.scalar_type());
}

std::tuple<Tensor, Tensor> generic_forward(const Tensor& input, const Tensor& hx,
                                           const Tensor& weight_ih, const Tensor& weight_hh,
                                           const std::optional<Tensor>& bias, c10::IntArrayRef periods,
                                           c10::IntArrayRef module_sizes, int64_t t0,
                                           c10::string_view nonlinearity,
                                           const std::optional<Tensor>& lengths) {
  check_generic(input);
  return module_major_forward(input, hx, weight_ih, weight_hh, bias, periods, module_sizes, t0,
                              parse_activation(nonlinearity), lengths, PlainRecurrence());
}

OptionalGradients generic_backward(const std::optional<Tensor>& grad_output,
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
                                           PlainRecurrence()));
}

Tensor generic_step(const Tensor& input, const Tensor& hx, const Tensor& weight_ih,
                    const Tensor& weight_hh, const std::optional<Tensor>& bias_ih,
                    const std::optional<Tensor>& bias_hh, c10::IntArrayRef periods,
                    c10::IntArrayRef module_sizes, int64_t t, const std::optional<Tensor>& clocks,
                    c10::string_view nonlinearity) {
  TORCH_CHECK(input.device().is_cpu(), "expected CPU tensors, got ", input.device());
  const bool relu = parse_activation(nonlinearity) == Activation::kRelu;
  check_step_arguments(input, hx, weight_ih, weight_hh, bias_ih, bias_hh, t, clocks);
  return step_generic(input, hx, weight_ih, weight_hh, bias_ih, bias_hh, periods, module_sizes, t,
                      clocks, relu);
}

}  // namespace

TORCH_LIBRARY_IMPL(cwrnn_ext, CPU, m) {
  m.impl("_generic_forward", &generic_forward);
  m.impl("_generic_backward", &generic_backward);
  m.impl("_generic_step", &generic_step);
}

}  // namespace cwrnn
