// The `step` op on the CPU: one step, a clock per row. Only the active groups' rows are computed
// (step_rows.h); held rows are copied. No tensor is allocated besides the output.
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <c10/util/SmallVector.h>
#include <torch/library.h>

#include <vector>

#include "../schedule.h"
#include "../checks.h"
#include "entry_checks.h"
#include "step_rows.h"

namespace cwrnn {
namespace {

using at::Tensor;


Tensor step_cpu(const Tensor& input, const Tensor& hx, const Tensor& weight_ih,
                const Tensor& weight_hh, const std::optional<Tensor>& bias_ih,
                const std::optional<Tensor>& bias_hh, c10::IntArrayRef periods,
                c10::IntArrayRef module_sizes, int64_t t, const std::optional<Tensor>& clocks,
                c10::string_view nonlinearity) {
  check_cpu_call(KernelOp::kStep, input);
  check_step_arguments(input, hx, weight_ih, weight_hh, bias_ih, bias_hh, t, clocks);
  const bool relu = parse_activation(nonlinearity) == Activation::kRelu;
  const int64_t B = input.size(0), H = weight_hh.size(0);
  const auto groups = make_period_groups(periods, module_sizes, H);
  const Tensor x = rows_contiguous(input), h = rows_contiguous(hx);
  const Tensor w_ih = weight_ih.contiguous(), w_hh = weight_hh.contiguous();
  const std::optional<Tensor> b_ih = bias_ih ? std::optional<Tensor>(bias_ih->contiguous()) : std::nullopt;
  const std::optional<Tensor> b_hh = bias_hh ? std::optional<Tensor>(bias_hh->contiguous()) : std::nullopt;
  Tensor out = at::empty({B, H}, input.options());
  if (B == 0) return out;
  const int64_t* clock = nullptr;
  Tensor clocks_c;
  if (clocks) {
    clocks_c = clocks->contiguous();  // (B,): a copy only if strided
    clock = clocks_c.const_data_ptr<int64_t>();
    for (int64_t b = 0; b < B; ++b) {
      TORCH_CHECK(clock[b] >= 0, "t (per-row clocks) must be >= 0, got ", clock[b], " in row ", b);
      TORCH_CHECK(clock[b] <= INT64_MAX - t, "t + clocks = ", t, " + ", clock[b], " in row ", b,
                  " passes 2^63 - 1, the largest clock");
    }
  }
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "cwrnn_step_cpu", [&] {
    c10::SmallVector<const scalar_t*, 64> xs(B), hs(B);
    c10::SmallVector<scalar_t*, 64> outs(B);
    c10::SmallVector<int64_t, 64> all(B);
    for (int64_t b = 0; b < B; ++b) {
      xs[b] = x.const_data_ptr<scalar_t>() + b * x.stride(0);
      hs[b] = h.const_data_ptr<scalar_t>() + b * h.stride(0);
      outs[b] = out.mutable_data_ptr<scalar_t>() + b * H;
      all[b] = b;
    }
    const StepRows<scalar_t> p{x.size(1), H,
                               w_ih.const_data_ptr<scalar_t>(), w_hh.const_data_ptr<scalar_t>(),
                               b_ih ? b_ih->const_data_ptr<scalar_t>() : nullptr,
                               b_hh ? b_hh->const_data_ptr<scalar_t>() : nullptr,
                               relu, xs.data(), hs.data(), outs.data()};
    c10::SmallVector<int64_t, 16> first(groups.size());
    for (size_t g = 0; g < groups.size(); ++g) first[g] = first_tick(t, groups[g].period);
    if (clock == nullptr) {
      step_active_rows(p, groups, all.data(), B, [&](size_t g, int64_t) { return first[g] == 0; });
    } else {  // row b's clock is t + clock[b]
      step_active_rows(p, groups, all.data(), B, [&](size_t g, int64_t b) {
        return ticks_at(clock[b], first[g], groups[g].period);
      });
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(cwrnn_ext, CPU, m) {
  m.impl("step", &step_cpu);
}

}  // namespace cwrnn
