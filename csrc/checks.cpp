#include "checks.h"

namespace cwrnn {

using at::Tensor;

void check_forward_arguments(const Tensor& input, const Tensor& hx, const Tensor& weight_ih,
                             const Tensor& weight_hh, const std::optional<Tensor>& bias,
                             const std::optional<Tensor>& lengths) {
  TORCH_CHECK(input.dim() == 3, "input must be 3-D (T, B, I), got ", input.sizes());
  const int64_t T = input.size(0), B = input.size(1);
  check_layer_tensors(input, B, input.size(2), hx, weight_ih, weight_hh);
  check_bias(bias, "bias", weight_hh.size(0), input);
  if (!lengths) return;
  TORCH_CHECK(lengths->dim() == 1 && lengths->size(0) == B, "lengths must be (", B, "), got ",
              lengths->sizes());
  TORCH_CHECK(lengths->scalar_type() == at::kLong, "lengths must be int64, got ", lengths->scalar_type());
  TORCH_CHECK(lengths->device() == input.device(), "lengths is on ", lengths->device(),
              " but input is on ", input.device());
  if (B > 0 && lengths->is_cpu()) {
    TORCH_CHECK(lengths->min().item<int64_t>() >= 0 && lengths->max().item<int64_t>() <= T,
                "lengths must lie in [0, ", T, "]");
  }
}

void check_backward_arguments(const std::optional<Tensor>& grad_output,
                              const std::optional<Tensor>& grad_h_n, const Tensor& input,
                              const Tensor& hx, const Tensor& weight_ih, const Tensor& weight_hh,
                              const Tensor& output, const std::optional<Tensor>& lengths) {
  check_forward_arguments(input, hx, weight_ih, weight_hh, std::nullopt, lengths);
  const int64_t T = input.size(0), B = input.size(1), H = weight_hh.size(0);
  TORCH_CHECK(output.sizes() == at::IntArrayRef({T, B, H}), "output must be (T, B, H), got ",
              output.sizes());
  check_like_input(output, "output", input);
  if (grad_output) {
    TORCH_CHECK(grad_output->sizes() == output.sizes(), "grad_output must be (T, B, H), got ",
                grad_output->sizes());
    check_like_input(*grad_output, "grad_output", input);
  }
  if (grad_h_n) {
    TORCH_CHECK(grad_h_n->sizes() == hx.sizes(), "grad_h_n must be (B, H), got ", grad_h_n->sizes());
    check_like_input(*grad_h_n, "grad_h_n", input);
  }
}

void check_step_arguments(const Tensor& input, const Tensor& hx, const Tensor& weight_ih,
                          const Tensor& weight_hh, const std::optional<Tensor>& bias_ih,
                          const std::optional<Tensor>& bias_hh, int64_t t,
                          const std::optional<Tensor>& clocks) {
  TORCH_CHECK(input.dim() == 2, "input must be 2-D (B, I), got ", input.sizes());
  const int64_t B = input.size(0);
  check_layer_tensors(input, B, input.size(1), hx, weight_ih, weight_hh);
  check_bias(bias_ih, "bias_ih", weight_hh.size(0), input);
  check_bias(bias_hh, "bias_hh", weight_hh.size(0), input);
  TORCH_CHECK(t >= 0, "t must be >= 0, got ", t);
  if (!clocks) return;
  TORCH_CHECK(clocks->dim() == 1 && clocks->size(0) == B, "t (per-row clocks) must have shape (", B,
              ",), got ", clocks->sizes());
  TORCH_CHECK(clocks->scalar_type() == at::kLong, "t (per-row clocks) must be int64, got ",
              clocks->scalar_type());
  TORCH_CHECK(clocks->device() == input.device(), "t (per-row clocks) is on ", clocks->device(),
              " but input is on ", input.device());
}

void check_step_backward_arguments(const Tensor& grad, const Tensor& input, const Tensor& hx,
                                   const Tensor& weight_ih, const Tensor& weight_hh,
                                   const Tensor& output, int64_t t, const std::optional<Tensor>& clocks) {
  check_step_arguments(input, hx, weight_ih, weight_hh, std::nullopt, std::nullopt, t, clocks);
  check_like_input(grad, "grad", input);
  check_like_input(output, "output", input);
  TORCH_CHECK(grad.sizes() == hx.sizes() && output.sizes() == hx.sizes(),
              "grad and output must be (B, H) like hx, got ", grad.sizes(), " and ", output.sizes());
}

}  // namespace cwrnn
