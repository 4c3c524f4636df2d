// The CPU module-major (the generic one is ../generic/module_major.h): the module-major and
// pipelined forward paths (forward_path.h) and every CPU backward.
//
// Same arithmetic, arranged to allocate, touch and synchronise as little as possible, since in a
// plain process every freshly mapped page costs a fault on first touch:
// - the forward is one parallel region: batch rows are independent through every group, so each
//   thread runs every group (slowest first) over its own rows; each recurrence computes its input
//   projection and its held term for the faster groups as it goes, so there is no GEMM, no
//   pre-activation buffer and no per-group fork and join;
// - the recurrences write only their tick rows of the output; the held rows are filled in one
//   pass at the end, along whole rows (fill_held_rows), instead of one group's columns at a time;
// - the backward reads the upstream gradient where it lies (grad_output, grad_h_n, the faster
//   groups' per-held-value sums) instead of assembling a (T + 1, B, H) buffer;
// - every other temporary comes from workspace blocks reused across calls (workspace.h).
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <tuple>
#include <vector>

#include "../generic/module_major.h"
#include "forward_path.h"
#include "recurrence.h"

namespace cwrnn {

// The module-major forward (path: kModuleMajor, or kPipelined where forward_path.h's rule says so),
// arguments checked by the caller.
std::tuple<at::Tensor, at::Tensor> cpu_forward(
    const at::Tensor& input, const at::Tensor& hx, const at::Tensor& weight_ih,
    const at::Tensor& weight_hh, const std::optional<at::Tensor>& bias, c10::IntArrayRef periods,
    c10::IntArrayRef module_sizes, int64_t t0, Activation activation,
    const std::optional<at::Tensor>& lengths, ForwardPath path);

// As module_major_backward.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> cpu_backward(
    const std::optional<at::Tensor>& grad_output, const std::optional<at::Tensor>& grad_h_n,
    const at::Tensor& input, const at::Tensor& hx, const at::Tensor& weight_ih,
    const at::Tensor& weight_hh, const at::Tensor& output, c10::IntArrayRef periods,
    c10::IntArrayRef module_sizes, int64_t t0, Activation activation, const std::optional<at::Tensor>& lengths,
    GradientMask mask);

// The data of a tensor that the recurrences index as row-major arrays: checked contiguous first,
// since they do raw pointer arithmetic on it.
template <typename T>
const T* rows_of(const at::Tensor& t) {
  TORCH_CHECK(t.is_contiguous(), "cwrnn_ext internal error: a tensor the CPU recurrence reads as "
              "row-major is not contiguous (sizes ", t.sizes(), ", strides ", t.strides(), ")");
  return t.const_data_ptr<T>();
}
template <typename T>
T* mutable_rows_of(const at::Tensor& t) {
  TORCH_CHECK(t.is_contiguous(), "cwrnn_ext internal error: a tensor the CPU recurrence writes as "
              "row-major is not contiguous (sizes ", t.sizes(), ", strides ", t.strides(), ")");
  return t.mutable_data_ptr<T>();
}

}  // namespace cwrnn
