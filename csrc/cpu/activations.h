// Elementwise nonlinearities for the CPU recurrences, written so that GCC vectorises the loops.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace cwrnn {

// float tanh as a clamped 13/6 rational function (the approximation Eigen uses): branch-free, so
// the loop vectorises; max relative error 4e-7 (about 3 ulp) over the real line, NaN propagates.
// The polynomials are evaluated in Estrin's scheme rather than Horner's: in a recurrence each
// tick waits for the previous tick's tanh, and Estrin's dependency chain is 4 FMAs deep, not 7.
inline float tanh_approx(float x) {
  const float clamp = 7.90531110763549805f;
  x = std::min(std::max(x, -clamp), clamp);
  const float y = x * x, y2 = y * y, y4 = y2 * y2;
  // p(y) = sum of p_i y^i, i = 0..6; q(y) = sum of q_i y^i, i = 0..3.
  const float p01 = 4.89352455891786e-03f + 6.37261928875436e-04f * y;
  const float p23 = 1.48572235717979e-05f + 5.12229709037114e-08f * y;
  const float p45 = -8.60467152213735e-11f + 2.00018790482477e-13f * y;
  const float p6 = -2.76076847742355e-16f;
  const float p = (p01 + p23 * y2) + (p45 + p6 * y2) * y4;
  const float q01 = 4.89352518554385e-03f + 2.26843463243900e-03f * y;
  const float q23 = 1.18534705686654e-04f + 1.19825839466702e-06f * y;
  const float q = q01 + q23 * y2;
  return x * p / q;
}

inline float tanh_of(float x) { return tanh_approx(x); }
inline double tanh_of(double x) { return std::tanh(x); }  // float64 is for checking: exact libm

// relu that keeps NaN (as torch.relu does): only a value known to be negative becomes 0.
template <typename T>
inline T relu_of(T x) { return x < T(0) ? T(0) : x; }

template <typename T>
inline void activate(T* a, int64_t n, bool relu) {
  if (relu) {
    for (int64_t c = 0; c < n; ++c) a[c] = relu_of(a[c]);
  } else {
    for (int64_t c = 0; c < n; ++c) a[c] = tanh_of(a[c]);
  }
}

// Multiplies `grad` by f'(pre) given h = f(pre): 1 - h^2 for tanh, [h > 0] for relu.
template <typename T>
inline void times_derivative(T* grad, const T* h, int64_t n, bool relu) {
  if (relu) {
    for (int64_t c = 0; c < n; ++c) grad[c] = h[c] > T(0) ? grad[c] : T(0);
  } else {
    for (int64_t c = 0; c < n; ++c) grad[c] *= T(1) - h[c] * h[c];
  }
}

}  // namespace cwrnn
