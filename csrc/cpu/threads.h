// How many intra-op threads a CPU call uses: one below policy::kMinParallelMacs of work (so the
// call opens no parallel region, as ATen's parallel_for runs inline below its grain size), else
// enough to give each thread policy::kMinRowsPerThread batch rows (or `at_least`, e.g. 2 for the
// pipelined forward), never more than torch allows.
#pragma once

#include <cstdint>

#include "policy.h"

namespace cwrnn {

// The work threshold in force: policy::kMinParallelMacs unless a test has set another (0: every
// call may use threads, to exercise the threaded paths on small problems). Returns the previous.
int64_t min_parallel_macs();
int64_t set_min_parallel_macs(int64_t macs);

// The threads a call of `macs` multiply-adds over `batch` rows may use, of `available`.
int threads_for_work(int64_t macs, int64_t batch, int64_t at_least, int available);

// For its lifetime, the calling thread's intra-op thread count (OpenMP's per-thread setting,
// which at::parallel_for reads, and MKL's where torch's MKL exposes it) is threads_for_work's;
// then restored. Other threads are unaffected. Records the count for last_call_threads().
class ThreadsForWork {
 public:
  ThreadsForWork(int64_t macs, int64_t batch, int64_t at_least = 1);
  ~ThreadsForWork();
  ThreadsForWork(const ThreadsForWork&) = delete;
  ThreadsForWork& operator=(const ThreadsForWork&) = delete;

 private:
  int previous_ = 0;       // 0: nothing changed
  int previous_mkl_ = -1;  // -1: MKL's setting not changed
};

// The thread count that the calling thread's last CPU forward, backward or step was given (what
// tests read to check the policy without timing anything).
int last_call_threads();
void record_call_threads(int threads);

}  // namespace cwrnn
