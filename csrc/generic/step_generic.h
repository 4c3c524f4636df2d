// The `step` op written once with ATen ops, for every device: the forward that CUDA runs (a few
// GEMMs per active group; the CPU has its own kernel, cpu/step_cpu.cpp), and the backward that
// every device runs. Arguments are checked by the callers (../checks.h).
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <optional>
#include <tuple>

namespace cwrnn {

at::Tensor step_generic(const at::Tensor& input, const at::Tensor& hx, const at::Tensor& weight_ih,
                        const at::Tensor& weight_hh, const std::optional<at::Tensor>& bias_ih,
                        const std::optional<at::Tensor>& bias_hh, c10::IntArrayRef periods,
                        c10::IntArrayRef module_sizes, int64_t t,
                        const std::optional<at::Tensor>& clocks, bool relu);

// Which of (grad_input, grad_hx, grad_weight_ih, grad_weight_hh, grad_bias) to compute; the
// others are returned as nullopt and cost nothing.
using StepGradientMask = std::array<bool, 5>;
using StepGradients = std::tuple<std::optional<at::Tensor>, std::optional<at::Tensor>,
                                 std::optional<at::Tensor>, std::optional<at::Tensor>,
                                 std::optional<at::Tensor>>;

// Gradients of h_next = step(...) given grad = dL/dh_next and output = h_next.
StepGradients step_backward_generic(const at::Tensor& grad, const at::Tensor& input,
                                    const at::Tensor& hx, const at::Tensor& weight_ih,
                                    const at::Tensor& weight_hh, const at::Tensor& output,
                                    c10::IntArrayRef periods, c10::IntArrayRef module_sizes,
                                    int64_t t, const std::optional<at::Tensor>& clocks, bool relu,
                                    StepGradientMask mask);

}  // namespace cwrnn
