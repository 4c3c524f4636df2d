// What every CPU op checks first: CPU tensors, a dtype its kernel takes (kernel_dtypes.h), and the
// CWRNN_* settings, so that a bad value is refused by every call whichever path it would take.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include "../kernel_dtypes.h"
#include "settings.h"

namespace cwrnn {

inline void check_cpu_call(KernelOp op, const at::Tensor& input) {
  TORCH_CHECK(input.device().is_cpu(), "expected CPU tensors, got ", input.device());
  check_kernel_dtype(op, input);
  settings();
}

}  // namespace cwrnn
