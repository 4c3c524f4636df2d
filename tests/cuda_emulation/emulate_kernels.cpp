// Runs the CUDA recurrence kernels' own source (csrc/cuda/recurrence_kernels.cuh) on the CPU and
// compares them with the CPU recurrences (csrc/cpu/recurrence.cpp) over random problems.
//
// Each CUDA thread of a block is a std::thread, __syncthreads is a std::barrier, blocks run one
// after another, shared memory is one static buffer. Built with a small CWRNN_CUDA_MAX_THREADS so
// that small groups already take the column loop. Output and shared memory start as NaN (or a
// sentinel) and guard zones surround every array, so unwritten outputs, reads of unwritten shared
// memory and stray writes show up as mismatches. It checks the kernels' indexing and semantics
// (and the launch-shape choice), not what only a GPU shows (timing, coalescing, real races:
// see benchmarks/cuda_check.sh for compute-sanitizer).
//
// Usage: emulate_kernels [cases_per_dtype [seed]]; prints one line per dtype, exit code 0 if all
// cases match.
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <math.h>

#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

// ---- the CUDA built-ins the kernels use, for one CPU thread per CUDA thread -----------------
struct Dim3 {
  unsigned x = 0, y = 0, z = 0;
};
thread_local Dim3 threadIdx, blockIdx, blockDim;
thread_local std::barrier<>* block_barrier = nullptr;
inline void __syncthreads() { block_barrier->arrive_and_wait(); }
template <typename T>
inline T __ldg(const T* p) {
  return *p;
}
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__
#define __align__(n) __attribute__((aligned(n)))

namespace cwrnn::cuda::detail {
constexpr size_t kSharedCapacity = size_t(1) << 20;
constexpr size_t kSharedGuard = 4096;
// The kernels' `extern __shared__ unsigned char shared_bytes[]` names this array.
alignas(16) unsigned char shared_bytes[kSharedCapacity + kSharedGuard];
}  // namespace cwrnn::cuda::detail

#include "cuda/recurrence_kernels.cuh"

