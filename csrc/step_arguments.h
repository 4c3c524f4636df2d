// Checks of the `step` op's arguments shared by every device: each one whose failure would let a
// kernel touch memory it must not, or silently compute something else (the Python layer checks
// them first, with the same names).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <optional>

namespace cwrnn {

inline void check_step_tensor(const at::Tensor& t, const char* name, const at::Tensor& input) {
  TORCH_CHECK(t.scalar_type() == input.scalar_type(), name, " has dtype ", t.scalar_type(),
              " but input has dtype ", input.scalar_type());
  TORCH_CHECK(t.device() == input.device(), name, " is on ", t.device(), " but input is on ",
              input.device());
}

// The tensors of one layer, for a batch of B rows of I inputs: hx (B, H), weight_ih (H, I),
// weight_hh (H, H), biases (H); all with input's dtype and device.
inline void check_layer_tensors(const at::Tensor& input, int64_t B, int64_t I, const at::Tensor& hx,
                                const at::Tensor& weight_ih, const at::Tensor& weight_hh,
                                const std::optional<at::Tensor>& bias_ih,
                                const std::optional<at::Tensor>& bias_hh) {
  TORCH_CHECK(weight_hh.dim() == 2 && weight_hh.size(0) == weight_hh.size(1),
              "weight_hh must be square (H, H), got ", weight_hh.sizes());
  const int64_t H = weight_hh.size(0);
  TORCH_CHECK(weight_ih.dim() == 2 && weight_ih.size(0) == H && weight_ih.size(1) == I,
              "weight_ih must be (", H, ", ", I, "), got ", weight_ih.sizes());
  TORCH_CHECK(hx.dim() == 2 && hx.size(0) == B && hx.size(1) == H, "hx must be (", B, ", ", H,
              "), got ", hx.sizes());
  check_step_tensor(hx, "hx", input);
  check_step_tensor(weight_ih, "weight_ih", input);
  check_step_tensor(weight_hh, "weight_hh", input);
  if (bias_ih) {
    TORCH_CHECK(bias_ih->dim() == 1 && bias_ih->size(0) == H, "bias_ih must be (", H, "), got ",
                bias_ih->sizes());
    check_step_tensor(*bias_ih, "bias_ih", input);
  }
  if (bias_hh) {
    TORCH_CHECK(bias_hh->dim() == 1 && bias_hh->size(0) == H, "bias_hh must be (", H, "), got ",
                bias_hh->sizes());
    check_step_tensor(*bias_hh, "bias_hh", input);
  }
}

// The step op's arguments: input (B, I), the layer's tensors, t >= 0, clocks int64 (B,).
inline void check_step_arguments(const at::Tensor& input, const at::Tensor& hx,
                                 const at::Tensor& weight_ih, const at::Tensor& weight_hh,
                                 const std::optional<at::Tensor>& bias_ih,
                                 const std::optional<at::Tensor>& bias_hh, int64_t t,
                                 const std::optional<at::Tensor>& clocks) {
  TORCH_CHECK(input.dim() == 2, "input must be 2-D (B, I), got ", input.sizes());
  const int64_t B = input.size(0);
  check_layer_tensors(input, B, input.size(1), hx, weight_ih, weight_hh, bias_ih, bias_hh);
  TORCH_CHECK(t >= 0, "t must be >= 0, got ", t);
  if (clocks) {
    TORCH_CHECK(clocks->dim() == 1 && clocks->size(0) == B, "t (per-row clocks) must have shape (",
                B, ",), got ", clocks->sizes());
    TORCH_CHECK(clocks->scalar_type() == at::kLong, "t (per-row clocks) must be int64, got ",
                clocks->scalar_type());
    TORCH_CHECK(clocks->device() == input.device(), "t (per-row clocks) is on ", clocks->device(),
                " but input is on ", input.device());
  }
}

}  // namespace cwrnn
