// Time-major CPU kernels: the `step` op (one step, a clock per row) and `forward_time_major` (a
// short sequence, one step after another, for which the module-major schedule's fixed cost does
// not pay off). Per step only the active groups' rows are computed (step_kernel.h); held rows are
// copied. No tensor is allocated besides the outputs.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <c10/util/SmallVector.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "../schedule.h"
#include "../step_arguments.h"
#include "../generic/step_generic.h"
#include "step_kernel.h"
#include "threads.h"

namespace cwrnn {
namespace {

using at::Tensor;


struct Task {
  int32_t group;
  int64_t r0, r1;
};

// Rows of the batch (their indices) at which each group is active in this step.
class ActiveRows {
 public:
  ActiveRows(size_t groups, int64_t batch) : batch_(batch), count_(groups, 0), rows_(groups * batch) {}
  void add(size_t g, int64_t b) { rows_[g * batch_ + count_[g]++] = b; }
  const int64_t* rows(size_t g) const { return rows_.data() + g * batch_; }
  int64_t count(size_t g) const { return count_[g]; }

 private:
  int64_t batch_;
  c10::SmallVector<int64_t, 16> count_;
  c10::SmallVector<int64_t, 256> rows_;
};

// Computes the active groups' rows of p.out and copies the held ones from p.h, for the batch rows
// listed in `rows` (num_rows of them); row b of group g is active iff active(g, b).
template <typename T, typename IsActive>
void run_step(const StepRows<T>& p, const std::vector<PeriodGroup>& groups, const int64_t* rows,
              int64_t num_rows, IsActive active) {
  ActiveRows on(groups.size(), num_rows);
  int64_t macs = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    const PeriodGroup& group = groups[g];
    for (int64_t i = 0; i < num_rows; ++i) {
      const int64_t b = rows[i];
      if (active(g, b)) {
        on.add(g, b);
      } else {
        std::memcpy(p.out[b] + group.begin, p.h[b] + group.begin, group.size() * sizeof(T));
      }
    }
    macs += on.count(g) * group.size() * (p.input_size + p.hidden - group.begin);
  }
  // The tasks split hidden rows, not the batch: every available thread can take some.
  const int available = at::in_parallel_region() ? 1 : at::get_num_threads();
  const int threads = threads_for_work(macs, num_rows, available, available);
  record_call_threads(threads);
  if (threads <= 1) {
    for (size_t g = 0; g < groups.size(); ++g)
      if (on.count(g) > 0)
        step_group_rows(p, groups[g].begin, groups[g].begin, groups[g].end, on.rows(g), on.count(g));
    return;
  }
  // Tasks of about equal cost (a few per thread, so that uneven groups still balance).
  const int64_t target = std::max<int64_t>(macs / (4 * threads), 1);
  c10::SmallVector<Task, 64> tasks;
  for (size_t g = 0; g < groups.size(); ++g) {
    if (on.count(g) == 0) continue;
    const PeriodGroup& group = groups[g];
    const int64_t row_cost = on.count(g) * (p.input_size + p.hidden - group.begin);
    int64_t block = std::max<int64_t>(target / row_cost, 1);
    block = (block + policy::kTaskRowQuantum - 1) / policy::kTaskRowQuantum * policy::kTaskRowQuantum;
    for (int64_t r = group.begin; r < group.end; r += block)
      tasks.push_back({static_cast<int32_t>(g), r, std::min(r + block, group.end)});
  }
  at::parallel_for(0, static_cast<int64_t>(tasks.size()), 1, [&](int64_t first, int64_t last) {
    for (int64_t i = first; i < last; ++i) {
      const Task& task = tasks[i];
      step_group_rows(p, groups[task.group].begin, task.r0, task.r1, on.rows(task.group),
                      on.count(task.group));
    }
  });
}

void check_cpu(const Tensor& input) {
  TORCH_CHECK(input.device().is_cpu(), "expected CPU tensors, got ", input.device());
  TORCH_CHECK(input.scalar_type() == at::kFloat || input.scalar_type() == at::kDouble,
              "the CPU kernel supports float32 and float64 inputs, got ", input.scalar_type());
}

// Rows of a 2-D tensor, each contiguous (a copy only if its last dimension is strided).
Tensor rows_contiguous(const Tensor& t) { return t.stride(-1) == 1 || t.size(-1) <= 1 ? t : t.contiguous(); }

Tensor step_cpu(const Tensor& input, const Tensor& hx, const Tensor& weight_ih,
                const Tensor& weight_hh, const std::optional<Tensor>& bias_ih,
                const std::optional<Tensor>& bias_hh, c10::IntArrayRef periods,
                c10::IntArrayRef module_sizes, int64_t t, const std::optional<Tensor>& clocks,
                c10::string_view nonlinearity) {
  check_cpu(input);
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
      run_step(p, groups, all.data(), B, [&](size_t g, int64_t) { return first[g] == 0; });
    } else {  // row b's clock is t + clock[b]
      run_step(p, groups, all.data(), B, [&](size_t g, int64_t b) {
        return ticks_at(clock[b], first[g], groups[g].period);
      });
    }
  });
  return out;
}

