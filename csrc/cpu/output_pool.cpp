#include "output_pool.h"

#include <ATen/EmptyTensor.h>
#include <ATen/ops/empty.h>
#include <c10/core/Allocator.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <mutex>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "settings.h"

namespace cwrnn {
namespace {

constexpr size_t kHugePage = size_t(2) << 20;

struct Block {
  void* data;
  size_t bytes;  // a multiple of kHugePage
};

void* fresh_block(size_t bytes) {
  void* data = nullptr;
  TORCH_CHECK(posix_memalign(&data, kHugePage, bytes) == 0, "cwrnn_ext: out of memory allocating ",
              bytes, " bytes");
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (settings().huge_pages) madvise(data, bytes, MADV_HUGEPAGE);  // a hint: its failure is harmless
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
        ++hits_;
        return data;
      }
      ++misses_;
    }
    return fresh_block(bytes);
  }

  // Called from tensor deleters: must not throw (settings() has succeeded before any block exists).
  void give_back(const Block& block) {
    const size_t limit = settings().output_cache_bytes;
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
      peak_cached_ = std::max(peak_cached_, cached_);
    }
    for (const Block& b : dropped) std::free(b.data);
  }

  void free_all() {
    std::deque<Block> dropped;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      dropped.swap(free_);
      cached_ = 0;
    }
    for (const Block& b : dropped) std::free(b.data);
  }

  OutputPoolStats stats(int64_t live_bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    return {static_cast<int64_t>(cached_), static_cast<int64_t>(peak_cached_), live_bytes, hits_, misses_};
  }

 private:
  std::mutex mutex_;
  std::deque<Block> free_;
  size_t cached_ = 0;
  size_t peak_cached_ = 0;
  int64_t hits_ = 0;
  int64_t misses_ = 0;
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

OutputPoolStats output_pool_stats() { return pool().stats(live_bytes.load()); }

void empty_output_pool() { pool().free_all(); }

at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  TORCH_CHECK(options.device().is_cpu(), "cwrnn_ext internal error: empty_output is for CPU tensors");
  const Settings& config = settings();  // first, so that a bad setting is refused on every call
  int64_t numel = 1;
  for (const int64_t s : sizes) numel *= s;
  const size_t bytes = static_cast<size_t>(numel) * options.dtype().itemsize();
  if (bytes < kPooledBytes || config.output_cache_bytes == 0) return at::empty(sizes, options);
  static PoolAllocator allocator;
  return at::detail::empty_generic(sizes, &allocator, c10::DispatchKeySet(c10::DispatchKey::CPU),
                                   c10::typeMetaToScalarType(options.dtype()), std::nullopt);
}

}  // namespace cwrnn
