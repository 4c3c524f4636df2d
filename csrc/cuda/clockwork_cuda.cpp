// CUDA kernels: the generic module-major of module_major.cpp (its GEMMs run through ATen, i.e.
// cuBLAS) with the per-group recurrences of recurrence_kernels.cuh (the slower groups' held terms
// fused in), on the current stream of the input's device, registered for the CUDA dispatch key.
//
// Half types (float16, bfloat16):
// - Forward runs in the input dtype: the GEMMs accumulate in float32 inside cuBLAS and round once
//   per call, the recurrence accumulates in float32 and keeps the group's own state in float32
//   from tick to tick; what is rounded to the half type is the stored output (which has to be),
//   the input term `pre` and each slower group's held term (each one GEMM's output, summed in
//   float32 by the recurrence). This keeps tensor-core GEMMs and half the memory traffic for the
//   pass that inference also runs.
// - Backward upcasts everything to float32, runs the float32 backward and casts the five
//   gradients back. In the input dtype, module_major_backward would accumulate the gradient that
//   reaches each state (from the output, h_n and every faster group) and grad_input (one term per
//   group ticking at a step) by repeated additions rounded to the half type (in bfloat16 each
//   costs up to 2^-9 relative, and a state collects one per faster group), and would store the
//   deltas that every weight gradient is summed from in it. The price is float32 GEMMs and a cast
//   of the saved tensors; so the backward recurrence kernels exist for float32 and float64 only.
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <initializer_list>
#include <utility>

#include "../generic/module_major.h"
#include "../kernel_dtypes.h"
#include "recurrence_cuda.h"

namespace cwrnn {
namespace {

using at::Tensor;

cudaStream_t current_stream(const Tensor& t) {
  return c10::cuda::getCurrentCUDAStream(t.device().index()).stream();
}

// The slower groups' held terms (forward) or sinks (backward), by value in the kernel's parameters.
template <typename scalar_t>
void fill_held(cuda::GroupParams<scalar_t>& p, const std::vector<HeldTerm>& terms) {
  TORCH_CHECK(terms.size() <= static_cast<size_t>(cuda::kMaxHeld), "cwrnn_ext CUDA kernel: a period group reads ",
              terms.size(), " slower groups, more than the ", cuda::kMaxHeld,
              " one launch takes; use at most ", cuda::kMaxHeld + 1, " distinct periods (or the CPU kernel)");
  p.num_held = static_cast<int>(terms.size());
  // The kernels take periods as ints: ticks_of (module_major.cpp) caps every period at the
  // sequence's length, which ticks the same, so that a period up to 2^63 - 1 fits.
  const int64_t longest_period = std::max<int64_t>(p.steps, 1);
  TORCH_INTERNAL_ASSERT(p.period <= longest_period);
  for (size_t j = 0; j < terms.size(); ++j) {
    const HeldTerm& h = terms[j];
    // The kernels move through a held term at most one value per tick (Cursor).
    TORCH_INTERNAL_ASSERT(h.values.is_contiguous() && h.values.size(1) == p.batch &&
                          h.values.size(2) >= p.begin + p.size && h.period >= p.period &&
                          h.period <= longest_period);
    p.held[j] = {h.values.data_ptr<scalar_t>(), h.values.size(2), h.first, h.period};
  }
}

// The kernels count steps in 32-bit ints (with room for a period past the end).
void check_steps(const Tensor& out) {
  TORCH_CHECK(out.size(0) < (int64_t(1) << 30), "cwrnn_ext CUDA kernel: sequences of at most 2^30 - 1 steps, got ",
              out.size(0));
}

class CudaRecurrence final : public RecurrenceBackend {
 public:
  void forward_with_held(const GroupTicks& g, const Tensor& pre, const Tensor& h0,
                         const Tensor& diag_t, const Tensor& out, Activation activation,
                         const std::vector<HeldTerm>& held) const override {
    TORCH_INTERNAL_ASSERT(pre.is_contiguous() && h0.is_contiguous() && diag_t.is_contiguous() &&
                          out.is_contiguous());
    check_steps(out);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out.scalar_type(), "cwrnn_forward_cuda", [&] {
      cuda::ForwardParams<scalar_t> p;
      fill_group(p, g, out, activation);
      p.diag = diag_t.const_data_ptr<scalar_t>();
      p.pre = pre.const_data_ptr<scalar_t>();
      p.h0 = h0.const_data_ptr<scalar_t>();
      p.out = out.mutable_data_ptr<scalar_t>();
      fill_held(p, held);
      cuda::launch_forward_recurrence(p, current_stream(out));
    });
  }

  void backward_with_held(const GroupTicks& g, const Tensor& out, const Tensor& grad_state,
                          const Tensor& diag, const Tensor& delta, const Tensor& grad_h0,
                          Activation activation, const std::vector<HeldTerm>& sinks) const override {
    TORCH_INTERNAL_ASSERT(out.is_contiguous() && grad_state.is_contiguous() && diag.is_contiguous() &&
                          delta.is_contiguous() && grad_h0.is_contiguous());
    check_steps(out);
    AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "cwrnn_backward_cuda", [&] {
      cuda::BackwardParams<scalar_t> p;
      fill_group(p, g, out, activation);
      p.diag = diag.const_data_ptr<scalar_t>();
      p.out = out.const_data_ptr<scalar_t>();
      p.grad_state = grad_state.const_data_ptr<scalar_t>();
      p.delta = delta.mutable_data_ptr<scalar_t>();
      p.grad_h0 = grad_h0.mutable_data_ptr<scalar_t>();
      fill_held(p, sinks);
      cuda::launch_backward_recurrence(p, current_stream(out));
    });
  }
};

