// Runs the CUDA recurrence kernels' own source (csrc/cuda/recurrence_kernels.cuh) on the CPU
// (emulated_cuda.h) and compares them with the plain recurrences of csrc/generic/plain_recurrence.h
// (the generic schedule's reference backend, sums in double): first the shapes production uses (H100 numbers: 132 SMs, 227 KB of shared memory, 512-thread blocks,
// the g=8 layouts of H=256 and H=1024, the shared-memory boundary at k=240), then random
// problems, with the held terms of slower groups (forward) and their sums (backward).
//
// Outputs, deltas and sums start as a sentinel and shared memory as NaN, with guard zones around
// every array and after each block's shared memory: unwritten outputs, reads of unwritten shared
// memory and stray writes all show up as mismatches. It checks the kernels' indexing, semantics,
// barriers and shuffles (and the launch-shape choice); not timing or coalescing (see
// benchmarks/gpu/cuda_check.sh for what only a GPU shows).
//
// Usage: emulate_kernels [random_cases_per_dtype [seed [production-only | small]]] (small: the
// production shapes over a few rows and ticks, then the random cases); prints one line per
// dtype (mismatches per kernel), the kernel variants and paths covered, and OK (exit code 0) if
// every case matched. Built with -DCWRNN_EMULATE_FLOAT32_ONLY it runs float32 only.
#include "emulated_cuda.h"

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "cuda/recurrence_kernels.cuh"
#include "generic/plain_recurrence.h"

