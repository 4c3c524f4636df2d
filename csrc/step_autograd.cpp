// Autograd for the `step` op, in C++ rather than with torch.library.register_autograd as the
// sequence ops do: a Python autograd kernel runs on every call, gradients wanted or not, and it
// costs about as much as a whole small nn.RNNCell step, the budget of a step here. Without
// gradients this kernel goes straight to the device kernel. The backward is the registered op
// `step_backward`, so torch.compile traces both passes; differentiating it again is refused.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include <array>
#include <optional>

#include "generic/step_generic.h"

namespace cwrnn {
namespace {

using at::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

using StepSignature = Tensor(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                             const std::optional<Tensor>&, const std::optional<Tensor>&,
                             c10::IntArrayRef, c10::IntArrayRef, int64_t,
                             const std::optional<Tensor>&, c10::string_view);
using StepBackwardSignature = StepGradients(const Tensor&, const Tensor&, const Tensor&,
                                            const Tensor&, const Tensor&, const Tensor&,
                                            c10::IntArrayRef, c10::IntArrayRef, int64_t,
                                            const std::optional<Tensor>&, c10::string_view,
                                            StepGradientMask);

const c10::TypedOperatorHandle<StepSignature>& step_op() {
  static const auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("cwrnn_ext::step", "").typed<StepSignature>();
  return op;
}

const c10::TypedOperatorHandle<StepBackwardSignature>& step_backward_op() {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("cwrnn_ext::step_backward", "")
                             .typed<StepBackwardSignature>();
  return op;
}

bool requires_grad(const std::optional<Tensor>& t) { return t && t->defined() && t->requires_grad(); }

Tensor or_undefined(const std::optional<Tensor>& t) { return t ? *t : Tensor(); }

class StepFunction : public torch::autograd::Function<StepFunction> {
 public:
  static Tensor forward(AutogradContext* ctx, const Tensor& input, const Tensor& hx,
                        const Tensor& weight_ih, const Tensor& weight_hh,
                        const std::optional<Tensor>& bias_ih, const std::optional<Tensor>& bias_hh,
                        c10::IntArrayRef periods, c10::IntArrayRef module_sizes, int64_t t,
                        const std::optional<Tensor>& clocks, c10::string_view nonlinearity) {
    at::AutoDispatchBelowADInplaceOrView guard;
    Tensor output = step_op().call(input, hx, weight_ih, weight_hh, bias_ih, bias_hh, periods,
                                   module_sizes, t, clocks, nonlinearity);
    ctx->save_for_backward({input, hx, weight_ih, weight_hh, output, or_undefined(clocks)});
    ctx->saved_data["periods"] = periods.vec();
    ctx->saved_data["module_sizes"] = module_sizes.vec();
    ctx->saved_data["t"] = t;
    ctx->saved_data["nonlinearity"] = std::string(nonlinearity);
    // Autograd numbers the inputs that are tensors; absent biases take no place.
    const int64_t bias_ih_edge = bias_ih ? 4 : -1;
    const int64_t bias_hh_edge = bias_hh ? (bias_ih ? 5 : 4) : -1;
    ctx->saved_data["bias_edges"] = std::vector<int64_t>{bias_ih_edge, bias_hh_edge};
    return output;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto bias_edges = ctx->saved_data["bias_edges"].toIntVector();
    const auto needs = [&](int64_t edge) { return edge >= 0 && ctx->needs_input_grad(edge); };
    const StepGradientMask mask{needs(0), needs(1), needs(2), needs(3),
                                needs(bias_edges[0]) || needs(bias_edges[1])};
    const auto periods = ctx->saved_data["periods"].toIntVector();
    const auto module_sizes = ctx->saved_data["module_sizes"].toIntVector();
    const std::optional<Tensor> clocks =
        saved[5].defined() ? std::optional<Tensor>(saved[5]) : std::nullopt;
    const auto [grad_input, grad_hx, grad_w_ih, grad_w_hh, grad_bias] = step_backward_op().call(
        grads[0], saved[0], saved[1], saved[2], saved[3], saved[4], periods, module_sizes,
        ctx->saved_data["t"].toInt(), clocks, ctx->saved_data["nonlinearity"].toStringRef(), mask);
    const Tensor bias = or_undefined(grad_bias);
    // One gradient per argument of forward, undefined for the ones that are not tensors.
    return {or_undefined(grad_input), or_undefined(grad_hx), or_undefined(grad_w_ih),
            or_undefined(grad_w_hh), needs(bias_edges[0]) ? bias : Tensor(),
            needs(bias_edges[1]) ? bias : Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

Tensor step_autograd(const Tensor& input, const Tensor& hx, const Tensor& weight_ih,
                     const Tensor& weight_hh, const std::optional<Tensor>& bias_ih,
                     const std::optional<Tensor>& bias_hh, c10::IntArrayRef periods,
                     c10::IntArrayRef module_sizes, int64_t t, const std::optional<Tensor>& clocks,
                     c10::string_view nonlinearity) {
  const bool track = at::GradMode::is_enabled() &&
                     (input.requires_grad() || hx.requires_grad() || weight_ih.requires_grad() ||
                      weight_hh.requires_grad() || requires_grad(bias_ih) || requires_grad(bias_hh));
  if (!track) {  // inference: no graph node, no saved tensors
    at::AutoDispatchBelowADInplaceOrView guard;
    return step_op().call(input, hx, weight_ih, weight_hh, bias_ih, bias_hh, periods, module_sizes,
                          t, clocks, nonlinearity);
  }
  return StepFunction::apply(input, hx, weight_ih, weight_hh, bias_ih, bias_hh, periods,
                             module_sizes, t, clocks, nonlinearity);
}

// The backward op has no derivative of its own: rather than letting autograd treat it as a
// constant (silently wrong second derivatives), a graph through it refuses to be differentiated.
class StepBackwardFunction : public torch::autograd::Function<StepBackwardFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const Tensor& grad, const Tensor& input,
                               const Tensor& hx, const Tensor& weight_ih, const Tensor& weight_hh,
                               const Tensor& output, c10::IntArrayRef periods,
                               c10::IntArrayRef module_sizes, int64_t t,
                               const std::optional<Tensor>& clocks, c10::string_view nonlinearity,
                               StepGradientMask mask) {
    at::AutoDispatchBelowADInplaceOrView guard;
    const auto grads = step_backward_op().call(grad, input, hx, weight_ih, weight_hh, output,
                                               periods, module_sizes, t, clocks, nonlinearity, mask);
    // Only the gradients asked for, in order: autograd cannot wrap an undefined output.
    variable_list defined;
    for (const auto& g : {std::get<0>(grads), std::get<1>(grads), std::get<2>(grads),
                          std::get<3>(grads), std::get<4>(grads)})
      if (g) defined.push_back(*g);
    return defined;
  }

  static variable_list backward(AutogradContext*, variable_list) {
    TORCH_CHECK(false,
                "cwrnn_ext: differentiating the Clockwork RNN step twice (double backward, e.g. a "
                "gradient penalty built with create_graph=True) is not supported; use "
                "cwrnn_ext.reference.clockwork_rnn for higher-order gradients");
  }
};

StepGradients step_backward_autograd(const Tensor& grad, const Tensor& input, const Tensor& hx,
                                     const Tensor& weight_ih, const Tensor& weight_hh,
                                     const Tensor& output, c10::IntArrayRef periods,
                                     c10::IntArrayRef module_sizes, int64_t t,
                                     const std::optional<Tensor>& clocks, c10::string_view nonlinearity,
                                     StepGradientMask mask) {
  const bool track = at::GradMode::is_enabled() &&
                     (grad.requires_grad() || input.requires_grad() || hx.requires_grad() ||
                      weight_ih.requires_grad() || weight_hh.requires_grad() || output.requires_grad());
  if (!track) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return step_backward_op().call(grad, input, hx, weight_ih, weight_hh, output, periods,
                                   module_sizes, t, clocks, nonlinearity, mask);
  }
  const auto grads = StepBackwardFunction::apply(grad, input, hx, weight_ih, weight_hh, output,
                                                 periods, module_sizes, t, clocks, nonlinearity, mask);
  size_t next = 0;
  const auto optional = [&](size_t i) {
    return mask[i] ? std::optional<Tensor>(grads[next++]) : std::nullopt;
  };
  auto g0 = optional(0);
  auto g1 = optional(1);
  auto g2 = optional(2);
  auto g3 = optional(3);
  auto g4 = optional(4);
  return {g0, g1, g2, g3, g4};
}

}  // namespace

TORCH_LIBRARY_IMPL(cwrnn_ext, Autograd, m) {
  m.impl("step", &step_autograd);
  m.impl("step_backward", &step_backward_autograd);
}

}  // namespace cwrnn