bool is_half_type(at::ScalarType t) { return t == at::kHalf || t == at::kBFloat16; }

using Named = std::pair<const char*, const Tensor*>;

// The dispatcher sends a call here when any argument is a CUDA tensor, so CPU tensors (or tensors
// on another GPU) can arrive: every tensor must be on input's CUDA device, with input's dtype.
void check_arguments(const Tensor& input, std::initializer_list<Named> others,
                     const std::optional<Tensor>& lengths) {
  TORCH_CHECK(input.is_cuda(), "cwrnn_ext CUDA kernel: input is on ", input.device(),
              " but another argument is a CUDA tensor; all tensors must be on one CUDA device");
  check_kernel_dtype(KernelOp::kSequence, input);
  const auto dtype = input.scalar_type();
  for (const auto& [name, t] : others) {
    TORCH_CHECK(t->device() == input.device(), "cwrnn_ext CUDA kernel: ", name, " is on ",
                t->device(), " but input is on ", input.device(),
                "; all tensors must be on one CUDA device");
    TORCH_CHECK(t->scalar_type() == dtype, "cwrnn_ext CUDA kernel: ", name, " has dtype ",
                t->scalar_type(), " but input has dtype ", dtype);
  }
  if (lengths) {
    TORCH_CHECK(lengths->device() == input.device(), "cwrnn_ext CUDA kernel: lengths is on ",
                lengths->device(), " but input is on ", input.device(),
                "; all tensors must be on one CUDA device");
  }
}

std::tuple<Tensor, Tensor> forward_cuda(const Tensor& input, const Tensor& hx,
                                        const Tensor& weight_ih, const Tensor& weight_hh,
                                        const std::optional<Tensor>& bias, c10::IntArrayRef periods,
                                        c10::IntArrayRef module_sizes, int64_t t0, c10::string_view nonlinearity,
                                        const std::optional<Tensor>& lengths) {
  const Activation activation = parse_activation(nonlinearity);
  if (bias) {
    check_arguments(input, {{"hx", &hx}, {"weight_ih", &weight_ih}, {"weight_hh", &weight_hh},
                            {"bias", &*bias}}, lengths);
  } else {
    check_arguments(input, {{"hx", &hx}, {"weight_ih", &weight_ih}, {"weight_hh", &weight_hh}},
                    lengths);
  }
  const c10::cuda::CUDAGuard guard(input.device());
  return module_major_forward(input, hx, weight_ih, weight_hh, bias, periods, module_sizes, t0,
                              activation, lengths, CudaRecurrence());
}

OptionalGradients backward_cuda(const std::optional<Tensor>& grad_output,
                                const std::optional<Tensor>& grad_h_n, const Tensor& input, const Tensor& hx, const Tensor& weight_ih,
                                const Tensor& weight_hh, const Tensor& output,
                                c10::IntArrayRef periods, c10::IntArrayRef module_sizes,
                                int64_t t0, c10::string_view nonlinearity, const std::optional<Tensor>& lengths,
                                GradientMask output_mask) {
  const Activation activation = parse_activation(nonlinearity);
  check_arguments(input, {{"hx", &hx}, {"weight_ih", &weight_ih}, {"weight_hh", &weight_hh},
                          {"output", &output}}, lengths);
  if (grad_output) check_arguments(input, {{"grad_output", &*grad_output}}, std::nullopt);
  if (grad_h_n) check_arguments(input, {{"grad_h_n", &*grad_h_n}}, std::nullopt);
  const c10::cuda::CUDAGuard guard(input.device());
  const auto dtype = input.scalar_type();
  if (!is_half_type(dtype)) {
    return as_optional(module_major_backward(grad_output, grad_h_n, input, hx, weight_ih, weight_hh,
                                             output, periods, module_sizes, t0, activation, lengths,
                                             output_mask, CudaRecurrence()));
  }
  // Half types: in float32 throughout (see the top of this file).
  const auto up = [](const Tensor& t) { return t.to(at::kFloat); };
  const auto up_optional = [](const std::optional<Tensor>& t) {
    return t ? std::optional<Tensor>(t->to(at::kFloat)) : std::nullopt;
  };
  const auto down = [dtype](const Tensor& t) { return t.defined() ? t.to(dtype) : t; };
  const auto [gx, ghx, gw_ih, gw_hh, gb] = module_major_backward(
      up_optional(grad_output), up_optional(grad_h_n), up(input), up(hx), up(weight_ih), up(weight_hh), up(output),
      periods, module_sizes, t0, activation, lengths, output_mask, CudaRecurrence());
  return as_optional({down(gx), down(ghx), down(gw_ih), down(gw_hh), down(gb)});
}

}  // namespace

TORCH_LIBRARY_IMPL(cwrnn_ext, CUDA, m) {
  m.impl("forward", &forward_cuda);
  m.impl("backward", &backward_cuda);
}

}  // namespace cwrnn