// The sequence forward (same schema and results as `forward`), one step after another.
std::tuple<Tensor, Tensor> forward_time_major_cpu(const Tensor& input, const Tensor& hx,
                                                  const Tensor& weight_ih, const Tensor& weight_hh,
                                                  const std::optional<Tensor>& bias,
                                                  c10::IntArrayRef periods,
                                                  c10::IntArrayRef module_sizes, int64_t t0,
                                                  c10::string_view nonlinearity,
                                                  const std::optional<Tensor>& lengths) {
  check_cpu(input);
  const bool relu = parse_activation(nonlinearity) == Activation::kRelu;
  TORCH_CHECK(input.dim() == 3, "input must be 3-D (T, B, I), got ", input.sizes());
  const int64_t T = input.size(0), B = input.size(1), H = weight_hh.size(0);
  check_layer_tensors(input, B, input.size(2), hx, weight_ih, weight_hh, bias, std::nullopt);
  check_clocks_fit(t0, T);
  const int64_t* length = nullptr;
  Tensor lengths_c;
  if (lengths) {
    TORCH_CHECK(lengths->dim() == 1 && lengths->size(0) == B, "lengths must be (", B, "), got ",
                lengths->sizes());
    TORCH_CHECK(lengths->scalar_type() == at::kLong, "lengths must be int64, got ", lengths->scalar_type());
    TORCH_CHECK(lengths->is_cpu(), "lengths is on ", lengths->device(), " but input is on the CPU");
    lengths_c = lengths->contiguous();
    length = lengths_c.const_data_ptr<int64_t>();
    for (int64_t b = 0; b < B; ++b)
      TORCH_CHECK(length[b] >= 0 && length[b] <= T, "lengths must lie in [0, ", T, "], got ",
                  length[b], " in row ", b);
  }
  const auto groups = make_period_groups(periods, module_sizes, H);
  const Tensor x = input.stride(2) == 1 || input.size(2) <= 1 ? input : input.contiguous();
  const Tensor h0 = rows_contiguous(hx);
  const Tensor w_ih = weight_ih.contiguous(), w_hh = weight_hh.contiguous();
  const std::optional<Tensor> b = bias ? std::optional<Tensor>(bias->contiguous()) : std::nullopt;
  Tensor out = at::empty({T, B, H}, input.options());
  Tensor h_n = at::empty({B, H}, input.options());
  if (B == 0) return {out, h_n};
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "cwrnn_forward_time_major_cpu", [&] {
    c10::SmallVector<const scalar_t*, 64> xs(B), state(B);
    c10::SmallVector<scalar_t*, 64> outs(B);
    c10::SmallVector<int64_t, 64> running(B);  // the rows still inside their sequence
    for (int64_t r = 0; r < B; ++r) state[r] = h0.const_data_ptr<scalar_t>() + r * h0.stride(0);
    const StepRows<scalar_t> p{x.size(2), H,
                               w_ih.const_data_ptr<scalar_t>(), w_hh.const_data_ptr<scalar_t>(),
                               b ? b->const_data_ptr<scalar_t>() : nullptr, nullptr,
                               relu, xs.data(), state.data(), outs.data()};
    c10::SmallVector<int64_t, 16> first(groups.size());
    for (size_t g = 0; g < groups.size(); ++g) first[g] = first_tick(t0, groups[g].period);
    for (int64_t s = 0; s < T; ++s) {
      scalar_t* out_s = out.mutable_data_ptr<scalar_t>() + s * B * H;
      int64_t num_running = 0;
      for (int64_t r = 0; r < B; ++r) {
        outs[r] = out_s + r * H;
        if (length != nullptr && s >= length[r]) {  // finished: output 0, state kept
          std::fill(outs[r], outs[r] + H, scalar_t(0));
          continue;
        }
        xs[r] = x.const_data_ptr<scalar_t>() + s * x.stride(0) + r * x.stride(1);
        running[num_running++] = r;
      }
      run_step(p, groups, running.data(), num_running, [&](size_t g, int64_t) {
        return ticks_at(s, first[g], groups[g].period);
      });
      for (int64_t i = 0; i < num_running; ++i) state[running[i]] = outs[running[i]];
    }
    for (int64_t r = 0; r < B; ++r)
      std::memcpy(h_n.mutable_data_ptr<scalar_t>() + r * H, state[r], H * sizeof(scalar_t));
  });
  return {out, h_n};
}

StepGradients step_backward_cpu(const Tensor& grad, const Tensor& input, const Tensor& hx,
                                const Tensor& weight_ih, const Tensor& weight_hh,
                                const Tensor& output, c10::IntArrayRef periods,
                                c10::IntArrayRef module_sizes, int64_t t,
                                const std::optional<Tensor>& clocks,
                                c10::string_view nonlinearity, StepGradientMask mask) {
  check_cpu(input);
  const bool relu = parse_activation(nonlinearity) == Activation::kRelu;
  check_step_arguments(input, hx, weight_ih, weight_hh, std::nullopt, std::nullopt, t, clocks);
  check_step_tensor(grad, "grad", input);
  check_step_tensor(output, "output", input);
  TORCH_CHECK(grad.sizes() == hx.sizes() && output.sizes() == hx.sizes(),
              "grad and output must be (B, H) like hx, got ", grad.sizes(), " and ", output.sizes());
  return step_backward_generic(grad, input, hx, weight_ih, weight_hh, output, periods,
                               module_sizes, t, clocks, relu, mask);
}

}  // namespace

TORCH_LIBRARY_IMPL(cwrnn_ext, CPU, m) {
  m.impl("step", &step_cpu);
  m.impl("step_backward", &step_backward_cpu);
  m.impl("forward_time_major", &forward_time_major_cpu);
}

}  // namespace cwrnn