namespace {

using cwrnn::BackwardRecurrence;
using cwrnn::ForwardRecurrence;
using cwrnn::cuda::LaunchShape;
using cwrnn::cuda::detail::shared_bytes;

int failures = 0;
int variants_seen[2][2] = {};  // [rows_per_thread == 4][resident]
int column_loops_seen = 0;     // cases with k > cols

void fail(const std::string& what) {
  if (++failures <= 20) std::printf("MISMATCH %s\n", what.c_str());
}

template <typename Kernel, typename Params>
void emulate_launch(Kernel kernel, const LaunchShape& shape, const Params& p, const std::string& label) {
  using namespace cwrnn::cuda::detail;
  if (shape.shared_bytes > kSharedCapacity) {
    fail(label + ": shared_bytes " + std::to_string(shape.shared_bytes) + " over the emulator's capacity");
    return;
  }
  for (int64_t b = 0; b < shape.blocks; ++b) {
    std::memset(shared_bytes, 0xFF, sizeof(shared_bytes));  // NaN as float and double
    std::barrier<> barrier(shape.threads());
    std::vector<std::thread> threads;
    threads.reserve(shape.threads());
    for (int t = 0; t < shape.threads(); ++t) {
      threads.emplace_back([&, t] {
        threadIdx = {static_cast<unsigned>(t), 0, 0};
        blockIdx = {static_cast<unsigned>(b), 0, 0};
        blockDim = {static_cast<unsigned>(shape.threads()), 1, 1};
        block_barrier = &barrier;
        kernel(p, shape.cols, shape.row_groups);
      });
    }
    for (auto& t : threads) t.join();
    for (size_t i = shape.shared_bytes; i < shape.shared_bytes + kSharedGuard; ++i) {
      if (shared_bytes[i] != 0xFF) {
        fail(label + ": write past the block's shared memory");
        break;
      }
    }
  }
}

// An array with guard zones on both sides, all initialised to `fill`.
template <typename T>
struct Guarded {
  static constexpr size_t kPad = 64;
  std::vector<T> data;
  T fill;
  Guarded(size_t n, T fill_value) : data(n + 2 * kPad, fill_value), fill(fill_value) {}
  T* ptr() { return data.data() + kPad; }
  size_t size() const { return data.size() - 2 * kPad; }
  T& operator[](size_t i) { return data[kPad + i]; }
  bool guards_intact() const {
    for (size_t i = 0; i < kPad; ++i) {
      if (!same(data[i], fill) || !same(data[data.size() - 1 - i], fill)) return false;
    }
    return true;
  }
  static bool same(T a, T b) { return std::memcmp(&a, &b, sizeof(T)) == 0; }
};

int64_t tick_count(int64_t steps, int64_t first, int64_t period) {  // as in csrc/schedule.h
  return first >= steps ? 0 : (steps - 1 - first) / period + 1;
}

struct Case {
  int64_t T, B, H, begin, k, period, first;
  bool relu;
  int sms;
  size_t shared_limit;
  std::string str() const {
    char buffer[256];
    std::snprintf(buffer, sizeof(buffer), "T=%ld B=%ld H=%ld begin=%ld k=%ld period=%ld first=%ld relu=%d sms=%d limit=%zu",
                  (long)T, (long)B, (long)H, (long)begin, (long)k, (long)period, (long)first, (int)relu, sms,
                  shared_limit);
    return buffer;
  }
};

template <typename T>
double to_double(T v) {
  return static_cast<double>(static_cast<float>(v));
}
template <>
double to_double(double v) {
  return v;
}

// |actual - expected| <= tol * (1 + |expected|) everywhere; NaN never matches.
template <typename A, typename E>
bool close(A* actual, E* expected, size_t n, double tol, std::string* where) {
  for (size_t i = 0; i < n; ++i) {
    const double a = to_double(actual[i]), e = to_double(expected[i]);
    if (!(std::fabs(a - e) <= tol * (1.0 + std::fabs(e)))) {
      *where = "element " + std::to_string(i) + ": " + std::to_string(a) + " vs " + std::to_string(e);
      return false;
    }
  }
  return true;
}

template <typename scalar_t>
using cpu_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;

template <typename scalar_t>
constexpr bool has_backward = std::is_same_v<scalar_t, float> || std::is_same_v<scalar_t, double>;

template <typename scalar_t>
double tolerance() {
  if constexpr (std::is_same_v<scalar_t, double>) return 1e-12;
  if constexpr (std::is_same_v<scalar_t, float>) return 2e-5;  // CPU float tanh is a rational approximation
  if constexpr (std::is_same_v<scalar_t, c10::Half>) return 2e-3;  // output rounding (2^-11) + float32 noise
  return 8e-3;                                                      // bfloat16: 2^-8
}

template <typename scalar_t>
void run_case(const Case& c, std::mt19937_64& rng, const char* dtype) {
  using acc_t = typename cwrnn::cuda::detail::AccType<scalar_t>::type;
  using ref_t = cpu_t<scalar_t>;
  const std::string label = std::string(dtype) + " " + c.str();
  std::normal_distribution<double> normal(0.0, 1.0);
  const int64_t ticks = tick_count(c.T, c.first, c.period);

  // Values rounded to scalar_t, the same numbers for the kernel (scalar_t) and the CPU (ref_t).
  auto random_values = [&](size_t n, double scale, std::vector<scalar_t>* mine, std::vector<ref_t>* ref) {
    mine->resize(n);
    ref->resize(n);
    for (size_t i = 0; i < n; ++i) {
      (*mine)[i] = static_cast<scalar_t>(normal(rng) * scale);
      (*ref)[i] = static_cast<ref_t>(to_double((*mine)[i]));
    }
  };
  std::vector<scalar_t> pre, h0, diag_t;
  std::vector<ref_t> pre_ref, h0_ref, diag_t_ref;
  random_values(static_cast<size_t>(ticks * c.B * c.k), 1.0, &pre, &pre_ref);
  random_values(static_cast<size_t>(c.B * c.H), 0.5, &h0, &h0_ref);
  random_values(static_cast<size_t>(c.k * c.k), 0.8 / std::sqrt(double(c.k)), &diag_t, &diag_t_ref);

  auto fill_group = [&](auto& p) {
    p.steps = c.T;
    p.batch = c.B;
    p.hidden = c.H;
    p.begin = c.begin;
    p.size = c.k;
    p.first = c.first;
    p.period = c.period;
    p.ticks = ticks;
    p.relu = c.relu;
  };
  const auto shape = cwrnn::cuda::choose_shape(c.k, c.B, sizeof(scalar_t), sizeof(acc_t), c.sms, c.shared_limit);
  if (!shape) {
    fail(label + ": no launch shape");
    return;
  }
  ++variants_seen[shape->rows_per_thread == 4][shape->resident];
  if (c.k > shape->cols) ++column_loops_seen;
  const std::string shape_label = label + " [cols=" + std::to_string(shape->cols) + " groups=" +
                                  std::to_string(shape->row_groups) + " rows/thread=" +
                                  std::to_string(shape->rows_per_thread) + " resident=" +
                                  std::to_string(shape->resident) + "]";

  // ---- forward ----
  const size_t out_size = static_cast<size_t>(c.T * c.B * c.H);
  const ref_t sentinel = ref_t(777);  // never a value of the recurrence
  Guarded<ref_t> out_ref(out_size, sentinel);
  Guarded<scalar_t> out(out_size, static_cast<scalar_t>(float(sentinel)));
  {
    ForwardRecurrence<ref_t> p;
    fill_group(p);
    p.diag = diag_t_ref.data();
    p.pre = pre_ref.data();
    p.h0 = h0_ref.data();
    p.out = out_ref.ptr();
    cwrnn::run_forward_recurrence(p, 0, c.B);
  }
  if (c.T > 0) {
    ForwardRecurrence<scalar_t> p;
    fill_group(p);
    p.diag = diag_t.data();
    p.pre = pre.data();
    p.h0 = h0.data();
    p.out = out.ptr();
    using cwrnn::cuda::detail::forward_recurrence_kernel;
    if (shape->rows_per_thread == 4) {
      if (shape->resident) emulate_launch(forward_recurrence_kernel<scalar_t, 4, true>, *shape, p, shape_label);
      else emulate_launch(forward_recurrence_kernel<scalar_t, 4, false>, *shape, p, shape_label);
    } else {
      if (shape->resident) emulate_launch(forward_recurrence_kernel<scalar_t, 1, true>, *shape, p, shape_label);
      else emulate_launch(forward_recurrence_kernel<scalar_t, 1, false>, *shape, p, shape_label);
    }
  }
  std::string where;
  if (!close(out.ptr(), out_ref.ptr(), out_size, tolerance<scalar_t>(), &where))
    fail("forward " + shape_label + ": " + where);
  if (!out.guards_intact()) fail("forward " + shape_label + ": write outside out");

  if constexpr (has_backward<scalar_t>) {
    // ---- backward, from the forward's output ----
    std::vector<scalar_t> grad_state, diag;
    std::vector<ref_t> grad_state_ref, diag_ref;
    random_values(static_cast<size_t>((c.T + 1) * c.B * c.H), 1.0, &grad_state, &grad_state_ref);
    random_values(static_cast<size_t>(c.k * c.k), 0.8 / std::sqrt(double(c.k)), &diag, &diag_ref);
    const size_t delta_size = static_cast<size_t>(ticks * c.B * c.k), h0_size = static_cast<size_t>(c.B * c.H);
    Guarded<scalar_t> delta(delta_size, sentinel), delta_ref(delta_size, sentinel);
    Guarded<scalar_t> grad_h0(h0_size, sentinel), grad_h0_ref(h0_size, sentinel);
    auto fill_backward = [&](BackwardRecurrence<scalar_t>& p, const scalar_t* output,
                             Guarded<scalar_t>& d, Guarded<scalar_t>& g) {
      fill_group(p);
      p.diag = diag.data();
      p.out = output;
      p.grad_state = grad_state.data();
      p.delta = d.ptr();
      p.grad_h0 = g.ptr();
    };
    BackwardRecurrence<scalar_t> p_ref, p;
    fill_backward(p_ref, out_ref.ptr(), delta_ref, grad_h0_ref);
    fill_backward(p, out_ref.ptr(), delta, grad_h0);
    cwrnn::run_backward_recurrence(p_ref, 0, c.B);
    using cwrnn::cuda::detail::backward_recurrence_kernel;
    if (shape->rows_per_thread == 4) {
      if (shape->resident) emulate_launch(backward_recurrence_kernel<scalar_t, 4, true>, *shape, p, shape_label);
      else emulate_launch(backward_recurrence_kernel<scalar_t, 4, false>, *shape, p, shape_label);
    } else {
      if (shape->resident) emulate_launch(backward_recurrence_kernel<scalar_t, 1, true>, *shape, p, shape_label);
      else emulate_launch(backward_recurrence_kernel<scalar_t, 1, false>, *shape, p, shape_label);
    }
    if (!close(delta.ptr(), delta_ref.ptr(), delta_size, tolerance<scalar_t>() * 10, &where))
      fail("backward delta " + shape_label + ": " + where);
    if (!close(grad_h0.ptr(), grad_h0_ref.ptr(), h0_size, tolerance<scalar_t>() * 10, &where))
      fail("backward grad_h0 " + shape_label + ": " + where);
    if (!delta.guards_intact() || !grad_h0.guards_intact()) fail("backward " + shape_label + ": write outside");
  }
}

Case random_case(std::mt19937_64& rng, size_t acc_bytes, size_t scalar_bytes) {
  auto uniform = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  Case c{};
  const int64_t k_choices[] = {1, 2, 3, 7, 31, 32, 33, 63, 64, 65, 100, 129, 150};
  c.k = uniform(0, 3) == 0 ? k_choices[uniform(0, 12)] : uniform(1, 48);
  c.begin = uniform(0, 1) ? 0 : uniform(1, 5);
  c.H = c.begin + c.k + (uniform(0, 1) ? 0 : uniform(1, 5));
  c.T = uniform(0, 4) == 0 ? uniform(0, 3) : uniform(4, 40);
  c.B = uniform(0, 3) == 0 ? uniform(1, 3) : uniform(4, 40);
  c.period = uniform(1, 7);
  c.first = uniform(0, c.period - 1);
  if (uniform(0, 9) == 0) c.first = c.T + uniform(0, 2);  // never ticks: h0 held throughout
  c.relu = uniform(0, 1) == 1;
  const int sms_choices[] = {1, 2, 5, 132};
  c.sms = sms_choices[uniform(0, 3)];
  // Shared memory: roomy; just under W_ii plus a few rows (non-resident); or W_ii plus a few rows.
  const size_t w = static_cast<size_t>(c.k * c.k) * scalar_bytes, row = 2 * static_cast<size_t>(c.k) * acc_bytes;
  switch (uniform(0, 2)) {
    case 0: c.shared_limit = 232448; break;
    case 1: c.shared_limit = std::max(row, w - 1) + row * static_cast<size_t>(uniform(0, 8)); break;
    default: c.shared_limit = w + row * static_cast<size_t>(uniform(1, 8)); break;
  }
  if (c.shared_limit < row) c.shared_limit = row;
  return c;
}

template <typename scalar_t>
void run_dtype(const char* name, int cases, uint64_t seed) {
  using acc_t = typename cwrnn::cuda::detail::AccType<scalar_t>::type;
  std::mt19937_64 rng(seed);
  const int before = failures;
  for (int i = 0; i < cases; ++i) run_case<scalar_t>(random_case(rng, sizeof(acc_t), sizeof(scalar_t)), rng, name);
  std::printf("%-9s %d cases, %d mismatches\n", name, cases, failures - before);
}

}  // namespace

int main(int argc, char** argv) {
  const int cases = argc > 1 ? std::atoi(argv[1]) : 40;
  const uint64_t seed = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1;
  run_dtype<float>("float32", cases, seed);
  run_dtype<double>("float64", cases, seed + 1);
  run_dtype<c10::Half>("float16", cases / 2, seed + 2);
  run_dtype<c10::BFloat16>("bfloat16", cases / 2, seed + 3);
  std::printf("variants (rows/thread, W_ii resident): 1,yes %d  1,no %d  4,yes %d  4,no %d; column loop %d\n",
              variants_seen[0][1], variants_seen[0][0], variants_seen[1][1], variants_seen[1][0],
              column_loops_seen);
  std::printf(failures == 0 ? "OK\n" : "FAILED\n");
  return failures == 0 ? 0 : 1;
}