namespace {

using cwrnn::cuda::acc_type;
using cwrnn::cuda::LaunchShape;

int failures = 0;
std::map<std::string, int> failures_by_kernel;  // "forward" / "backward"
std::map<std::string, int> covered;  // kernel variants and paths the cases took

void fail(const std::string& what) {
  ++failures_by_kernel[what.substr(0, what.find(' '))];
  if (++failures <= 20) std::printf("MISMATCH %s\n", what.c_str());
}

// An array with guard zones on both sides, all initialised to `fill`.
template <typename T>
struct Guarded {
  static constexpr size_t kPad = 64;
  std::vector<T> data;
  T fill;
  Guarded(size_t n, T fill_value) : data(n + 2 * kPad, fill_value), fill(fill_value) {}
  T* ptr() { return data.data() + kPad; }
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

struct Held {  // a slower group: period at least the case's
  int64_t first, period, width;
};

struct Case {
  std::string name;
  int64_t T, B, H, begin, k, period, first;
  bool relu;
  std::vector<Held> held;  // slower groups: forward reads them, backward adds into them
  int sms;
  size_t shared_limit;
  int max_threads;
  std::string str() const {
    char buffer[320];
    std::snprintf(buffer, sizeof(buffer),
                  "%s T=%ld B=%ld H=%ld begin=%ld k=%ld period=%ld first=%ld relu=%d held=%zu sms=%d "
                  "limit=%zu threads<=%d",
                  name.c_str(), (long)T, (long)B, (long)H, (long)begin, (long)k, (long)period,
                  (long)first, (int)relu, held.size(), sms, shared_limit, max_threads);
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
  if constexpr (std::is_same_v<scalar_t, float>) return 2e-5;  // float32 sums against double ones
  if constexpr (std::is_same_v<scalar_t, c10::Half>) return 2e-3;  // output rounding (2^-11) + float32 noise
  return 8e-3;                                                      // bfloat16: 2^-8
}

std::string variant_of(const LaunchShape& s) {
  if (s.reg_chunks == cwrnn::cuda::kSmallRegChunks) return "W small in registers";
  if (s.reg_chunks > 0) return s.chunks > s.reg_chunks ? "W big in registers + shared" : "W big in registers";
  return s.shared_w ? "W in shared" : "W in global";
}

template <typename scalar_t, typename Params>
bool emulate(const LaunchShape& s, const Params& p, uint64_t seed) {
  using namespace cwrnn::cuda::detail;
  constexpr int big = sizeof(acc_type<scalar_t>) == 8 ? 8 : 16;
  auto run = [&](auto kernel) { return emu::launch(s.blocks, s.threads(), s.shared_bytes, seed, kernel, p, s); };
  if constexpr (std::is_same_v<Params, cwrnn::cuda::ForwardParams<scalar_t>>) {
    if (s.reg_chunks == cwrnn::cuda::kSmallRegChunks) return run(forward_recurrence_kernel<scalar_t, cwrnn::cuda::kSmallRegChunks, true>);
    if (s.reg_chunks == big) return run(forward_recurrence_kernel<scalar_t, big, true>);
    if (s.shared_w) return run(forward_recurrence_kernel<scalar_t, 0, true>);
    return run(forward_recurrence_kernel<scalar_t, 0, false>);
  } else {
    if (s.reg_chunks == cwrnn::cuda::kSmallRegChunks) return run(backward_recurrence_kernel<scalar_t, cwrnn::cuda::kSmallRegChunks, true>);
    if (s.reg_chunks == big) return run(backward_recurrence_kernel<scalar_t, big, true>);
    if (s.shared_w) return run(backward_recurrence_kernel<scalar_t, 0, true>);
    return run(backward_recurrence_kernel<scalar_t, 0, false>);
  }
}

template <typename scalar_t>
void run_case(const Case& c, std::mt19937_64& rng, const char* dtype, uint64_t seed) {
  using acc_t = acc_type<scalar_t>;
  using ref_t = cpu_t<scalar_t>;
  std::normal_distribution<double> normal(0.0, 1.0);
  const int64_t ticks = tick_count(c.T, c.first, c.period);
  const int num_held = static_cast<int>(c.held.size());

  // Values rounded to scalar_t, the same numbers for the kernel (scalar_t) and the reference (ref_t).
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
  std::vector<std::vector<scalar_t>> held(num_held);
  std::vector<std::vector<ref_t>> held_ref(num_held);
  for (int j = 0; j < num_held; ++j) {
    const Held& h = c.held[j];
    random_values(static_cast<size_t>((tick_count(c.T, h.first, h.period) + 1) * c.B * h.width), 0.3,
                  &held[j], &held_ref[j]);
  }

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
  const auto shape = cwrnn::cuda::choose_shape(c.k, c.B, 1 + num_held, sizeof(acc_t), c.sms,
                                               c.shared_limit, c.max_threads);
  if (!shape) {
    fail("forward " + std::string(dtype) + " " + c.str() + ": no launch shape");
    return;
  }
  const LaunchShape& s = *shape;
  if (s.threads() > c.max_threads || s.shared_bytes > c.shared_limit) {
    fail("forward " + std::string(dtype) + " " + c.str() + ": the shape exceeds its limits");
    return;
  }
  ++covered[variant_of(s)];
  ++covered["split " + std::to_string(s.split)];
  if (s.passes > 1) ++covered["several passes"];
  if (s.rows > 1) ++covered["several rows per block"];
  if (s.threads() == 512) ++covered["512-thread blocks"];
  if (s.threads() == 256 && s.reg_chunks > cwrnn::cuda::kSmallRegChunks) ++covered["256-thread blocks of the big kernels"];
  if (num_held > s.split * cwrnn::cuda::kSlots) ++covered["addends past the slots"];
  if (c.shared_limit == s.shared_bytes) ++covered["shared memory exactly at the limit"];
  for (const Held& h : c.held)
    if (h.first > (int64_t(1) << 31)) ++covered["a first tick past 2^31"];
  if (c.first > (int64_t(1) << 31)) ++covered["a first tick past 2^31"];
  char shape_text[200];
  std::snprintf(shape_text, sizeof(shape_text),
                " [split=%d units=%d passes=%d chunks=%d reg=%d shared_w=%d rows=%d blocks=%ld]", s.split,
                s.units, s.passes, s.chunks, s.reg_chunks, (int)s.shared_w, s.rows, (long)s.blocks);
  const std::string label = std::string(dtype) + " " + c.str() + shape_text;

  // ---- forward ----
  const size_t out_size = static_cast<size_t>(c.T * c.B * c.H);
  const ref_t sentinel = ref_t(777);  // never a value of the recurrence
  Guarded<ref_t> out_ref(out_size, sentinel);
  Guarded<scalar_t> out(out_size, static_cast<scalar_t>(float(sentinel)));
  {
    std::vector<cwrnn::plain::Held<ref_t>> sources;
    for (int j = 0; j < num_held; ++j)
      sources.push_back({held_ref[j].data(), c.held[j].width, c.held[j].first, c.held[j].period});
    cwrnn::plain::Group<ref_t> p;
    fill_group(p);
    p.diag = diag_t_ref.data();
    p.held = sources.data();
    p.num_held = num_held;
    cwrnn::plain::forward<double>(p, pre_ref.data(), h0_ref.data(), out_ref.ptr());
  }
  if (c.T > 0) {
    cwrnn::cuda::ForwardParams<scalar_t> p;
    fill_group(p);
    p.diag = diag_t.data();
    p.pre = pre.data();
    p.h0 = h0.data();
    p.out = out.ptr();
    p.num_held = num_held;
    for (int j = 0; j < num_held; ++j)
      p.held[j] = {held[j].data(), c.held[j].width, c.held[j].first, c.held[j].period};
    if (!emulate<scalar_t>(s, p, seed)) fail("forward " + label + ": write past the block's shared memory");
  }
  std::string where;
  if (!close(out.ptr(), out_ref.ptr(), out_size, tolerance<scalar_t>(), &where))
    fail("forward " + label + ": " + where);
  if (!out.guards_intact()) fail("forward " + label + ": write outside out");

  if constexpr (has_backward<scalar_t>) {
    // ---- backward, from the reference forward's output; the sums start from random values ----
    std::vector<scalar_t> grad_state, diag, unused;
    std::vector<ref_t> grad_state_ref, diag_ref;
    random_values(static_cast<size_t>((c.T + 1) * c.B * c.H), 1.0, &grad_state, &grad_state_ref);
    random_values(static_cast<size_t>(c.k * c.k), 0.8 / std::sqrt(double(c.k)), &diag, &diag_ref);
    std::vector<Guarded<scalar_t>> sums, sums_ref;
    for (int j = 0; j < num_held; ++j) {
      sums.emplace_back(held[j].size(), sentinel);
      sums_ref.emplace_back(held[j].size(), sentinel);
      for (size_t i = 0; i < held[j].size(); ++i) sums[j][i] = sums_ref[j][i] = held[j][i];
    }
    const size_t delta_size = static_cast<size_t>(ticks * c.B * c.k), h0_size = static_cast<size_t>(c.B * c.H);
    Guarded<scalar_t> delta(delta_size, sentinel), delta_ref(delta_size, sentinel);
    Guarded<scalar_t> grad_h0(h0_size, sentinel), grad_h0_ref(h0_size, sentinel);
    {
      std::vector<cwrnn::plain::Held<scalar_t>> sinks;
      for (int j = 0; j < num_held; ++j) sinks.push_back({sums_ref[j].ptr(), c.held[j].width, c.held[j].first, c.held[j].period});
      cwrnn::plain::Group<scalar_t> p;
      fill_group(p);
      p.diag = diag.data();
      p.held = sinks.data();
      p.num_held = num_held;
      cwrnn::plain::backward<double>(p, out_ref.ptr(), grad_state.data(), delta_ref.ptr(), grad_h0_ref.ptr());
    }
    {
      cwrnn::cuda::BackwardParams<scalar_t> p;
      fill_group(p);
      p.diag = diag.data();
      p.out = out_ref.ptr();
      p.grad_state = grad_state.data();
      p.delta = delta.ptr();
      p.grad_h0 = grad_h0.ptr();
      p.num_held = num_held;
      for (int j = 0; j < num_held; ++j)
        p.held[j] = {sums[j].ptr(), c.held[j].width, c.held[j].first, c.held[j].period};
      const auto backward_shape = cwrnn::cuda::choose_shape(c.k, c.B, num_held, sizeof(acc_t), c.sms,
                                                            c.shared_limit, c.max_threads);
      if (!backward_shape) {
        fail("backward " + label + ": no launch shape");
        return;
      }
      if (!emulate<scalar_t>(*backward_shape, p, seed + 1))
        fail("backward " + label + ": write past the block's shared memory");
      if (backward_shape->passes > 1 && num_held > 0) ++covered["sums added at once (several passes)"];
      if (num_held > backward_shape->split * cwrnn::cuda::kSlots) ++covered["sums past the slots"];
    }
    const double tol = tolerance<scalar_t>() * 10;
    if (!close(delta.ptr(), delta_ref.ptr(), delta_size, tol, &where)) fail("backward delta " + label + ": " + where);
    if (!close(grad_h0.ptr(), grad_h0_ref.ptr(), h0_size, tol, &where)) fail("backward grad_h0 " + label + ": " + where);
    for (int j = 0; j < num_held; ++j) {
      if (!close(sums[j].ptr(), sums_ref[j].ptr(), held[j].size(), tol, &where))
        fail("backward sums " + std::to_string(j) + " " + label + ": " + where);
      if (!sums[j].guards_intact()) fail("backward " + label + ": write outside sums");
    }
    if (!delta.guards_intact() || !grad_h0.guards_intact()) fail("backward " + label + ": write outside");
  }
}

constexpr int kH100Sms = 132;
constexpr size_t kH100SharedLimit = 232448;  // 227 KB

// A group of the default layout (g modules, exponential periods, H = g * k): group i is k wide,
// ticks every 2^i steps, and reads the g - 1 - i slower groups.
Case layout_case(const std::string& name, int64_t T, int64_t B, int64_t k, int g, int i, bool relu) {
  Case c;
  c.name = name;
  c.T = T;
  c.B = B;
  c.H = g * k;
  c.begin = i * k;
  c.k = k;
  c.period = int64_t(1) << i;
  c.first = 0;
  c.relu = relu;
  for (int j = i + 1; j < g; ++j) c.held.push_back({0, int64_t(1) << j, j * k});
  c.sms = kH100Sms;
  c.shared_limit = kH100SharedLimit;
  c.max_threads = cwrnn::cuda::kMaxThreads;
  return c;
}

// The shapes production uses. `small`: the same blocks (512 threads, the same variants and
// paths) over a few rows and ticks, for ThreadSanitizer, which is slow.
std::vector<Case> production_cases(size_t acc_bytes, bool small) {
  const int64_t B = small ? 2 : 32, T = small ? 6 : 24;
  std::vector<Case> cases;
  // H=1024, g=8: k=128; the fastest group (7 held terms) and a slower one; B=32 and B=1.
  cases.push_back(layout_case("H1024-fastest", T, B, 128, 8, 0, false));
  cases.push_back(layout_case("H1024-group2", small ? 9 : 40, 3, 128, 8, 2, true));
  cases.push_back(layout_case("H1024-B1", small ? 5 : 17, 1, 128, 8, 0, false));
  // H=256, g=8: k=32.
  cases.push_back(layout_case("H256-fastest", small ? 8 : 40, B, 32, 8, 0, false));
  cases.push_back(layout_case("H256-slowest", small ? 260 : 300, 2, 32, 8, 7, false));
  // The shared-memory boundary: k=240 (float32: W_ii's chunks beyond the registers and the state
  // fill what the block gets), at the H100 limit and with the limit exactly the shape's need.
  Case wide = layout_case("k240", small ? 4 : 9, small ? 1 : 2, 240, 2, 0, false);
  cases.push_back(wide);
  if (auto s = cwrnn::cuda::choose_shape(240, wide.B, 2, acc_bytes, kH100Sms, kH100SharedLimit)) {
    wide.name = "k240-exact-limit";
    wide.shared_limit = s->shared_bytes;
    cases.push_back(wide);
  }
  // Large batch: several rows per block (k=32: 8 rows of 64 lanes, a 512-thread block).
  Case many = layout_case("H512-B300", small ? 4 : 6, small ? 6 : 300, 64, 8, 1, false);
  if (small) many.sms = 2;
  cases.push_back(many);
  Case rows = layout_case("H256-8-rows", small ? 5 : 12, 16, 32, 8, 0, false);
  rows.sms = 2;
  cases.push_back(rows);
  // 13 periods: 12 held terms; with one lane per unit (32-thread blocks), past the register slots
  // (forward) and sums past them (backward).
  for (int group : {0, 1}) {
    Case many_periods = layout_case("13-periods", small ? 9 : 40, 5, 32, 13, group, group == 1);
    many_periods.max_threads = 32;
    cases.push_back(many_periods);
  }
  // W_ii read from global memory, and several passes (with the sums added at once).
  Case global = layout_case("k150-global", small ? 4 : 12, 2, 150, 3, 0, true);
  global.shared_limit = 8 * 1024;
  cases.push_back(global);
  Case passes = layout_case("k100-passes", small ? 5 : 12, 2, 100, 4, 0, false);
  passes.max_threads = 64;
  cases.push_back(passes);
  return cases;
}

Case random_case(std::mt19937_64& rng, size_t acc_bytes) {
  auto uniform = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  Case c{};
  c.name = "random";
  const int64_t k_choices[] = {1, 2, 3, 7, 31, 32, 33, 63, 64, 65, 100, 129, 150, 200};
  c.k = uniform(0, 2) == 0 ? k_choices[uniform(0, 13)] : uniform(1, 48);
  c.begin = uniform(0, 1) ? 0 : uniform(1, 5);
  c.H = c.begin + c.k + (uniform(0, 1) ? 0 : uniform(1, 5));
  c.T = uniform(0, 4) == 0 ? uniform(0, 3) : uniform(4, 40);
  c.B = uniform(0, 3) == 0 ? uniform(1, 3) : uniform(4, 40);
  c.period = uniform(1, 7);
  c.first = uniform(0, c.period - 1);
  if (uniform(0, 9) == 0) c.first = c.T + uniform(0, 2);  // never ticks: h0 held throughout
  if (uniform(0, 19) == 0) c.first = (int64_t(1) << 40) + uniform(0, 2);  // a period far past T
  c.relu = uniform(0, 1) == 1;
  const int64_t held = uniform(0, 5) == 0 ? uniform(5, 12) : uniform(0, 3);
  for (int64_t j = 0; j < held; ++j) {
    Held h;
    h.period = c.period + uniform(0, 6);  // slower groups: never a shorter period
    h.first = uniform(0, 7) == 0 ? c.T + uniform(0, 2) : uniform(0, h.period - 1);
    if (uniform(0, 19) == 0) h.first = (int64_t(1) << 40) + uniform(0, 2);
    h.width = c.begin + c.k + uniform(0, 3);
    c.held.push_back(h);
  }
  const int sms_choices[] = {1, 2, 5, kH100Sms};
  c.sms = sms_choices[uniform(0, 3)];
  const int thread_choices[] = {512, 512, 512, 256, 128, 64};
  c.max_threads = thread_choices[uniform(0, 5)];
  // Shared memory: roomy, or between one row's state and all of W_ii (other placements of W_ii).
  const size_t row = 2 * static_cast<size_t>(c.k + 128) * acc_bytes, w = static_cast<size_t>(c.k * c.k) * acc_bytes;
  c.shared_limit = uniform(0, 1) == 0 ? kH100SharedLimit : row + static_cast<size_t>(uniform(0, static_cast<int64_t>(w)));
  return c;
}

template <typename scalar_t>
void run_dtype(const char* name, int cases, uint64_t seed, bool production_only, bool small) {
  std::mt19937_64 rng(seed);
  const int before = failures, forward_before = failures_by_kernel["forward"];
  int count = 0;
  for (const Case& c : production_cases(sizeof(acc_type<scalar_t>), small)) run_case<scalar_t>(c, rng, name, seed + count++);
  if (!production_only)
    for (int i = 0; i < cases; ++i) run_case<scalar_t>(random_case(rng, sizeof(acc_type<scalar_t>)), rng, name, seed + count++);
  const int forward = failures_by_kernel["forward"] - forward_before;
  std::printf("%-9s %d cases, %d mismatches (forward %d, backward %d)\n", name, count, failures - before,
              forward, failures - before - forward);
}

}  // namespace

int main(int argc, char** argv) {
  const int cases = argc > 1 ? std::atoi(argv[1]) : 40;
  const uint64_t seed = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1;
  const std::string mode = argc > 3 ? argv[3] : "";
  const bool production_only = mode == "production-only";
  const bool small = mode == "small";
  run_dtype<float>("float32", cases, seed, production_only, small);
#ifndef CWRNN_EMULATE_FLOAT32_ONLY  // a quicker build, for the sanitizer and mutation runs
  run_dtype<double>("float64", cases, seed + 1, production_only, small);
  run_dtype<c10::Half>("float16", cases / 2, seed + 2, production_only, small);
  run_dtype<c10::BFloat16>("bfloat16", cases / 2, seed + 3, production_only, small);
#endif
  for (const auto& [what, count] : covered) std::printf("covered: %s: %d\n", what.c_str(), count);
  std::printf(failures == 0 ? "OK\n" : "FAILED\n");
  return failures == 0 ? 0 : 1;
}
