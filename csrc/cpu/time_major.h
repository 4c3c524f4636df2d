// The CPU forward of a short sequence, one step after another through the step kernel: the same
// results as the module-major forward (module_major_cpu.h), without its fixed cost per call and group.
// forward_path.h decides when it runs; float32 and float64 (the step kernel's dtypes).
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <tuple>
#include <vector>

#include "../schedule.h"

namespace cwrnn {

// As the `forward` op, for the layout's period groups (make_period_groups); arguments checked by
// the caller (check_forward_arguments, t0 + T fits).
std::tuple<at::Tensor, at::Tensor> time_major_forward(
    const at::Tensor& input, const at::Tensor& hx, const at::Tensor& weight_ih,
    const at::Tensor& weight_hh, const std::optional<at::Tensor>& bias,
    const std::vector<PeriodGroup>& groups, int64_t t0, Activation activation,
    const std::optional<at::Tensor>& lengths);

}  // namespace cwrnn
