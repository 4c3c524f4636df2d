#include "output_pool.h"

#include <ATen/EmptyTensor.h>
#include <ATen/ops/empty.h>
#include <c10/core/Allocator.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <string>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace cwrnn {
namespace {

constexpr size_t kHugePage = size_t(2) << 20;

size_t env_size(const char* name, size_t fallback) {
  const char* value = std::getenv(name);
  return value != nullptr ? static_cast<size_t>(std::strtoull(value, nullptr, 10)) : fallback;
}

bool huge_pages_wanted() {
  static const bool on = std::getenv("CWRNN_HUGE_PAGES") == nullptr ||
                         std::string(std::getenv("CWRNN_HUGE_PAGES")) != "0";
  return on;
}

struct Block {
  void* data;
  size_t bytes;  // a multiple of kHugePage
};

void* fresh_block(size_t bytes) {
  void* data = nullptr;
  TORCH_CHECK(posix_memalign(&data, kHugePage, bytes) == 0, "cwrnn_ext: out of memory allocating ",
              bytes, " bytes");
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (huge_pages_wanted()) madvise(data, bytes, MADV_HUGEPAGE);  // a hint: its failure is harmless
#endif
  return data;
}

// The unused blocks, oldest first, and their total size.
class Pool {
 public:
  void* take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto it = free_.begin(); it != free_.end(); ++it) {
        if (it->bytes != bytes) continue;
        void* data = it->data;
        cached_ -= bytes;
        free_.erase(it);
        return data;
      }
    }
    return fresh_block(bytes);
  }

  size_t cached_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return cached_;
  }

  void give_back(const Block& block) {
    const size_t limit = output_cache_limit_bytes();
    if (block.bytes > limit) {
      std::free(block.data);
      return;
    }
    std::deque<Block> dropped;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      while (cached_ + block.bytes > limit) {
        dropped.push_back(free_.front());
        cached_ -= free_.front().bytes;
        free_.pop_front();
      }
      free_.push_back(block);
      cached_ += block.bytes;
    }
    for (const Block& b : dropped) std::free(b.data);
  }

 private:
  std::mutex mutex_;
  std::deque<Block> free_;
  size_t cached_ = 0;
};

// Never destroyed: tensors may die during static destruction, after a static Pool would be gone.
Pool& pool() {
  static Pool* instance = new Pool();
  return *instance;
}

// Bytes of pooled blocks held by live tensors, for the profiler's memory events: torch.profiler
// (profile_memory=True) then sees these results as it sees any other allocation.
std::atomic<int64_t> live_bytes{0};

void report(void* data, int64_t bytes) {
  const int64_t live = live_bytes.fetch_add(bytes) + bytes;
  c10::reportMemoryUsageToProfiler(data, bytes, static_cast<size_t>(live), static_cast<size_t>(live),
                                   c10::Device(c10::kCPU));
}

void release(void* context) {
  auto* block = static_cast<Block*>(context);
  report(block->data, -static_cast<int64_t>(block->bytes));
  pool().give_back(*block);
  delete block;
}

class PoolAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t bytes) override {
    if (bytes == 0) return {nullptr, nullptr, &release_nothing, c10::Device(c10::kCPU)};
    const size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
    auto* block = new Block{pool().take(rounded), rounded};
    report(block->data, static_cast<int64_t>(rounded));
    return {block->data, block, &release, c10::Device(c10::kCPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return nullptr; }  // the context owns the block
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

 private:
  static void release_nothing(void*) {}
};

}  // namespace

size_t output_cache_limit_bytes() {
  static const size_t limit = env_size("CWRNN_OUTPUT_CACHE_MB", 64) << 20;
  return limit;
}

at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  TORCH_CHECK(options.device().is_cpu(), "cwrnn_ext internal error: empty_output is for CPU tensors");
  int64_t numel = 1;
  for (const int64_t s : sizes) numel *= s;
  const size_t bytes = static_cast<size_t>(numel) * options.dtype().itemsize();
  if (bytes < kPooledBytes || output_cache_limit_bytes() == 0) return at::empty(sizes, options);
  static PoolAllocator allocator;
  return at::detail::empty_generic(sizes, &allocator, c10::DispatchKeySet(c10::DispatchKey::CPU),
                                   c10::typeMetaToScalarType(options.dtype()), std::nullopt);
}

// For tests only: the bytes of unused blocks the pool holds now.
TORCH_LIBRARY_FRAGMENT(cwrnn_ext, m) {
  m.def("_output_pool_cached_bytes() -> int",
        []() -> int64_t { return static_cast<int64_t>(pool().cached_bytes()); });
}

}  // namespace cwrnn
