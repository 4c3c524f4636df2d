// Which dtypes each op's kernel takes on each device: the one table that the C++ checks use and
// that Python reads (_C.kernel_dtypes(), cwrnn_ext/ops.py), so the two cannot disagree.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>
#include <c10/util/ArrayRef.h>
#include <c10/util/Exception.h>

#include <string>

namespace cwrnn {

// The sequence ops (forward, backward): float32, float64 and the two half types everywhere (on
// the CPU the half types are stored as such and computed in float32).
constexpr c10::ScalarType kSequenceDtypes[] = {c10::kFloat, c10::kDouble, c10::kBFloat16, c10::kHalf};
// The step op and the CPU's time-major forward: the CPU kernel has float32 and float64; CUDA's
// ATen composite takes every floating type the sequence ops take.
constexpr c10::ScalarType kCpuStepDtypes[] = {c10::kFloat, c10::kDouble};
constexpr c10::ScalarType kCudaStepDtypes[] = {c10::kFloat, c10::kDouble, c10::kBFloat16, c10::kHalf};

enum class KernelOp { kSequence, kStep };

inline c10::ArrayRef<c10::ScalarType> kernel_dtypes(KernelOp op, c10::DeviceType device) {
  if (op == KernelOp::kStep)
    return device == c10::DeviceType::CPU ? c10::ArrayRef<c10::ScalarType>(kCpuStepDtypes)
                                          : c10::ArrayRef<c10::ScalarType>(kCudaStepDtypes);
  return kSequenceDtypes;
}

inline bool has_kernel_for(KernelOp op, const at::Tensor& input) {
  for (const auto dtype : kernel_dtypes(op, input.device().type()))
    if (dtype == input.scalar_type()) return true;
  return false;
}

// input's dtype is one the op's kernel takes on input's device, or a message naming both.
inline void check_kernel_dtype(KernelOp op, const at::Tensor& input) {
  if (has_kernel_for(op, input)) return;
  const auto device = input.device().type();
  std::string names;
  for (const auto dtype : kernel_dtypes(op, device))
    names += std::string(names.empty() ? "" : ", ") + c10::toString(dtype);
  TORCH_CHECK(false, "cwrnn_ext: the ", c10::DeviceTypeName(device, /*lower_case=*/true), " ",
              op == KernelOp::kStep ? "step" : "sequence", " kernel takes ", names, ", got ",
              input.scalar_type());
}

}  // namespace cwrnn
