// One step of the CPU step kernel over a set of batch rows: the active groups' rows computed
// (step_kernel.h), the held ones copied, the work split over threads above the work threshold.
// Shared by the step op (step_cpu.cpp) and the time-major sequence forward (time_major.cpp).
#pragma once

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <c10/util/SmallVector.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "../schedule.h"
#include "policy.h"
#include "step_kernel.h"
#include "threads.h"

namespace cwrnn {

// A parallel step's unit of work: hidden rows [r0, r1) of one group.
struct StepTask {
  int32_t group;
  int64_t r0, r1;
};

// Rows of the batch (their indices) at which each group is active in this step.
class ActiveRows {
 public:
  ActiveRows(size_t groups, int64_t batch) : batch_(batch), count_(groups, 0), rows_(groups * batch) {}
  void add(size_t g, int64_t b) { rows_[g * batch_ + count_[g]++] = b; }
  const int64_t* rows(size_t g) const { return rows_.data() + g * batch_; }
  int64_t count(size_t g) const { return count_[g]; }

 private:
  int64_t batch_;
  c10::SmallVector<int64_t, 16> count_;
  c10::SmallVector<int64_t, 256> rows_;
};

// Computes the active groups' rows of p.out and copies the held ones from p.h, for the batch rows
// listed in `rows` (num_rows of them); row b of group g is active iff active(g, b).
template <typename T, typename IsActive>
void step_active_rows(const StepRows<T>& p, const std::vector<PeriodGroup>& groups, const int64_t* rows,
              int64_t num_rows, IsActive active) {
  ActiveRows on(groups.size(), num_rows);
  int64_t macs = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    const PeriodGroup& group = groups[g];
    for (int64_t i = 0; i < num_rows; ++i) {
      const int64_t b = rows[i];
      if (active(g, b)) {
        on.add(g, b);
      } else {
        std::memcpy(p.out[b] + group.begin, p.h[b] + group.begin, group.size() * sizeof(T));
      }
    }
    macs += on.count(g) * group.size() * (p.input_size + p.hidden - group.begin);
  }
  // The tasks split hidden rows, not the batch: every available thread can take some.
  const int available = at::in_parallel_region() ? 1 : at::get_num_threads();
  const int threads = threads_for_work(macs, num_rows, available, available);
  record_call_threads(threads);
  if (threads <= 1) {
    for (size_t g = 0; g < groups.size(); ++g)
      if (on.count(g) > 0)
        step_group_rows(p, groups[g].begin, groups[g].begin, groups[g].end, on.rows(g), on.count(g));
    return;
  }
  // Tasks of about equal cost (a few per thread, so that uneven groups still balance).
  const int64_t target = std::max<int64_t>(macs / (4 * threads), 1);
  c10::SmallVector<StepTask, 64> tasks;
  for (size_t g = 0; g < groups.size(); ++g) {
    if (on.count(g) == 0) continue;
    const PeriodGroup& group = groups[g];
    const int64_t row_cost = on.count(g) * (p.input_size + p.hidden - group.begin);
    int64_t block = std::max<int64_t>(target / row_cost, 1);
    block = (block + policy::kTaskRowQuantum - 1) / policy::kTaskRowQuantum * policy::kTaskRowQuantum;
    for (int64_t r = group.begin; r < group.end; r += block)
      tasks.push_back({static_cast<int32_t>(g), r, std::min(r + block, group.end)});
  }
  at::parallel_for(0, static_cast<int64_t>(tasks.size()), 1, [&](int64_t first, int64_t last) {
    for (int64_t i = first; i < last; ++i) {
      const StepTask& task = tasks[i];
      step_group_rows(p, groups[task.group].begin, task.r0, task.r1, on.rows(task.group),
                      on.count(task.group));
    }
  });
}

// Rows of a 2-D tensor, each contiguous (a copy only if its last dimension is strided).
inline at::Tensor rows_contiguous(const at::Tensor& t) { return t.stride(-1) == 1 || t.size(-1) <= 1 ? t : t.contiguous(); }

}  // namespace cwrnn
