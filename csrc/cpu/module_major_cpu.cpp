#include "module_major_cpu.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/zeros.h>

#include <type_traits>
#include <vector>

#include "output_pool.h"
#include "pipeline.h"
#include "threads.h"
#include "transpose.h"
#include "workspace.h"

namespace cwrnn {

namespace {

using at::Tensor;

// The multiply-adds of a forward's recurrences: each tick of a group reads the input and the
// hidden columns [begin, H) for its k rows (threads_for_work's measure of a call).
int64_t forward_macs(const std::vector<GroupTicks>& groups, int64_t batch, int64_t input_size, int64_t hidden) {
  int64_t macs = 0;
  for (const GroupTicks& g : groups) macs += g.ticks * batch * g.group.size() * (input_size + hidden - g.group.begin);
  return macs;
}

// One group's backward recurrence over the whole batch, batch rows spread over the intra-op
// threads. Rows of a sink belong to batch rows, so threads owning disjoint batch rows never collide.
template <typename T, typename A>
void run_backward(const BackwardRecurrence<T, A>& p) {
  at::parallel_for(0, p.batch, policy::kMinRowsPerThread,
                   [&](int64_t b0, int64_t b1) { run_backward_recurrence(p, b0, b1); });
}

// The groups' columns and ticks as fill_held_rows takes them.
std::vector<HeldRowsGroup> held_rows_groups(const std::vector<GroupTicks>& groups) {
  std::vector<HeldRowsGroup> result;
  for (const GroupTicks& g : groups)
    result.push_back({g.group.begin, g.group.size(), g.first, g.group.period, g.ticks});
  return result;
}

// Steps [step0, step0 + steps) and columns [c0, c0 + n) of out (T, B, H) as a (steps * B, n)
// matrix with row stride H, which the GEMMs read and write in place.
Tensor out_rows(const Tensor& out, int64_t step0, int64_t steps, int64_t c0, int64_t n) {
  const int64_t B = out.size(1), H = out.size(2);
  return out.view({out.size(0) * B, H}).narrow(0, step0 * B, steps * B).narrow(1, c0, n);
}

Tensor as_matrix(const Tensor& t) { return t.view({t.size(0) * t.size(1), t.size(2)}); }

// result = a @ b, written into result's memory (a view: row stride >= its width, column stride 1).
void mm_into(Tensor result, const Tensor& a, const Tensor& b) { at::mm_out(result, a, b); }

// t itself if it has that dtype, otherwise a converted copy in the workspace.
Tensor in_dtype(Workspace& ws, const Tensor& t, at::ScalarType dtype) {
  return t.scalar_type() == dtype ? t : ws.take(t.sizes(), dtype).copy_(t);
}

// The inputs at the group's ticks as a (ticks * B, I) matrix of `dtype`: input itself when every
// step ticks and it is contiguous, otherwise gathered into the workspace. With `valid` (T, B),
// steps past a sequence's length are selected to 0: padding is never read (0 * NaN would reach a
// gradient).
Tensor inputs_at_ticks(Workspace& ws, const Tensor& input, const GroupTicks& g, const Tensor& valid,
                       at::ScalarType dtype) {
  const int64_t T = input.size(0), B = input.size(1), I = input.size(2);
  if (g.ticks == T && !valid.defined() && input.is_contiguous() && input.scalar_type() == dtype)
    return input.view({T * B, I});
  Tensor xs = ws.take({g.ticks, B, I}, dtype);
  xs.copy_(at_ticks(input, g));
  if (valid.defined()) xs.masked_fill_(at_ticks(valid, g).logical_not().unsqueeze(2), 0);
  return xs.view({g.ticks * B, I});
}

// A group's diagonal block of weight_hh, contiguous, in dtype.
Tensor diagonal_block(Workspace& ws, const Tensor& weight_hh, const GroupTicks& g, at::ScalarType dtype) {
  const int64_t begin = g.group.begin, k = g.group.size();
  return ws.take({k, k}, dtype).copy_(weight_hh.narrow(0, begin, k).narrow(1, begin, k));
}

// The rows [0, begin) of a group's columns of weight_hh: what it sends to the faster groups.
Tensor block_column(Workspace& ws, const Tensor& weight_hh, const GroupTicks& g, at::ScalarType dtype) {
  return in_dtype(ws, weight_hh.narrow(0, 0, g.group.begin).narrow(1, g.group.begin, g.group.size()),
                  dtype);
}

// The arithmetic type of the recurrences and of every temporary: float32 for the half types.
template <typename scalar_t>
using acc_type = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;

// The whole forward in one parallel region: batch rows are independent through every group, so
// each thread runs all groups, slowest first, and then the held-row pass over its own rows, with
// no synchronisation and no GEMM. Each recurrence computes its input projection and its held
// term for the faster groups as it goes (ForwardRecurrence), from the weights transposed once.
template <typename scalar_t, typename acc_t = acc_type<scalar_t>>
void forward_groups(Workspace& ws, const Tensor& input, const Tensor& h0, const Tensor& weight_ih,
                    const Tensor& weight_hh, const std::optional<Tensor>& bias,
                    const std::vector<GroupTicks>& groups, Activation activation, bool pipeline,
                    const Tensor& out) {
  const int64_t T = out.size(0), B = out.size(1), H = out.size(2), I = input.size(2);
  const auto acc = c10::CppTypeToScalarType<acc_t>::value;
  const Tensor x = input.contiguous();
  // W_ih^T (I, H), and of W_hh^T (H, H) the rows of each group's columns up to its end: its
  // diagonal block and the block column it sends to the faster groups (rows above are unused).
  const Tensor w_ih = weight_ih.contiguous(), w_hh = weight_hh.contiguous();
  const Tensor w_ih_t = ws.take({I, H}, acc), w_hh_t = ws.take({H, H}, acc);
  transpose_into(rows_of<scalar_t>(w_ih), I, mutable_rows_of<acc_t>(w_ih_t), H, H, I);
  for (const GroupTicks& g : groups) {
    const int64_t begin = g.group.begin;
    transpose_into(rows_of<scalar_t>(w_hh) + begin, H, mutable_rows_of<acc_t>(w_hh_t) + begin * H, H,
                   g.group.end, g.group.size());
  }
  const Tensor b = bias ? in_dtype(ws, bias->contiguous(), acc) : Tensor();

  std::vector<Tensor> held_terms;  // kept alive: the raw pointers below point into them
  std::vector<HeldSource<acc_t>> held;  // slowest first; group i (from the slowest) reads held[0, i)
  std::vector<ForwardRecurrence<scalar_t, acc_t>> params;
  for (auto g = groups.rbegin(); g != groups.rend(); ++g) {  // slowest first
    const int64_t begin = g->group.begin;
    ForwardRecurrence<scalar_t, acc_t> p;
    fill_group(p, *g, out, activation);
    p.diag = rows_of<acc_t>(w_hh_t) + begin * H + begin;
    p.diag_stride = H;
    p.input = rows_of<scalar_t>(x);
    p.input_size = I;
    p.weight_ih_t = rows_of<acc_t>(w_ih_t) + begin;
    p.weight_ih_stride = H;
    p.bias = b.defined() ? rows_of<acc_t>(b) + begin : nullptr;
    p.h0 = rows_of<scalar_t>(h0);
    p.out = mutable_rows_of<scalar_t>(out);
    p.num_held = static_cast<int64_t>(held.size());
    if (begin > 0) {
      held_terms.push_back(ws.take({g->ticks + 1, B, begin}, acc));
      p.held_out = mutable_rows_of<acc_t>(held_terms.back());
      p.column_t = rows_of<acc_t>(w_hh_t) + begin * H;
      p.column_stride = H;
      held.push_back({p.held_out, begin, g->first, g->group.period});
    }
    params.push_back(p);
  }
  for (auto& p : params) p.held = held.data();  // complete now: no reallocation after this

  const std::vector<HeldRowsGroup> rows_groups = held_rows_groups(groups);
  const HeldRows<scalar_t> held_rows{T, B, H, rows_groups.data(), static_cast<int64_t>(rows_groups.size()),
                                     rows_of<scalar_t>(h0), mutable_rows_of<scalar_t>(out)};
  if (pipeline) {
    run_pipelined(ws, params, groups, held_rows);
    return;
  }
  at::parallel_for(0, B, policy::kMinRowsPerThread, [&](int64_t b0, int64_t b1) {
    for (const auto& p : params) run_forward_recurrence(p, b0, b1);
    fill_held_rows(held_rows, 0, T, b0, b1);  // the recurrences wrote only the tick rows
  });
}

}  // namespace

std::tuple<Tensor, Tensor> cpu_forward(const Tensor& input, const Tensor& hx,
                                       const Tensor& weight_ih, const Tensor& weight_hh,
                                       const std::optional<Tensor>& bias, c10::IntArrayRef periods,
                                       c10::IntArrayRef module_sizes, int64_t t0, Activation activation,
                                       const std::optional<Tensor>& lengths, ForwardPath path) {
  const int64_t T = input.size(0), B = input.size(1), H = weight_hh.size(0);
  const auto groups = schedule(weight_hh, periods, module_sizes, T, t0);
  // Threads for the batch rows, or two for the pipeline, if the work pays for them.
  const bool pipeline_wanted = path == ForwardPath::kPipelined;
  const ThreadsForWork threads(forward_macs(groups, B, input.size(2), H), B, pipeline_wanted ? 2 : 1);
  const bool pipeline = pipeline_wanted && at::get_num_threads() >= 2;
  record_forward_path(pipeline ? ForwardPath::kPipelined : ForwardPath::kModuleMajor);
  const Tensor h0 = hx.contiguous();
  Tensor out = empty_output({T, B, H}, input.options());
  if (T > 0 && B > 0) {
    Workspace ws;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, input.scalar_type(), "cwrnn_forward_cpu", [&] {
      forward_groups<scalar_t>(ws, input, h0, weight_ih, weight_hh, bias, groups, activation, pipeline, out);
    });
  }
  return finish_forward(out, h0, lengths);
}

