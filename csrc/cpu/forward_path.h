// Which of the CPU's three ways to run a sequence forward a call takes, decided here and only here
// (the `forward` op asks; Python does not choose):
// - time-major: one step after another through the step kernel (time_major.h); almost no cost
//   per call, but every step reads each active group's weight rows again;
// - module-major: group after group over all their ticks (module_major_cpu.h), batch rows split over
//   threads; a fixed cost per call and group that a long sequence amortises;
// - pipelined: module-major on two threads as a pipeline over time, for a batch too small to
//   split (pipeline.h).
// The backward is module-major whichever path ran: the results are the same.
#pragma once

#include <c10/core/ScalarType.h>

#include <cstdint>
#include <optional>

namespace cwrnn {

enum class ForwardPath { kTimeMajor, kModuleMajor, kPipelined };

const char* forward_path_name(ForwardPath path);
std::optional<ForwardPath> forward_path_from_name(const char* name);

// The rule (constants in policy.h): time-major for a single step and for short sequences, where
// the dtype has a step kernel; else pipelined for a batch too small to split over threads, given a
// few pieces of steps and two groups to overlap; else module-major. The pipeline runs only if the
// call is given two threads (threads.h); otherwise the same call runs module-major, and says so.
ForwardPath forward_path_rule(int64_t steps, int64_t batch, int64_t hidden, size_t groups,
                              c10::ScalarType dtype);

// The rule, or the forced path's family where force_forward_path set one: what a call takes.
ForwardPath choose_forward_path(int64_t steps, int64_t batch, int64_t hidden, size_t groups,
                                c10::ScalarType dtype);

// For tests and benchmarks: every later call in the process takes `path`'s family (time-major, or
// module-major with its pipelined variant where the rule would pipeline) where its dtype allows;
// nullopt restores the rule. Returns the previous setting.
std::optional<ForwardPath> force_forward_path(std::optional<ForwardPath> path);

// The path the calling thread's last CPU forward took.
ForwardPath last_forward_path();
void record_forward_path(ForwardPath path);

}  // namespace cwrnn
