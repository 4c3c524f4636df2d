#include "step_generic.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/remainder.h>
#include <ATen/ops/tanh_backward.h>
#include <ATen/ops/threshold_backward.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros.h>

#include <vector>

#include "../schedule.h"

namespace cwrnn {
namespace {

using at::Tensor;

// Where group g (period P) is active: with one clock for all rows, all or none (`all`); with a
// clock per row, a (B, 1) bool tensor made on the rows' device (no host sync).
struct Activity {
  bool any;
  Tensor rows;  // undefined: every row
};

Activity activity(int64_t period, int64_t t, const std::optional<Tensor>& clocks) {
  const int64_t first = first_tick(t, period);
  if (!clocks) return {first == 0, Tensor()};
  // Row b's clock t + clocks[b] ticks iff clocks[b] % P == first (schedule.h, ticks_at): residues
  // compared, never added, so nothing overflows.
  const Tensor active = at::remainder(*clocks, period) == first;
  return {true, active.unsqueeze(1)};
}

}  // namespace

Tensor step_generic(const Tensor& input, const Tensor& hx, const Tensor& weight_ih,
                    const Tensor& weight_hh, const std::optional<Tensor>& bias_ih,
                    const std::optional<Tensor>& bias_hh, c10::IntArrayRef periods,
                    c10::IntArrayRef module_sizes, int64_t t, const std::optional<Tensor>& clocks,
                    bool relu) {
  const int64_t H = weight_hh.size(0);
  Tensor out = hx.clone(at::MemoryFormat::Contiguous);  // held rows keep these values
  if (input.size(0) == 0) return out;
  for (const PeriodGroup& g : make_period_groups(periods, module_sizes, H)) {
    const Activity on = activity(g.period, t, clocks);
    if (!on.any) continue;
    const int64_t begin = g.begin, k = g.size();
    Tensor pre = at::mm(input, weight_ih.narrow(0, begin, k).t());
    pre.addmm_(hx.narrow(1, begin, H - begin), weight_hh.narrow(0, begin, k).narrow(1, begin, H - begin).t());
    if (bias_ih) pre.add_(bias_ih->narrow(0, begin, k));
    if (bias_hh) pre.add_(bias_hh->narrow(0, begin, k));
    Tensor h = relu ? pre.relu_() : pre.tanh_();
    if (on.rows.defined()) h = at::where(on.rows, h, hx.narrow(1, begin, k));
    out.narrow(1, begin, k).copy_(h);
  }
  return out;
}

StepGradients step_backward_generic(const Tensor& grad, const Tensor& input, const Tensor& hx,
                                    const Tensor& weight_ih, const Tensor& weight_hh,
                                    const Tensor& output, c10::IntArrayRef periods,
                                    c10::IntArrayRef module_sizes, int64_t t,
                                    const std::optional<Tensor>& clocks, bool relu,
                                    StepGradientMask mask) {
  const int64_t H = weight_hh.size(0);
  const auto options = input.options();
  // Held units pass their gradient to hx unchanged; active ones get W_hh^T delta (below).
  Tensor grad_input = mask[0] ? at::zeros(input.sizes(), options) : Tensor();
  Tensor grad_hx = mask[1] ? grad.clone(at::MemoryFormat::Contiguous) : Tensor();
  Tensor grad_w_ih = mask[2] ? at::zeros(weight_ih.sizes(), options) : Tensor();
  Tensor grad_w_hh = mask[3] ? at::zeros(weight_hh.sizes(), options) : Tensor();  // disallowed: 0
  Tensor grad_bias = mask[4] ? at::zeros({H}, options) : Tensor();
  const auto groups = make_period_groups(periods, module_sizes, H);

  // delta = dL/d(pre-activation) of every active unit; zero where a row holds.
  struct Delta {
    int64_t begin, size;
    Tensor value;  // (B, k)
  };
  std::vector<Delta> deltas;
  for (const PeriodGroup& g : groups) {
    const Activity on = activity(g.period, t, clocks);
    if (!on.any || input.size(0) == 0) continue;
    const int64_t begin = g.begin, k = g.size();
    const Tensor grad_g = grad.narrow(1, begin, k), out_g = output.narrow(1, begin, k);
    Tensor delta = relu ? at::threshold_backward(grad_g, out_g, 0) : at::tanh_backward(grad_g, out_g);
    if (on.rows.defined()) {
      delta = at::where(on.rows, delta, at::zeros({}, options));
      if (mask[1]) grad_hx.narrow(1, begin, k).masked_fill_(on.rows, 0);
    } else if (mask[1]) {
      grad_hx.narrow(1, begin, k).zero_();
    }
    deltas.push_back({begin, k, delta});
  }
  for (const Delta& d : deltas) {
    const int64_t begin = d.begin, k = d.size, width = H - begin;
    const Tensor rows_ih = weight_ih.narrow(0, begin, k);
    const Tensor rows_hh = weight_hh.narrow(0, begin, k).narrow(1, begin, width);  // allowed only
    if (mask[0]) grad_input.addmm_(d.value, rows_ih);
    if (mask[1]) grad_hx.narrow(1, begin, width).addmm_(d.value, rows_hh);
    if (mask[2]) grad_w_ih.narrow(0, begin, k).copy_(at::mm(d.value.t(), input));
    if (mask[3]) grad_w_hh.narrow(0, begin, k).narrow(1, begin, width).copy_(at::mm(d.value.t(), hx.narrow(1, begin, width)));
    if (mask[4]) grad_bias.narrow(0, begin, k).copy_(d.value.sum(0));
  }
  const auto optional = [](const Tensor& t) { return t.defined() ? std::optional<Tensor>(t) : std::nullopt; };
  return {optional(grad_input), optional(grad_hx), optional(grad_w_ih), optional(grad_w_hh),
          optional(grad_bias)};
}

}  // namespace cwrnn
