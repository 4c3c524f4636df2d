// Host-side entry points of the CUDA recurrences (recurrence_kernels.cuh), one overload per dtype.
// Parameters and semantics: recurrence_params.h (the same as the CPU loops, ../cpu/recurrence.h).
//
// The forward runs for float32, float64, float16 and bfloat16 (accumulating in float32 for the
// half types, in float64 for float64). The backward runs for float32 and float64 only: the CUDA
// entry point (clockwork_cuda.cpp) computes the gradients of half-type inputs in float32.
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <cuda_runtime_api.h>

#include "recurrence_params.h"

namespace cwrnn {
namespace cuda {

void launch_forward_recurrence(const ForwardParams<float>& p, cudaStream_t stream);
void launch_forward_recurrence(const ForwardParams<double>& p, cudaStream_t stream);
void launch_forward_recurrence(const ForwardParams<c10::Half>& p, cudaStream_t stream);
void launch_forward_recurrence(const ForwardParams<c10::BFloat16>& p, cudaStream_t stream);

void launch_backward_recurrence(const BackwardParams<float>& p, cudaStream_t stream);
void launch_backward_recurrence(const BackwardParams<double>& p, cudaStream_t stream);

}  // namespace cuda
}  // namespace cwrnn
