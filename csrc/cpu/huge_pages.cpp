#include "huge_pages.h"

#include <ATen/ops/empty.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace cwrnn {
namespace {

bool enabled() {
  static const bool on = [] {
    const char* flag = std::getenv("CWRNN_HUGE_PAGES");
    return flag == nullptr || std::string(flag) != "0";
  }();
  return on;
}

}  // namespace

at::Tensor empty_huge_paged(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor t = at::empty(sizes, options);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  const auto start = reinterpret_cast<uintptr_t>(t.data_ptr());
  const uintptr_t lo = (start + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t hi = (start + t.nbytes()) & ~(kHuge - 1);
  if (enabled() && hi >= lo + 2 * kHuge)
    madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE);  // a hint: its failure is harmless
#endif
  return t;
}

}  // namespace cwrnn
