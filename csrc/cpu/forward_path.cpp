#include "forward_path.h"

#include <ATen/core/Tensor.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "../kernel_dtypes.h"
#include "policy.h"

namespace cwrnn {
namespace {

// -1: the rule; else a ForwardPath.
std::atomic<int> forced{-1};
thread_local ForwardPath last = ForwardPath::kModuleMajor;

// A batch too small to split over threads, with a few pieces of steps and two groups to overlap.
bool pipelined(int64_t steps, int64_t batch, size_t groups) {
  return batch < 2 * policy::kMinRowsPerThread && groups >= 2 && steps >= 4 * policy::kPipelineSteps;
}

bool has_step_kernel(c10::ScalarType dtype) {
  for (const auto d : kernel_dtypes(KernelOp::kStep, c10::DeviceType::CPU))
    if (d == dtype) return true;
  return false;
}

}  // namespace

const char* forward_path_name(ForwardPath path) {
  switch (path) {
    case ForwardPath::kTimeMajor: return "time_major";
    case ForwardPath::kModuleMajor: return "module_major";
    case ForwardPath::kPipelined: return "pipelined";
  }
  return "?";
}

std::optional<ForwardPath> forward_path_from_name(const char* name) {
  for (const auto path : {ForwardPath::kTimeMajor, ForwardPath::kModuleMajor, ForwardPath::kPipelined})
    if (std::strcmp(name, forward_path_name(path)) == 0) return path;
  return std::nullopt;
}

ForwardPath forward_path_rule(int64_t steps, int64_t batch, int64_t hidden, size_t groups,
                              c10::ScalarType dtype) {
  const double cost = static_cast<double>(steps) * static_cast<double>(hidden) *
                      std::pow(static_cast<double>(std::max<int64_t>(batch, 1)), policy::kTimeMajorBatchExponent);
  if ((steps <= 1 || cost <= policy::kTimeMajorMaxCost) && has_step_kernel(dtype)) return ForwardPath::kTimeMajor;
  return pipelined(steps, batch, groups) ? ForwardPath::kPipelined : ForwardPath::kModuleMajor;
}

ForwardPath choose_forward_path(int64_t steps, int64_t batch, int64_t hidden, size_t groups,
                                c10::ScalarType dtype) {
  const int wanted = forced.load(std::memory_order_relaxed);
  if (wanted < 0) return forward_path_rule(steps, batch, hidden, groups, dtype);
  if (wanted == static_cast<int>(ForwardPath::kTimeMajor) && has_step_kernel(dtype)) return ForwardPath::kTimeMajor;
  return pipelined(steps, batch, groups) ? ForwardPath::kPipelined : ForwardPath::kModuleMajor;
}

std::optional<ForwardPath> force_forward_path(std::optional<ForwardPath> path) {
  const int previous = forced.exchange(path ? static_cast<int>(*path) : -1, std::memory_order_relaxed);
  return previous < 0 ? std::nullopt : std::optional<ForwardPath>(static_cast<ForwardPath>(previous));
}

ForwardPath last_forward_path() { return last; }
void record_forward_path(ForwardPath path) { last = path; }

}  // namespace cwrnn
