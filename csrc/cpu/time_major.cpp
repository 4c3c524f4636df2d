// The time-major sequence forward: one step after another through the step kernel (step_rows.h).
#include "time_major.h"

#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <c10/util/SmallVector.h>

#include <algorithm>
#include <cstring>

#include "forward_path.h"
#include "step_rows.h"

namespace cwrnn {

using at::Tensor;

std::tuple<Tensor, Tensor> time_major_forward(const Tensor& input, const Tensor& hx,
                                              const Tensor& weight_ih, const Tensor& weight_hh,
                                              const std::optional<Tensor>& bias,
                                              const std::vector<PeriodGroup>& groups, int64_t t0,
                                              Activation activation,
                                              const std::optional<Tensor>& lengths) {
  record_forward_path(ForwardPath::kTimeMajor);
  const bool relu = activation == Activation::kRelu;
  const int64_t T = input.size(0), B = input.size(1), H = weight_hh.size(0);
  const int64_t* length = nullptr;
  Tensor lengths_c;
  if (lengths) {
    lengths_c = lengths->contiguous();
    length = lengths_c.const_data_ptr<int64_t>();
  }
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
      step_active_rows(p, groups, running.data(), num_running, [&](size_t g, int64_t) {
        return ticks_at(s, first[g], groups[g].period);
      });
      for (int64_t i = 0; i < num_running; ++i) state[running[i]] = outs[running[i]];
    }
    for (int64_t r = 0; r < B; ++r)
      std::memcpy(h_n.mutable_data_ptr<scalar_t>() + r * H, state[r], H * sizeof(scalar_t));
  });
  return {out, h_n};
}

}  // namespace cwrnn
