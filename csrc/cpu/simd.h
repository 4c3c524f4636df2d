// The one SIMD layer of the CPU kernels: a vector of T at the native width of the instruction set
// being compiled, and the few operations the kernels need (load, store, broadcast, multiply-add,
// min/max select, lane sums). GCC's vector extension maps each to the set's own instructions.
//
// Compiled once per instruction set (isa_kernels.h): the translation unit defines
//   CWRNN_ISA               the set's namespace (baseline, avx2, avx512)
//   CWRNN_VECTOR_BYTES      the width of one register: 16 (SSE2, NEON), 32 (AVX2), 64 (AVX-512)
//   CWRNN_VECTOR_REGISTERS  how many vector registers the set has: 16 (SSE2, AVX2), 32 (AVX-512, NEON)
// No vector here is wider than a register: a wider GCC vector has no register form and lives on the
// stack, piece by piece, so that every multiply-add loads and stores it.
#pragma once
#ifndef CWRNN_ISA
#error "compiled per instruction set only, through isa_kernels.h"
#endif

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

namespace cwrnn::CWRNN_ISA::simd {

constexpr int kVectorBytes = CWRNN_VECTOR_BYTES;
constexpr int kRegisters = CWRNN_VECTOR_REGISTERS;

// Lanes of T in one register.
template <typename T>
constexpr int kLanes = kVectorBytes / static_cast<int>(sizeof(T));

template <typename T, int N>
struct VectorOf {
  static_assert(N >= 2 && N * sizeof(T) <= kVectorBytes, "a vector must fit one register");
  typedef T type __attribute__((vector_size(N * sizeof(T))));
};
template <typename T>
struct VectorOf<T, 1> {  // one lane as a plain T: as a one-element vector GCC keeps it on the stack
  typedef T type;
};

// N values of T (N lanes of a register, by default all of them).
template <typename T, int N = kLanes<T>>
using Vec = typename VectorOf<T, N>::type;

// The integer lanes that index a Vec<T, N> in a shuffle.
template <typename T>
using LaneIndex = std::conditional_t<sizeof(T) == 8, long long, int>;

template <typename V, typename T>
__attribute__((always_inline)) inline V load(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));  // an unaligned load
  return v;
}

template <typename V, typename T>
__attribute__((always_inline)) inline void store(T* p, const V& v) {
  std::memcpy(p, &v, sizeof(V));
}

template <typename V, typename T>
__attribute__((always_inline)) inline V broadcast(T x) {
  return V{} + x;
}

// acc + a * b, one fused multiply-add where the set has one (GCC contracts it).
template <typename V, typename S>
__attribute__((always_inline)) inline V multiply_add(V acc, S a, V b) {
  return acc + a * b;
}

// min and max that keep NaN (a NaN compares false, so it is selected through): the clamp of tanh.
template <typename V, typename S>
__attribute__((always_inline)) inline V at_least(V x, S low) {
  return x < low ? broadcast<V>(low) : x;
}
template <typename V, typename S>
__attribute__((always_inline)) inline V at_most(V x, S high) {
  return x > high ? broadcast<V>(high) : x;
}

// v's low half plus its high half: N / 2 lanes with the same sum. A shuffle keeps the vector in
// its register (GCC 12 and clang); older compilers go through memory.
template <typename T, int N, size_t... i>
__attribute__((always_inline)) inline Vec<T, N / 2> sum_halves(Vec<T, N> v, std::index_sequence<i...>) {
#if defined(__has_builtin) && __has_builtin(__builtin_shufflevector)
  return __builtin_shufflevector(v, v, i...) + __builtin_shufflevector(v, v, (i + N / 2)...);
#else
  Vec<T, N / 2> low, high;
  std::memcpy(&low, &v, sizeof(low));
  std::memcpy(&high, reinterpret_cast<const char*>(&v) + sizeof(low), sizeof(high));
  return low + high;
#endif
}
template <typename T, int N>
__attribute__((always_inline)) inline Vec<T, N / 2> sum_halves(Vec<T, N> v) {
  if constexpr (N == 2) {
    return v[0] + v[1];
  } else {
    return sum_halves<T, N>(v, std::make_index_sequence<N / 2>{});
  }
}

