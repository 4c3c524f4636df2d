// Fewer intra-op threads for a call that cannot use them.
//
// A parallel region costs a fork and a join of every thread, and when another process holds a
// core the join waits for a thread the OS has descheduled (a B=1 forward opened ~24, mostly in
// small GEMMs, and stalled from ~7 ms to ~100 ms on a busy 2-core machine). The recurrences split
// the batch over threads, at least kMinRowsPerThread rows each; a call whose batch cannot be split
// that many ways gains nothing from more threads elsewhere either, its GEMMs being as thin.
#pragma once

#include <cstdint>

namespace cwrnn {

// Rows per thread below which spreading the batch over threads costs more than it saves.
constexpr int64_t kMinRowsPerThread = 2;

// For its lifetime, the calling thread's intra-op thread count is at most enough to give every
// thread kMinRowsPerThread batch rows, or `at_least` if that is more (OpenMP's per-thread setting,
// which at::parallel_for reads, and MKL's per-thread setting where torch's MKL exposes it); then
// restored. Other threads are unaffected.
class ThreadsForBatch {
 public:
  explicit ThreadsForBatch(int64_t batch, int64_t at_least = 1);
  ~ThreadsForBatch();
  ThreadsForBatch(const ThreadsForBatch&) = delete;
  ThreadsForBatch& operator=(const ThreadsForBatch&) = delete;

 private:
  int previous_ = 0;      // 0: nothing changed
  int previous_mkl_ = -1;  // -1: MKL's setting not changed
};

}  // namespace cwrnn
