// One period group's recurrence written as plainly as it can be: loops over batch rows, ticks and
// the k x k block, one value at a time. It is the CPU backend of the generic module-major (the test
// ops of test_ops.cpp) and the reference the CUDA kernels' emulation is checked against
// (tests/cuda_emulation), so it favours being obviously right over speed, and works on raw
// pointers (no ATen) so that both can call it.
//
// T is the storage type of every array, A the type each sum is computed in: a value is read from
// T, summed in A and rounded to T once, where it is stored. The state a tick reads is the one the
// previous tick stored (or h0), as a step-by-step definition in T would read it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "../schedule.h"

namespace cwrnn::plain {

// A slower group's held term (module_major.h, HeldTerm): values (ticks + 1, B, width) row-major,
// width = that group's begin. The forward reads it; the backward adds this group's deltas into it.
template <typename T>
struct Held {
  T* values;
  int64_t width;
  int64_t first, period;
};

// The group: columns [begin, begin + size) of (steps, batch, hidden) arrays, ticking at steps
// first, first + period, ... (ticks of them). Field names as module_major.h's fill_group expects.
template <typename T>
struct Group {
  int64_t steps, batch, hidden;
  int64_t begin, size;
  int64_t first, period, ticks;
  bool relu;
  // (size x size), element j * size + c the weight of unit j in unit c's sum: forward W_ii^T,
  // backward W_ii (whose transpose carries a delta back to the previous state).
  const T* diag;
  const Held<T>* held = nullptr;
  int64_t num_held = 0;
};

template <typename A>
A activation(A x, bool relu) {
  if (relu) return x < A(0) ? A(0) : x;  // NaN stays NaN, as torch.relu
  return std::tanh(x);
}

// f'(pre) from h = f(pre).
template <typename A>
A derivative(A h, bool relu) {
  if (relu) return h > A(0) ? A(1) : A(0);
  return A(1) - h * h;
}

// h_n = f(pre_n + sum_j held_j[m_j] + W_ii h_{n-1}) from h_{-1} = h0's columns, m_j the value of
// slower group j held at step s_n - 1; out gets h_n at step s_n and keeps it on the steps until
// the next tick (h0 before the first).   pre: (ticks, B, size)   h0: (B, H)   out: (T, B, H)
template <typename A, typename T>
void forward(const Group<T>& p, const T* pre, const T* h0, T* out) {
  const int64_t B = p.batch, H = p.hidden, k = p.size;
  std::vector<A> sum(k);
  for (int64_t b = 0; b < B; ++b) {
    const T* state = h0 + b * H + p.begin;  // h_{n-1}: h0's columns, then the last tick's row
    for (int64_t s = 0; s < p.steps; ++s) {
      T* row = out + (s * B + b) * H + p.begin;
      const bool ticks = ticks_at(s, p.first, p.period);
      if (!ticks) {
        for (int64_t c = 0; c < k; ++c) row[c] = state[c];
        continue;
      }
      const int64_t n = (s - p.first) / p.period;
      for (int64_t c = 0; c < k; ++c) {
        A total = A(pre[(n * B + b) * k + c]);
        for (int64_t j = 0; j < p.num_held; ++j) {
          const Held<T>& h = p.held[j];
          const int64_t m = held_value_index(s, h.first, h.period);
          total += A(h.values[(m * B + b) * h.width + p.begin + c]);
        }
        for (int64_t i = 0; i < k; ++i) total += A(p.diag[i * k + c]) * A(state[i]);
        sum[c] = total;
      }
      for (int64_t c = 0; c < k; ++c) row[c] = T(activation(sum[c], p.relu));
      state = row;
    }
  }
}

// From the last tick to the first, with grad_state row s + 1 the gradient reaching the state after
// step s from outside the group (row 0: h0):
//   delta_n = (grad_state over the rows of the steps h_n is held + W_ii^T delta_{n+1}) * f'(h_n)
//   grad_h0 = grad_state rows 0 .. min(first, T) + W_ii^T delta_0
// and each delta_n is added into held[j].values[m_j] at the group's columns.
//   out: (T, B, H)   grad_state: (T + 1, B, H)   delta: (ticks, B, size) out   grad_h0: (B, H) out
//   (the group's columns)
template <typename A, typename T>
void backward(const Group<T>& p, const T* out, const T* grad_state, T* delta, T* grad_h0) {
  const int64_t B = p.batch, H = p.hidden, k = p.size;
  // Per batch row, W_ii^T delta_{n+1}: what tick n + 1 sends back to h_n (0 after the last tick).
  std::vector<A> carry(k);
  // grad_state's rows [from, to] at the group's columns of batch row b.
  const auto rows = [&](int64_t b, int64_t c, int64_t from, int64_t to) {
    A total = 0;
    for (int64_t r = from; r <= to; ++r) total += A(grad_state[(r * B + b) * H + p.begin + c]);
    return total;
  };
  for (int64_t b = 0; b < B; ++b) {
    std::fill(carry.begin(), carry.end(), A(0));
    for (int64_t n = p.ticks - 1; n >= 0; --n) {
      const int64_t s = p.first + n * p.period;
      const int64_t held_until = std::min(s + p.period, p.steps);  // h_n is the state after steps s .. held_until - 1
      T* delta_n = delta + (n * B + b) * k;
      for (int64_t c = 0; c < k; ++c) {
        const A h = A(out[(s * B + b) * H + p.begin + c]);
        delta_n[c] = T((carry[c] + rows(b, c, s + 1, held_until)) * derivative(h, p.relu));
      }
      for (int64_t j = 0; j < p.num_held; ++j) {
        const Held<T>& h = p.held[j];
        T* sums = h.values + (held_value_index(s, h.first, h.period) * B + b) * h.width + p.begin;
        for (int64_t c = 0; c < k; ++c) sums[c] = T(A(sums[c]) + A(delta_n[c]));
      }
      for (int64_t c = 0; c < k; ++c) {
        A total = 0;
        for (int64_t i = 0; i < k; ++i) total += A(p.diag[i * k + c]) * A(delta_n[i]);
        carry[c] = total;
      }
    }
    for (int64_t c = 0; c < k; ++c)
      grad_h0[b * H + p.begin + c] = T(carry[c] + rows(b, c, 0, std::min(p.first, p.steps)));
  }
}

}  // namespace cwrnn::plain
