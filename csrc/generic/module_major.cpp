#include "module_major.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/mul.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <vector>

namespace cwrnn {
using at::Tensor;

namespace {

// lengths as module-major uses them: checked on the host; clamped into [0, T] on a GPU, where
// they are not checked here (check_forward_arguments), so that nothing can index out of bounds.
std::optional<Tensor> in_range(const std::optional<Tensor>& lengths, int64_t steps) {
  if (!lengths || lengths->is_cpu()) return lengths;
  return lengths->clamp(0, steps);
}

GroupTicks ticks_of(const PeriodGroup& g, int64_t steps, int64_t t0) {
  const int64_t first = first_tick(t0, g.period);
  GroupTicks result{g, first, tick_count(steps, first, g.period)};
  // A period longer than the sequence ticks at most once: cap it so that strides and hold
  // ranges computed from it cannot overflow (the ticks themselves are already fixed above).
  result.group.period = std::min(g.period, std::max<int64_t>(steps, 1));
  return result;
}

}  // namespace

Tensor at_ticks(const Tensor& t, const GroupTicks& g) {
  return t.slice(0, g.first, g.first + (g.ticks - 1) * g.group.period + 1, g.group.period);
}

namespace {

// dst (ticks, B, n) += (a @ b) viewed as (ticks, B, n); straight into dst when its rows are
// evenly strided (period 1), through a temporary otherwise.
void add_product(const Tensor& dst, const Tensor& a, const Tensor& b) {
  if (dst.stride(0) == dst.size(1) * dst.stride(1)) {
    dst.view({dst.size(0) * dst.size(1), dst.size(2)}).addmm_(a, b);
  } else {
    dst.add_(at::mm(a, b).view(dst.sizes()));
  }
}

// The values group g holds: hx's columns, then its state after each tick. (ticks + 1, B, k).
Tensor held_values(const Tensor& out, const Tensor& h0, const GroupTicks& g) {
  const int64_t begin = g.group.begin, k = g.group.size();
  Tensor values = at::empty({g.ticks + 1, out.size(1), k}, out.options());
  values.select(0, 0).copy_(h0.narrow(1, begin, k));
  if (g.ticks > 0) values.narrow(0, 1, g.ticks).copy_(at_ticks(out, g).narrow(2, begin, k));
  return values;
}

Tensor as_matrix(const Tensor& t) { return t.view({t.size(0) * t.size(1), t.size(2)}); }

// Group g's term for all faster rows [0, g.begin), once per value g holds (see HeldTerm).
HeldTerm held_term(const Tensor& out, const Tensor& h0, const GroupTicks& g, const Tensor& weight_hh) {
  const int64_t begin = g.group.begin, k = g.group.size();
  const Tensor w = weight_hh.narrow(0, 0, begin).narrow(1, begin, k).t();
  const Tensor values = held_values(out, h0, g);
  return {at::mm(as_matrix(values), w).view({g.ticks + 1, out.size(1), begin}), g.first,
          g.group.period};
}

// The inputs x_s at the group's ticks as a (ticks * B, I) matrix.
Tensor inputs_at_ticks(const Tensor& x, const GroupTicks& g) {
  return at_ticks(x, g).reshape({g.ticks * x.size(1), x.size(2)});
}

}  // namespace

std::vector<GroupTicks> schedule(const Tensor& weight_hh, c10::IntArrayRef periods,
                                 c10::IntArrayRef module_sizes, int64_t steps, int64_t t0) {
  check_clocks_fit(t0, steps);
  std::vector<GroupTicks> result;
  for (const auto& g : make_period_groups(periods, module_sizes, weight_hh.size(0)))
    result.push_back(ticks_of(g, steps, t0));
  return result;
}

Tensor valid_steps_mask(const Tensor& lengths, int64_t steps) {
  return at::arange(steps, lengths.options()).unsqueeze(1) < lengths.unsqueeze(0);  // (T, B)
}

std::tuple<Tensor, Tensor> finish_forward(Tensor out, const Tensor& h0,
                                          const std::optional<Tensor>& lengths) {
  const int64_t T = out.size(0), B = out.size(1), H = out.size(2);
  if (T == 0 || B == 0) return {out, h0.clone()};
  if (!lengths) return {out, out.select(0, T - 1).clone()};
  // Steps past a sequence's length change nothing (the kernel computed them, but causality means
  // they do not affect earlier steps): its final state is the row at length - 1, its output 0.
  const Tensor last_rows = (*lengths - 1).clamp_min(0) * B + at::arange(B, lengths->options());
  Tensor h_n = out.view({T * B, H}).index_select(0, last_rows);
  h_n = at::where((*lengths == 0).unsqueeze(1), h0, h_n);
  out.masked_fill_(valid_steps_mask(*lengths, T).logical_not().unsqueeze(2), 0);
  return {out, h_n};
}

std::tuple<Tensor, Tensor> module_major_forward(
    const Tensor& input, const Tensor& hx, const Tensor& weight_ih, const Tensor& weight_hh,
    const std::optional<Tensor>& bias, c10::IntArrayRef periods, c10::IntArrayRef module_sizes,
    int64_t t0, Activation activation, const std::optional<Tensor>& lengths_arg,
    const RecurrenceBackend& backend) {
  check_forward_arguments(input, hx, weight_ih, weight_hh, bias, lengths_arg);
  const int64_t T = input.size(0), B = input.size(1), H = weight_hh.size(0);
  const std::optional<Tensor> lengths = in_range(lengths_arg, T);
  const auto groups = schedule(weight_hh, periods, module_sizes, T, t0);
  const Tensor x = input.contiguous(), h0 = hx.contiguous();
  Tensor out = at::empty({T, B, H}, input.options());
  if (T == 0 || B == 0) return finish_forward(out, h0, lengths);

  std::vector<HeldTerm> held;  // of the groups done so far, i.e. all slower than the current one
  for (auto g = groups.rbegin(); g != groups.rend(); ++g) {  // slowest first
    const int64_t begin = g->group.begin, k = g->group.size();
    const Tensor rows_ih = weight_ih.narrow(0, begin, k), rows_hh = weight_hh.narrow(0, begin, k);
    Tensor pre;
    if (g->ticks > 0) {
      const Tensor xs = inputs_at_ticks(x, *g);
      pre = bias ? at::addmm(bias->narrow(0, begin, k), xs, rows_ih.t()) : at::mm(xs, rows_ih.t());
    } else {
      pre = at::empty({0, k}, input.options());
    }
    pre = pre.view({g->ticks, B, k});
    const Tensor diag_t = rows_hh.narrow(1, begin, k).t().contiguous();
    backend.forward_with_held(*g, pre, h0, diag_t, out, activation, held);
    if (begin > 0) held.push_back(held_term(out, h0, *g, weight_hh));
  }
  return finish_forward(out, h0, lengths);
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> module_major_backward(
    const std::optional<Tensor>& grad_output, const std::optional<Tensor>& grad_h_n,
    const Tensor& input, const Tensor& hx, const Tensor& weight_ih, const Tensor& weight_hh,
    const Tensor& output, c10::IntArrayRef periods, c10::IntArrayRef module_sizes, int64_t t0,
    Activation activation, const std::optional<Tensor>& lengths_arg, GradientMask mask,
    const RecurrenceBackend& backend) {
  check_backward_arguments(grad_output, grad_h_n, input, hx, weight_ih, weight_hh, output, lengths_arg);
  const int64_t T = input.size(0), B = input.size(1), I = input.size(2), H = weight_hh.size(0);
  const std::optional<Tensor> lengths = in_range(lengths_arg, T);
  const auto groups = schedule(weight_hh, periods, module_sizes, T, t0);
  const auto [need_x, need_h0, need_w_ih, need_w_hh, need_bias] = mask;
  const Tensor h0 = hx.contiguous(), out = output.contiguous();
  // x is read only by grad_weight_ih's GEMM. Padding is never read: the deltas there are 0, but
  // 0 * NaN in that GEMM is NaN, so the steps past a sequence's length are selected to 0 first.
  Tensor x;
  if (need_w_ih)
    x = lengths ? at::where(valid_steps_mask(*lengths, T).unsqueeze(2), input, 0) : input.contiguous();

  // grad_state row s + 1: the gradient reaching the state after step s from outside the group
  // that owns it (the output, h_n, and faster groups reading it); row 0 is hx.
  Tensor grad_state = at::zeros({T + 1, B, H}, input.options());
  if (grad_output) {
    grad_state.narrow(0, 1, T).copy_(*grad_output);
    // Selected, not multiplied: a NaN gradient arriving at a padded (constant 0) output stays out.
    if (lengths)
      grad_state.narrow(0, 1, T).masked_fill_(valid_steps_mask(*lengths, T).logical_not().unsqueeze(2), 0);
  }
  if (grad_h_n && lengths) {
    // h_n of sequence b is the state after step length_b - 1: row length_b (row 0 is hx).
    grad_state.view({(T + 1) * B, H})
        .index_add_(0, *lengths * B + at::arange(B, lengths->options()), *grad_h_n);
  } else if (grad_h_n) {
    grad_state.select(0, T).add_(*grad_h_n);
  }

  const auto zeros_if = [&](bool need, at::IntArrayRef size) {
    return need ? at::zeros(size, input.options()) : Tensor();
  };
  Tensor grad_x = zeros_if(need_x, {T, B, I});
  Tensor grad_h0 = at::empty({B, H}, input.options());  // the recurrences write it in any case
  Tensor grad_w_ih = zeros_if(need_w_ih, {H, I});
  Tensor grad_w_hh = zeros_if(need_w_hh, {H, H});  // disallowed blocks stay exactly 0
  Tensor grad_bias = zeros_if(need_bias, {H});
  const auto result = [&] {
    return std::make_tuple(grad_x, need_h0 ? grad_h0 : Tensor(), grad_w_ih, grad_w_hh, grad_bias);
  };
  if (B == 0 || !(need_x || need_h0 || need_w_ih || need_w_hh || need_bias)) return result();

  // Each group's deltas are also summed per value of every slower group that its ticks read
  // (held_sums[j], rows [0, begin_j)), so that a slower group's share of the gradient and of its
  // weight_hh block column is one GEMM over its own ticks + 1 values, the mirror of the forward's
  // held terms.
  std::vector<HeldTerm> held_sums(groups.size());
  for (size_t j = 0; j < groups.size(); ++j)
    held_sums[j] = {at::zeros({groups[j].ticks + 1, B, groups[j].group.begin}, input.options()),
                    groups[j].first, groups[j].group.period};

  for (size_t i = 0; i < groups.size(); ++i) {  // fastest first
    const GroupTicks& g = groups[i];
    const int64_t begin = g.group.begin, k = g.group.size(), P = g.group.period;
    const Tensor rows_ih = weight_ih.narrow(0, begin, k), rows_hh = weight_hh.narrow(0, begin, k);
    const Tensor diag = rows_hh.narrow(1, begin, k).contiguous();
    Tensor delta = at::empty({g.ticks, B, k}, input.options());
    const Tensor values = need_w_hh ? held_values(out, h0, g) : Tensor();
    if (begin > 0) {  // what the faster groups read from this one, per value it held
      const Tensor sums = as_matrix(held_sums[i].values);
      const Tensor grad_values =
          at::mm(sums, weight_hh.narrow(0, 0, begin).narrow(1, begin, k)).view({g.ticks + 1, B, k});
      grad_state.select(0, 0).narrow(1, begin, k).add_(grad_values.select(0, 0));
      if (g.ticks > 0)  // value n + 1 is the state after tick n: row s_n + 1 of grad_state
        grad_state.slice(0, g.first + 1, g.first + (g.ticks - 1) * P + 2, P)
            .narrow(2, begin, k)
            .add_(grad_values.narrow(0, 1, g.ticks));
      if (need_w_hh)
        grad_w_hh.narrow(0, 0, begin).narrow(1, begin, k).copy_(at::mm(sums.t(), as_matrix(values)));
    }
    const std::vector<HeldTerm> sinks(held_sums.begin() + i + 1, held_sums.end());
    backend.backward_with_held(g, out, grad_state, diag, delta, grad_h0, activation, sinks);
    if (g.ticks == 0) continue;
    const Tensor d = as_matrix(delta);
    if (need_w_hh)  // the diagonal block: tick n read value n of this group
      grad_w_hh.narrow(0, begin, k).narrow(1, begin, k)
          .copy_(at::mm(d.t(), as_matrix(values.narrow(0, 0, g.ticks))));
    if (need_w_ih) grad_w_ih.narrow(0, begin, k).copy_(at::mm(d.t(), inputs_at_ticks(x, g)));
    if (need_bias) grad_bias.narrow(0, begin, k).copy_(d.sum(0));
    if (need_x) add_product(at_ticks(grad_x, g), d, rows_ih);
  }
  return result();
}

OptionalGradients as_optional(const std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor>& grads) {
  const auto optional = [](const Tensor& t) { return t.defined() ? std::optional<Tensor>(t) : std::nullopt; };
  const auto& [a, b, c, d, e] = grads;
  return {optional(a), optional(b), optional(c), optional(d), optional(e)};
}

}  // namespace cwrnn
