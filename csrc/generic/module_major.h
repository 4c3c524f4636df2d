// The generic module-major (docs/design.md, Module-major: group after group), written once with
// ATen ops: CUDA's forward and backward, and on the CPU the test ops (test_ops.cpp). (The CPU's own
// module-major, with its temporaries in a reused workspace, is cpu/module_major_cpu.cpp; both add the
// held terms inside the recurrences and sum the deltas into sinks, one per held value.)
//
// Forward walks period groups from slowest to fastest: the input term is one large GEMM per group
// over all its ticks, the term from each slower group (whose trajectory is already known) one GEMM
// over the values it holds (HeldTerm); only the group's own k x k recurrence is sequential, and a
// device backend runs it, adding the held terms as it goes. Backward walks fastest first,
// mirroring it: the backend's reverse recurrence yields the group's deltas and sums them per held
// value, then GEMMs give its weight gradients and the gradient it sends to slower groups.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <optional>
#include <tuple>
#include <vector>

#include "../checks.h"
#include "../schedule.h"

namespace cwrnn {

// Where one group ticks in this call.
struct GroupTicks {
  PeriodGroup group;
  int64_t first;  // first step with a tick
  int64_t ticks;  // number of ticks
};

// What a slower group sends to the faster groups, evaluated once per value it holds rather than
// once per tick of each reader (a held value is read by many ticks of faster groups):
//   values[m] = W_hh[0:begin, its columns] h^{(m)},  (ticks + 1, B, begin) contiguous,
// where h^{(0)} is hx and h^{(n+1)} its state after tick n. A tick at step s of a faster group
// reads the value held at step s - 1: m = 0 if s - 1 < first, else (s - 1 - first) / period + 1.
// The backward's sinks have the same shape and indexing and use this struct too: values[m] is then
// the sum of the deltas of the faster ticks that read held value m.
struct HeldTerm {
  at::Tensor values;
  int64_t first;
  int64_t period;
};

// Copies a group's shape and ticks into a backend's kernel parameters (the CPU and CUDA
// parameter structs share these field names).
template <typename Params>
void fill_group(Params& p, const GroupTicks& g, const at::Tensor& out, Activation activation) {
  p.steps = out.size(0);
  p.batch = out.size(1);
  p.hidden = out.size(2);
  p.begin = g.group.begin;
  p.size = g.group.size();
  p.first = g.first;
  p.period = g.group.period;
  p.ticks = g.ticks;
  p.relu = activation == Activation::kRelu;
}

// The sequential part, per device. Tensors are contiguous; shapes as in cpu/recurrence.h.
class RecurrenceBackend {
 public:
  virtual ~RecurrenceBackend() = default;
  // pre: (ticks, B, k); h0: (B, H); diag_t: W_ii^T (k, k); out: (T, B, H), group columns written.
  // The slower groups' held terms are added inside the recurrence (one pass, no temporaries).
  virtual void forward_with_held(const GroupTicks& g, const at::Tensor& pre, const at::Tensor& h0,
                                 const at::Tensor& diag_t, const at::Tensor& out,
                                 Activation activation, const std::vector<HeldTerm>& held) const = 0;
  // out: (T, B, H); grad_state: (T+1, B, H); diag: W_ii (k, k); delta: (ticks, B, k) written;
  // grad_h0: (B, H), group columns written. Each delta_n is also added into sinks[j].values[m]
  // (columns of this group), m = the value of slower group j that tick n read (the mirror of
  // forward_with_held).
  virtual void backward_with_held(const GroupTicks& g, const at::Tensor& out,
                                  const at::Tensor& grad_state, const at::Tensor& diag,
                                  const at::Tensor& delta, const at::Tensor& grad_h0,
                                  Activation activation, const std::vector<HeldTerm>& sinks) const = 0;
};

// Pieces of the generic module-major that the CPU module-major (cpu/module_major_cpu.cpp) shares.

// The period groups, fastest first, and where each ticks in `steps` steps from clock t0.
std::vector<GroupTicks> schedule(const at::Tensor& weight_hh, c10::IntArrayRef periods,
                                 c10::IntArrayRef module_sizes, int64_t steps, int64_t t0);
// Steps first, first + period, ... (ticks of them) of a (T, ...) tensor: a strided view.
at::Tensor at_ticks(const at::Tensor& t, const GroupTicks& g);
// (T, B): true where step s is inside sequence b.
at::Tensor valid_steps_mask(const at::Tensor& lengths, int64_t steps);
// (output, h_n) from the recurrences' `out`: with lengths, h_n is each sequence's state at its
// last step (hx if empty) and the output past its length is 0 (selected, whatever was computed).
std::tuple<at::Tensor, at::Tensor> finish_forward(at::Tensor out, const at::Tensor& h0,
                                                  const std::optional<at::Tensor>& lengths);

std::tuple<at::Tensor, at::Tensor> module_major_forward(
    const at::Tensor& input, const at::Tensor& hx, const at::Tensor& weight_ih,
    const at::Tensor& weight_hh, const std::optional<at::Tensor>& bias, c10::IntArrayRef periods,
    c10::IntArrayRef module_sizes, int64_t t0, Activation activation, const std::optional<at::Tensor>& lengths,
    const RecurrenceBackend& backend);

// Which of (grad_input, grad_hx, grad_weight_ih, grad_weight_hh, grad_bias) to compute.
using GradientMask = std::array<bool, 5>;

// Returns (grad_input, grad_hx, grad_weight_ih, grad_weight_hh, grad_bias); those not asked for in
// `mask` are undefined tensors, and the work that only they need is skipped.
// grad_output and grad_h_n may be absent (zero).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> module_major_backward(
    const std::optional<at::Tensor>& grad_output, const std::optional<at::Tensor>& grad_h_n,
    const at::Tensor& input,
    const at::Tensor& hx, const at::Tensor& weight_ih, const at::Tensor& weight_hh,
    const at::Tensor& output, c10::IntArrayRef periods, c10::IntArrayRef module_sizes, int64_t t0,
    Activation activation, const std::optional<at::Tensor>& lengths, GradientMask mask,
    const RecurrenceBackend& backend);

// The gradients of module_major_backward as the op returns them: undefined ones as nullopt.
using OptionalGradients = std::tuple<std::optional<at::Tensor>, std::optional<at::Tensor>,
                                     std::optional<at::Tensor>, std::optional<at::Tensor>,
                                     std::optional<at::Tensor>>;
OptionalGradients as_optional(
    const std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>& grads);

}  // namespace cwrnn
