// The clock schedule shared by every kernel: period groups and the steps at which they tick.
//
// Adjacent modules with equal periods tick together and feed each other in both directions, so
// the kernels merge them into one "period group" with one full diagonal block. With periods sorted
// fastest first, group g reads exactly the hidden columns [g.begin, H): its own block plus every
// slower group. That suffix structure is what lets the kernels skip disallowed blocks entirely.
#pragma once

#include <c10/util/ArrayRef.h>
#include <c10/util/Exception.h>
#include <c10/util/string_view.h>

#include <cstdint>
#include <string>
#include <vector>

namespace cwrnn {

// The nonlinearity f of the active modules, as the ops' `nonlinearity` argument names it.
enum class Activation { kTanh, kRelu };

inline Activation parse_activation(c10::string_view nonlinearity) {
  if (nonlinearity == "tanh") return Activation::kTanh;
  if (nonlinearity == "relu") return Activation::kRelu;
  TORCH_CHECK(false, "nonlinearity must be 'tanh' or 'relu', got '", std::string(nonlinearity), "'");
}

struct PeriodGroup {
  int64_t period;
  int64_t begin;  // first hidden unit (row of W_hh / column of h)
  int64_t end;    // one past the last
  int64_t size() const { return end - begin; }
};

// Checks the layout (again: the Python side checked it too) and merges equal-period modules.
inline std::vector<PeriodGroup> make_period_groups(c10::IntArrayRef periods,
                                                   c10::IntArrayRef module_sizes,
                                                   int64_t hidden_size) {
  TORCH_CHECK(!periods.empty(), "periods must name at least one module");
  TORCH_CHECK(periods.size() == module_sizes.size(), "module_sizes has ", module_sizes.size(),
              " entries but periods has ", periods.size());
  std::vector<PeriodGroup> groups;
  int64_t unit = 0;
  for (size_t m = 0; m < periods.size(); ++m) {
    TORCH_CHECK(periods[m] > 0, "periods must be positive, got ", periods[m]);
    TORCH_CHECK(m == 0 || periods[m - 1] <= periods[m], "periods must be sorted non-decreasing");
    TORCH_CHECK(module_sizes[m] > 0, "module_sizes must be positive, got ", module_sizes[m]);
    if (!groups.empty() && groups.back().period == periods[m]) {
      groups.back().end += module_sizes[m];
    } else {
      groups.push_back({periods[m], unit, unit + module_sizes[m]});
    }
    unit += module_sizes[m];
  }
  TORCH_CHECK(unit == hidden_size, "module_sizes sum to ", unit, ", expected hidden_size=", hidden_size);
  return groups;
}

// The clocks of a sequence of `steps` steps from t0 are t0 .. t0 + steps - 1: all must fit an int64.
inline void check_clocks_fit(int64_t t0, int64_t steps, const char* name = "t0") {
  TORCH_CHECK(t0 >= 0, name, " must be >= 0, got ", t0);
  TORCH_CHECK(steps <= 0 || t0 <= INT64_MAX - (steps - 1), name, " = ", t0, " with ", steps,
              " steps puts the last step's clock past 2^63 - 1, the largest clock");
}

// t mod period, with a mask instead of a division for power-of-two periods (the paper's).
inline int64_t residue(int64_t t, int64_t period) {
  return (period & (period - 1)) == 0 ? (t & (period - 1)) : t % period;
}

// The first step s >= 0 at which a module of `period` is active when the clock starts at t0.
inline int64_t first_tick(int64_t t0, int64_t period) { return (period - t0 % period) % period; }

// Whether a module of `period` is active at clock t0 + s (t0, s >= 0), given first =
// first_tick(t0, period). Residues are compared, never added: t0 + s, or t0 % period + s % period
// (for periods above 2^62), may pass 2^63 - 1.
inline bool ticks_at(int64_t s, int64_t first, int64_t period) { return residue(s, period) == first; }

// How many of `steps` steps the group ticks on, starting at `first`, every `period` steps.
inline int64_t tick_count(int64_t steps, int64_t first, int64_t period) {
  return first >= steps ? 0 : (steps - 1 - first) / period + 1;
}

// Which value of a slower group (first tick `first`, every `period`) a tick at `step` reads: the one
// it held at step - 1. 0 is its initial state, n + 1 its state after its tick n.
inline int64_t held_value_index(int64_t step, int64_t first, int64_t period) {
  return step - 1 < first ? 0 : (step - 1 - first) / period + 1;
}

}  // namespace cwrnn
