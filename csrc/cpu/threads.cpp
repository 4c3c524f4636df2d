#include "threads.h"

#include <ATen/Parallel.h>

#include <algorithm>

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

}  // namespace

ThreadsForBatch::ThreadsForBatch(int64_t batch, int64_t at_least) {
#if defined(_OPENMP)
  if (at::in_parallel_region()) return;
  const int current = at::get_num_threads();
  const int64_t useful = std::max<int64_t>({1, at_least, batch / kMinRowsPerThread});
  const int wanted = static_cast<int>(std::min<int64_t>(current, useful));
  if (wanted >= current) return;
  previous_ = current;
  omp_set_num_threads(wanted);
  if (const auto set_local = mkl_set_local_threads()) previous_mkl_ = set_local(wanted);
#endif
}

ThreadsForBatch::~ThreadsForBatch() {
#if defined(_OPENMP)
  if (previous_ == 0) return;
  omp_set_num_threads(previous_);
  if (previous_mkl_ >= 0) mkl_set_local_threads()(previous_mkl_);
#endif
}

}  // namespace cwrnn