// The sum of v's N lanes, adding halves (log2 N vector adds, no scalar chain).
template <typename T, int N>
__attribute__((always_inline)) inline T lane_sum(Vec<T, N> v) {
  if constexpr (N == 1) {
    return v;
  } else {
    return lane_sum<T, N / 2>(sum_halves<T, N>(v));
  }
}

// The shuffle masks of one level of lane_sums: lanes l of a block of 2h take pair sums of the first
// vector's block (l < h within the block) or of the second's.
template <typename T, int N, int h, size_t... l>
__attribute__((always_inline)) inline Vec<LaneIndex<T>, N> pair_mask(bool second, std::index_sequence<l...>) {
  return second ? Vec<LaneIndex<T>, N>{static_cast<LaneIndex<T>>(l % (2 * h) < h ? l + h : N + l)...}
                : Vec<LaneIndex<T>, N>{static_cast<LaneIndex<T>>(l % (2 * h) < h ? l : N + l - h)...};
}

// N vectors of N lanes in, one out: lane j is the sum of v[j]'s lanes. A transpose by halves that
// adds as it goes: log2 N levels of shuffles for all N vectors, not a reduction per vector.
template <typename T, int N, int h = 1>
__attribute__((always_inline)) inline Vec<T, N> lane_sums(const Vec<T, N>* v) {
  if constexpr (h == N) {
    return v[0];
  } else {
    constexpr int M = N / (2 * h);  // vectors after this level
    const auto first = pair_mask<T, N, h>(false, std::make_index_sequence<N>{});
    const auto second = pair_mask<T, N, h>(true, std::make_index_sequence<N>{});
    Vec<T, N> next[M];
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i)
      next[i] = __builtin_shuffle(v[2 * i], v[2 * i + 1], first) + __builtin_shuffle(v[2 * i], v[2 * i + 1], second);
    return lane_sums<T, N, 2 * h>(next);
  }
}

// Narrows a full vector to N lanes whose sum is the same (adding halves), for lane_sums of fewer
// vectors than a register has lanes.
template <typename T, int N, int L = kLanes<T>>
__attribute__((always_inline)) inline Vec<T, N> narrow(Vec<T, L> v) {
  if constexpr (L == N) {
    return v;
  } else {
    return narrow<T, N, L / 2>(sum_halves<T, L>(v));
  }
}

// f applied to a[0:n] in place, a vector at a time; the last n % lanes values go through the same
// vector code in a zero-padded copy, so every element sees the same arithmetic.
template <typename T, typename F>
__attribute__((always_inline)) inline void transform(T* a, int64_t n, const F& f) {
  constexpr int L = kLanes<T>;
  using V = Vec<T>;
  int64_t c = 0;
  for (; c + L <= n; c += L) store(a + c, f(load<V>(a + c)));
  if (c < n) {
    T tail[L] = {};
    std::memcpy(tail, a + c, (n - c) * sizeof(T));
    store(tail, f(load<V>(tail)));
    std::memcpy(a + c, tail, (n - c) * sizeof(T));
  }
}

// a[c] = f(a[c], b[c]) for c < n, as transform.
template <typename T, typename F>
__attribute__((always_inline)) inline void transform2(T* a, const T* b, int64_t n, const F& f) {
  constexpr int L = kLanes<T>;
  using V = Vec<T>;
  int64_t c = 0;
  for (; c + L <= n; c += L) store(a + c, f(load<V>(a + c), load<V>(b + c)));
  if (c < n) {
    T tail_a[L] = {}, tail_b[L] = {};
    std::memcpy(tail_a, a + c, (n - c) * sizeof(T));
    std::memcpy(tail_b, b + c, (n - c) * sizeof(T));
    store(tail_a, f(load<V>(tail_a), load<V>(tail_b)));
    std::memcpy(a + c, tail_a, (n - c) * sizeof(T));
  }
}

}  // namespace cwrnn::CWRNN_ISA::simd
