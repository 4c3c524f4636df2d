// CPU kernels: the module-major schedule with the recurrences of recurrence.cpp, parallel over
// batch rows (each thread runs every tick of its rows; no per-step synchronisation).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "../module_major.h"
#include "recurrence.h"

namespace cwrnn {
namespace {

using at::Tensor;

// Rows per thread below which spreading the batch over threads costs more than it saves.
constexpr int64_t kMinRowsPerThread = 2;

template <typename T>
std::vector<HeldSource<T>> sources_of(const std::vector<HeldTerm>& terms) {
  std::vector<HeldSource<T>> sources;
  for (const auto& h : terms)
    sources.push_back({h.values.const_data_ptr<T>(), h.values.size(2), h.first, h.period});
  return sources;
}

class CpuRecurrence final : public RecurrenceBackend {
 public:
  void forward_with_held(const GroupTicks& g, const Tensor& pre, const Tensor& h0,
                         const Tensor& diag_t, const Tensor& out, bool relu,
                         const std::vector<HeldTerm>& held) const override {
    AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "cwrnn_forward_cpu", [&] {
      const auto sources = sources_of<scalar_t>(held);
      ForwardRecurrence<scalar_t> p;
      fill_group(p, g, out, relu);
      p.diag = diag_t.const_data_ptr<scalar_t>();
      p.pre = pre.const_data_ptr<scalar_t>();
      p.h0 = h0.const_data_ptr<scalar_t>();
      p.out = out.mutable_data_ptr<scalar_t>();
      p.held = sources.data();
      p.num_held = static_cast<int64_t>(sources.size());
      at::parallel_for(0, p.batch, kMinRowsPerThread,
                       [&](int64_t b0, int64_t b1) { run_forward_recurrence(p, b0, b1); });
    });
  }

  void backward_with_held(const GroupTicks& g, const Tensor& out, const Tensor& grad_state,
                          const Tensor& diag, const Tensor& delta, const Tensor& grad_h0, bool relu,
                          const std::vector<HeldTerm>& sinks) const override {
    AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "cwrnn_backward_cpu", [&] {
      const auto sink_sources = sources_of<scalar_t>(sinks);
      BackwardRecurrence<scalar_t> p;
      fill_group(p, g, out, relu);
      p.diag = diag.const_data_ptr<scalar_t>();
      p.out = out.const_data_ptr<scalar_t>();
      p.grad_state = grad_state.const_data_ptr<scalar_t>();
      p.delta = delta.mutable_data_ptr<scalar_t>();
      p.grad_h0 = grad_h0.mutable_data_ptr<scalar_t>();
      p.sinks = sink_sources.data();
      p.num_sinks = static_cast<int64_t>(sink_sources.size());
      // Rows of a sink belong to batch rows, so threads owning disjoint batch rows never collide.
      at::parallel_for(0, p.batch, kMinRowsPerThread,
                       [&](int64_t b0, int64_t b1) { run_backward_recurrence(p, b0, b1); });
    });
  }
};

void check_cpu(const Tensor& input) {
  TORCH_CHECK(input.device().is_cpu(), "expected CPU tensors, got ", input.device());
  TORCH_CHECK(input.scalar_type() == at::kFloat || input.scalar_type() == at::kDouble,
              "the CPU kernel supports float32 and float64 inputs, got ", input.scalar_type());
}

std::tuple<Tensor, Tensor> forward_cpu(const Tensor& input, const Tensor& hx,
                                       const Tensor& weight_ih, const Tensor& weight_hh,
                                       const std::optional<Tensor>& bias, c10::IntArrayRef periods,
                                       c10::IntArrayRef module_sizes, int64_t t0, bool relu,
                                       const std::optional<Tensor>& lengths) {
  check_cpu(input);
  return module_major_forward(input, hx, weight_ih, weight_hh, bias, periods, module_sizes, t0,
                              relu, lengths, CpuRecurrence());
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> backward_cpu(
    const Tensor& grad_output, const Tensor& grad_h_n, const Tensor& input, const Tensor& hx,
    const Tensor& weight_ih, const Tensor& weight_hh, const Tensor& output,
    c10::IntArrayRef periods, c10::IntArrayRef module_sizes, int64_t t0, bool relu,
    const std::optional<Tensor>& lengths) {
  check_cpu(input);
  return module_major_backward(grad_output, grad_h_n, input, hx, weight_ih, weight_hh, output,
                               periods, module_sizes, t0, relu, lengths, CpuRecurrence());
}

}  // namespace

TORCH_LIBRARY_IMPL(cwrnn_ext, CPU, m) {
  m.impl("forward", &forward_cpu);
  m.impl("backward", &backward_cpu);
}

}  // namespace cwrnn
