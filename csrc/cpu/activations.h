// Elementwise nonlinearities of the CPU kernels, a vector at a time through simd.h.
#pragma once

#include <cmath>
#include <cstdint>

#include "simd.h"

namespace cwrnn::CWRNN_ISA {

// float tanh as a clamped 13/6 rational function (the approximation Eigen uses): branch-free;
// max relative error 4e-7 (about 3 ulp) over the real line, NaN propagates. V is float or a
// vector of floats. The polynomials are evaluated in Estrin's scheme rather than Horner's: in a
// recurrence each tick waits for the previous tick's tanh, and Estrin's chain is 4 FMAs deep, not 7.
template <typename V>
__attribute__((always_inline)) inline V tanh_approx(V x) {
  const float clamp = 7.90531110763549805f;
  x = simd::at_most(simd::at_least(x, -clamp), clamp);
  const V y = x * x, y2 = y * y, y4 = y2 * y2;
  // p(y) = sum of p_i y^i, i = 0..6; q(y) = sum of q_i y^i, i = 0..3.
  const V p01 = 4.89352455891786e-03f + 6.37261928875436e-04f * y;
  const V p23 = 1.48572235717979e-05f + 5.12229709037114e-08f * y;
  const V p45 = -8.60467152213735e-11f + 2.00018790482477e-13f * y;
  const float p6 = -2.76076847742355e-16f;
  const V p = (p01 + p23 * y2) + (p45 + p6 * y2) * y4;
  const V q01 = 4.89352518554385e-03f + 2.26843463243900e-03f * y;
  const V q23 = 1.18534705686654e-04f + 1.19825839466702e-06f * y;
  const V q = q01 + q23 * y2;
  return x * p / q;
}

// relu that keeps NaN (as torch.relu does): only a value known to be negative becomes 0.
template <typename V>
__attribute__((always_inline)) inline V relu_of(V x) {
  return x < V{} ? V{} : x;
}

// a[0:n] = f(a[0:n]). float64 is for checking: tanh is libm's, exact.
__attribute__((always_inline)) inline void activate(float* a, int64_t n, bool relu) {
  if (relu) {
    simd::transform(a, n, [](auto v) { return relu_of(v); });
  } else {
    simd::transform(a, n, [](auto v) { return tanh_approx(v); });
  }
}
__attribute__((always_inline)) inline void activate(double* a, int64_t n, bool relu) {
  if (relu) {
    simd::transform(a, n, [](auto v) { return relu_of(v); });
  } else {
    for (int64_t c = 0; c < n; ++c) a[c] = std::tanh(a[c]);
  }
}

// Multiplies `grad` by f'(pre) given h = f(pre): 1 - h^2 for tanh, [h > 0] for relu.
template <typename T>
__attribute__((always_inline)) inline void times_derivative(T* grad, const T* h, int64_t n, bool relu) {
  if (relu) {
    simd::transform2(grad, h, n, [](auto g, auto v) { return v > decltype(v){} ? g : decltype(g){}; });
  } else {
    simd::transform2(grad, h, n, [](auto g, auto v) { return g * (T(1) - v * v); });
  }
}

}  // namespace cwrnn::CWRNN_ISA
