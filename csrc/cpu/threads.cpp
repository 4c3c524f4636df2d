#include "threads.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>

#if defined(_OPENMP)
#include <omp.h>
#endif
#if defined(__linux__)
#include <dlfcn.h>
#endif

namespace cwrnn {
namespace {

// mkl_set_num_threads_local from the MKL inside libtorch_cpu, if it has one (null otherwise): MKL
// keeps its own per-thread count, set by torch, which OpenMP's does not override. Its C entry point
// is MKL_Set_Num_Threads_Local (mkl_service.h maps the lower-case name to it; the lower-case symbol
// is the Fortran one, which takes a pointer).
using SetLocalThreads = int (*)(int);
SetLocalThreads mkl_set_local_threads() {
  static const SetLocalThreads fn = []() -> SetLocalThreads {
#if defined(__linux__)
    void* torch_cpu = dlopen("libtorch_cpu.so", RTLD_LAZY | RTLD_NOLOAD);
    return torch_cpu != nullptr
               ? reinterpret_cast<SetLocalThreads>(dlsym(torch_cpu, "MKL_Set_Num_Threads_Local"))
               : nullptr;
#else
    return nullptr;
#endif
  }();
  return fn;
}

thread_local int last_threads = 0;
std::atomic<int64_t> threshold{policy::kMinParallelMacs};

}  // namespace

int64_t min_parallel_macs() { return threshold.load(std::memory_order_relaxed); }
int64_t set_min_parallel_macs(int64_t macs) { return threshold.exchange(macs, std::memory_order_relaxed); }

int threads_for_work(int64_t macs, int64_t batch, int64_t at_least, int available) {
  if (macs < min_parallel_macs()) return 1;
  const int64_t useful = std::max<int64_t>({1, at_least, batch / policy::kMinRowsPerThread});
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(available, useful)));
}

int last_call_threads() { return last_threads; }
void record_call_threads(int threads) { last_threads = threads; }

ThreadsForWork::ThreadsForWork(int64_t macs, int64_t batch, int64_t at_least) {
  if (at::in_parallel_region()) {
    record_call_threads(1);
    return;
  }
  const int current = at::get_num_threads();
  const int wanted = threads_for_work(macs, batch, at_least, current);
  record_call_threads(wanted);
#if defined(_OPENMP)
  if (wanted >= current) return;
  previous_ = current;
  omp_set_num_threads(wanted);
  if (const auto set_local = mkl_set_local_threads()) previous_mkl_ = set_local(wanted);
#endif
}

ThreadsForWork::~ThreadsForWork() {
#if defined(_OPENMP)
  if (previous_ == 0) return;
  omp_set_num_threads(previous_);
  if (previous_mkl_ >= 0) mkl_set_local_threads()(previous_mkl_);
#endif
}

}  // namespace cwrnn
