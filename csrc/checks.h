// Every check of the ops' arguments whose failure would let a kernel touch memory it must not, or
// silently compute something else; each entry point of every device calls these (the Python layer
// checks first, with the same names, so these messages are what direct op calls see). Which dtypes
// a kernel takes is kernel_dtypes.h's table.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <optional>

#include "kernel_dtypes.h"

namespace cwrnn {

// t has input's dtype and device.
inline void check_like_input(const at::Tensor& t, const char* name, const at::Tensor& input) {
  TORCH_CHECK(t.scalar_type() == input.scalar_type(), name, " has dtype ", t.scalar_type(),
              " but input has dtype ", input.scalar_type());
  TORCH_CHECK(t.device() == input.device(), name, " is on ", t.device(), " but input is on ",
              input.device());
}

// The weights and state of one layer, for a batch of B rows of I inputs: hx (B, H), weight_ih
// (H, I), weight_hh (H, H), all like input.
inline void check_layer_tensors(const at::Tensor& input, int64_t B, int64_t I, const at::Tensor& hx,
                                const at::Tensor& weight_ih, const at::Tensor& weight_hh) {
  TORCH_CHECK(weight_hh.dim() == 2 && weight_hh.size(0) == weight_hh.size(1),
              "weight_hh must be square (H, H), got ", weight_hh.sizes());
  const int64_t H = weight_hh.size(0);
  TORCH_CHECK(weight_ih.dim() == 2 && weight_ih.size(0) == H && weight_ih.size(1) == I,
              "weight_ih must be (", H, ", ", I, "), got ", weight_ih.sizes());
  TORCH_CHECK(hx.dim() == 2 && hx.size(0) == B && hx.size(1) == H, "hx must be (", B, ", ", H,
              "), got ", hx.sizes());
  check_like_input(hx, "hx", input);
  check_like_input(weight_ih, "weight_ih", input);
  check_like_input(weight_hh, "weight_hh", input);
}

// A bias (H), like input, if given.
inline void check_bias(const std::optional<at::Tensor>& bias, const char* name, int64_t H,
                       const at::Tensor& input) {
  if (!bias) return;
  TORCH_CHECK(bias->dim() == 1 && bias->size(0) == H, name, " must be (", H, "), got ", bias->sizes());
  check_like_input(*bias, name, input);
}

// The sequence ops: input (T, B, I), the layer's tensors, bias (H) = bias_ih + bias_hh, lengths
// int64 (B) in [0, T] (the values are read only on the host: on a GPU that would sync the
// stream, so there the Python layer checks them and module-major clamps them).
void check_forward_arguments(const at::Tensor& input, const at::Tensor& hx,
                             const at::Tensor& weight_ih, const at::Tensor& weight_hh,
                             const std::optional<at::Tensor>& bias,
                             const std::optional<at::Tensor>& lengths);
// The forward's arguments, plus output (T, B, H) and the gradients of (output, h_n), like input.
void check_backward_arguments(const std::optional<at::Tensor>& grad_output,
                              const std::optional<at::Tensor>& grad_h_n, const at::Tensor& input,
                              const at::Tensor& hx, const at::Tensor& weight_ih,
                              const at::Tensor& weight_hh, const at::Tensor& output,
                              const std::optional<at::Tensor>& lengths);

// The step op: input (B, I), the layer's tensors, biases (H), t >= 0, clocks int64 (B,).
void check_step_arguments(const at::Tensor& input, const at::Tensor& hx,
                          const at::Tensor& weight_ih, const at::Tensor& weight_hh,
                          const std::optional<at::Tensor>& bias_ih,
                          const std::optional<at::Tensor>& bias_hh, int64_t t,
                          const std::optional<at::Tensor>& clocks);
// The step's arguments, plus grad = dL/dh_next and output = h_next, (B, H) like input.
void check_step_backward_arguments(const at::Tensor& grad, const at::Tensor& input,
                                   const at::Tensor& hx, const at::Tensor& weight_ih,
                                   const at::Tensor& weight_hh, const at::Tensor& output, int64_t t,
                                   const std::optional<at::Tensor>& clocks);

}  // namespace cwrnn