namespace {

// In the arithmetic type; undefined: not asked for (h0 is always computed).
struct Gradients {
  Tensor input, h0, weight_ih, weight_hh, bias;
};

template <typename scalar_t, typename acc_t = acc_type<scalar_t>>
void backward_groups(Workspace& ws, const std::optional<Tensor>& grad_output,
                     const std::optional<Tensor>& grad_h_n, const Tensor& input, const Tensor& h0,
                     const Tensor& weight_ih, const Tensor& weight_hh, const Tensor& out,
                     const std::vector<GroupTicks>& groups, Activation activation,
                     const std::optional<Tensor>& lengths, const Gradients& grads) {
  const int64_t T = out.size(0), B = out.size(1), I = input.size(2);
  const auto acc = c10::CppTypeToScalarType<acc_t>::value;
  const Tensor valid = lengths ? valid_steps_mask(*lengths, T) : Tensor();
  const Tensor lengths_c = lengths ? lengths->contiguous() : Tensor();
  const Tensor grad_h_n_c = grad_h_n ? grad_h_n->contiguous() : Tensor();

  // Each group's deltas are also summed per value of every slower group that its ticks read
  // (sums[j], rows [0, begin_j)), so that a slower group's share of the gradient and of its
  // weight_hh block column is one GEMM over its own ticks + 1 values (the mirror of held terms).
  std::vector<Tensor> sums(groups.size());
  std::vector<HeldSink<acc_t>> sinks(groups.size());
  for (size_t j = 0; j < groups.size(); ++j) {
    const int64_t begin = groups[j].group.begin;
    sums[j] = ws.take({groups[j].ticks + 1, B, begin}, acc).zero_();
    sinks[j] = {mutable_rows_of<acc_t>(sums[j]), begin, groups[j].first, groups[j].group.period};
  }

  for (size_t i = 0; i < groups.size(); ++i) {  // fastest first
    const GroupTicks& g = groups[i];
    const int64_t begin = g.group.begin, k = g.group.size(), ticks = g.ticks;
    const size_t transient = ws.mark();
    const Tensor delta = ws.take({ticks, B, k}, acc);
    const Tensor diag = diagonal_block(ws, weight_hh, g, acc);
    const Tensor column = begin > 0 ? block_column(ws, weight_hh, g, acc) : Tensor();
    // What the faster groups sent to each value this group held.
    const Tensor from_faster = begin > 0 ? ws.take({ticks + 1, B, k}, acc) : Tensor();
    if (begin > 0) mm_into(as_matrix(from_faster), as_matrix(sums[i]), column);
    // The values this group held, for its weight_hh columns: read in place from out when every
    // step ticks, no faster group reads them and out is in the arithmetic type; otherwise
    // written by the recurrence.
    const bool values_in_place = ticks == T && begin == 0 && out.scalar_type() == acc;
    const Tensor values = grads.weight_hh.defined() && !values_in_place
                              ? ws.take({ticks + 1, B, k}, acc) : Tensor();
    if (values.defined()) values.select(0, 0).copy_(h0.narrow(1, begin, k));

    BackwardRecurrence<scalar_t, acc_t> p;
    fill_group(p, g, out, activation);
    p.diag = rows_of<acc_t>(diag);
    p.out = rows_of<scalar_t>(out);
    if (grad_output) {  // read through its own strides: any layout, e.g. expanded
      p.upstream.output = grad_output->const_data_ptr<scalar_t>();
      for (int d = 0; d < 3; ++d) p.upstream.output_strides[d] = grad_output->stride(d);
    }
    p.upstream.h_n = grad_h_n ? rows_of<scalar_t>(grad_h_n_c) : nullptr;
    p.upstream.lengths = lengths ? rows_of<int64_t>(lengths_c) : nullptr;
    p.upstream.held = begin > 0 ? rows_of<acc_t>(from_faster) : nullptr;
    p.delta = mutable_rows_of<acc_t>(delta);
    p.grad_h0 = mutable_rows_of<acc_t>(grads.h0);
    p.sinks = sinks.data() + i + 1;
    p.num_sinks = static_cast<int64_t>(groups.size() - i - 1);
    p.values = values.defined() ? mutable_rows_of<acc_t>(values) : nullptr;
    run_backward(p);

    const Tensor d = as_matrix(delta);
    if (grads.weight_hh.defined()) {
      Tensor diag_grad = grads.weight_hh.narrow(0, begin, k).narrow(1, begin, k);
      if (values_in_place) {  // tick 0 read h0, tick n > 0 the state after step n - 1
        mm_into(diag_grad, d.narrow(0, 0, B).t(), h0.narrow(1, begin, k));
        if (T > 1) diag_grad.addmm_(d.narrow(0, B, (T - 1) * B).t(), out_rows(out, 0, T - 1, begin, k));
      } else if (ticks > 0) {  // tick n read value n
        mm_into(diag_grad, d.t(), as_matrix(values.narrow(0, 0, ticks)));
      }
      if (begin > 0)  // the faster groups read every value
        mm_into(grads.weight_hh.narrow(0, 0, begin).narrow(1, begin, k), as_matrix(sums[i]).t(),
                as_matrix(values));
    }
    if (ticks > 0) {
      if (grads.weight_ih.defined())
        mm_into(grads.weight_ih.narrow(0, begin, k), d.t(), inputs_at_ticks(ws, input, g, valid, acc));
      if (grads.bias.defined()) {
        Tensor rows = grads.bias.narrow(0, begin, k);
        at::sum_out(rows, d, 0);
      }
      if (grads.input.defined()) {
        const Tensor w = in_dtype(ws, weight_ih.narrow(0, begin, k), acc);
        if (ticks == T) {
          grads.input.view({T * B, I}).addmm_(d, w);
        } else {
          Tensor product = ws.take({ticks * B, I}, acc);
          mm_into(product, d, w);
          at_ticks(grads.input, g).add_(product.view({ticks, B, I}));
        }
      }
    }
    ws.release(transient);
  }
}

}  // namespace

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> cpu_backward(
    const std::optional<Tensor>& grad_output, const std::optional<Tensor>& grad_h_n,
    const Tensor& input, const Tensor& hx, const Tensor& weight_ih, const Tensor& weight_hh,
    const Tensor& output, c10::IntArrayRef periods, c10::IntArrayRef module_sizes, int64_t t0,
    Activation activation, const std::optional<Tensor>& lengths, GradientMask mask) {
  check_backward_arguments(grad_output, grad_h_n, input, hx, weight_ih, weight_hh, output, lengths);
  const int64_t T = input.size(0), B = input.size(1), I = input.size(2), H = weight_hh.size(0);
  const auto groups = schedule(weight_hh, periods, module_sizes, T, t0);
  // Work per parallel region (policy.h): about two regions per group, each a group's share of the
  // recurrences or the GEMMs.
  const ThreadsForWork threads(forward_macs(groups, B, I, H) / static_cast<int64_t>(groups.size()), B);
  const auto [need_x, need_h0, need_w_ih, need_w_hh, need_bias] = mask;
  // Gradients are summed in the arithmetic type (float32 for the half types) and rounded once.
  const auto dtype = input.scalar_type();
  const auto acc = dtype == at::kDouble ? at::kDouble : at::kFloat;
  const auto acc_options = input.options().dtype(acc);
  const auto zeros_if = [&](bool need, at::IntArrayRef size) {
    return need ? at::zeros(size, acc_options) : Tensor();
  };
  Workspace ws;
  Tensor grad_input;
  if (need_x) grad_input = empty_output({T, B, I}, input.options());
  Gradients grads{need_x ? (dtype == acc ? grad_input : ws.take({T, B, I}, acc)).zero_() : Tensor(),
                  at::zeros({B, H}, acc_options), zeros_if(need_w_ih, {H, I}),
                  zeros_if(need_w_hh, {H, H}),  // disallowed blocks stay exactly 0
                  zeros_if(need_bias, {H})};
  if (T > 0 && B > 0 && (need_x || need_h0 || need_w_ih || need_w_hh || need_bias)) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, dtype, "cwrnn_backward_cpu", [&] {
      backward_groups<scalar_t>(ws, grad_output, grad_h_n, input, hx.contiguous(), weight_ih,
                                weight_hh, output.contiguous(), groups, activation, lengths, grads);
    });
  } else if (T == 0 && B > 0 && grad_h_n) {  // no step: h_n is hx
    grads.h0.copy_(*grad_h_n);
  }
  if (need_x && dtype != acc) grad_input.copy_(grads.input);
  const auto rounded = [&](const Tensor& t) { return t.defined() ? t.to(dtype) : t; };
  return {grad_input, need_h0 ? rounded(grads.h0) : Tensor(), rounded(grads.weight_ih),
          rounded(grads.weight_hh), rounded(grads.bias)};
}

}  // namespace cwrnn
