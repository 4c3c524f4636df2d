#include "workspace.h"

#include <ATen/ops/from_blob.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <atomic>
#include <iterator>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>

#include "settings.h"

namespace cwrnn {

namespace {

constexpr size_t kAlignment = 64;  // a cache line; also what the GEMMs like

size_t round_up(size_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

struct IdleBlock {
  unsigned char* data;
  size_t size;
  std::thread::id last_user;
};

// The idle blocks of all threads, oldest first, and their total size (at most the limit).
class IdleBlocks {
 public:
  // An idle block of at least min_size bytes, or {nullptr}: the newest one that `user` itself
  // gave back (its memory is likely still in that core's caches), else the smallest that fits
  // (the largest when any size will do).
  IdleBlock take(size_t min_size, std::thread::id user) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto chosen = blocks_.end();
    for (auto it = blocks_.rbegin(); it != blocks_.rend(); ++it) {
      if (it->size >= min_size && it->last_user == user) {
        chosen = std::prev(it.base());
        break;
      }
    }
    if (chosen == blocks_.end()) {
      for (auto it = blocks_.begin(); it != blocks_.end(); ++it) {
        if (it->size < min_size) continue;
        const bool better = chosen == blocks_.end() ||
                            (min_size == 0 ? it->size > chosen->size : it->size < chosen->size);
        if (better) chosen = it;
      }
    }
    if (chosen == blocks_.end()) return {nullptr, 0, {}};
    const IdleBlock block = *chosen;
    blocks_.erase(chosen);
    cached_ -= block.size;
    return block;
  }

  // Keeps `block` if it fits in `limit`, freeing the oldest idle blocks to make room; else frees it.
  void give_back(const IdleBlock& block, size_t limit) {
    if (block.size > limit) {
      std::free(block.data);
      return;
    }
    std::deque<IdleBlock> dropped;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      while (cached_ + block.size > limit) {
        dropped.push_back(blocks_.front());
        cached_ -= blocks_.front().size;
        blocks_.pop_front();
      }
      blocks_.push_back(block);
      cached_ += block.size;
      peak_cached_ = std::max(peak_cached_, cached_);
    }
    for (const IdleBlock& b : dropped) std::free(b.data);
  }

  void free_all() {
    std::deque<IdleBlock> dropped;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      dropped.swap(blocks_);
      cached_ = 0;
    }
    for (const IdleBlock& b : dropped) std::free(b.data);
  }

  std::pair<size_t, size_t> cached_and_peak() {
    std::lock_guard<std::mutex> lock(mutex_);
    return {cached_, peak_cached_};
  }

 private:
  std::mutex mutex_;
  std::deque<IdleBlock> blocks_;
  size_t cached_ = 0;
  size_t peak_cached_ = 0;
};

// Never destroyed: a thread may end a call during static destruction.
IdleBlocks& idle_blocks() {
  static IdleBlocks* instance = new IdleBlocks();
  return *instance;
}

std::atomic<int64_t> active_bytes{0};
std::atomic<int64_t> hits{0};
std::atomic<int64_t> misses{0};

// The bytes the calling thread's last Workspace needed: what its next one should start with.
thread_local size_t last_peak = 0;

}  // namespace

Workspace::Workspace() {
  settings();  // a bad setting is refused before any memory is taken
  const IdleBlock block = idle_blocks().take(last_peak, std::this_thread::get_id());
  if (block.data != nullptr) {
    chunks_.push_back({block.data, block.size, 0});
    active_bytes += static_cast<int64_t>(block.size);
  }
}

Workspace::~Workspace() {
  size_t held = 0;
  for (const auto& c : chunks_) held += c.size;
  active_bytes -= static_cast<int64_t>(held);
  ++(allocated_ ? misses : hits);
  last_peak = peak_;
  if (chunks_.size() == 1) {
    idle_blocks().give_back({chunks_[0].data, chunks_[0].size, std::this_thread::get_id()},
                            settings().workspace_cache_bytes);
  } else {  // none, or several: next time, one block of this call's peak
    for (const auto& c : chunks_) std::free(c.data);
  }
}

unsigned char* Workspace::reserve(size_t bytes) {
  bytes = round_up(std::max<size_t>(bytes, 1));
  for (const auto& c : chunks_) {
    if (used_ >= c.start + c.size) continue;
    const size_t offset = std::max(used_, c.start);
    if (offset + bytes <= c.start + c.size) {
      used_ = offset + bytes;
      peak_ = std::max(peak_, used_);
      return c.data + (offset - c.start);
    }
  }
  const size_t start = chunks_.empty() ? 0 : chunks_.back().start + chunks_.back().size;
  const size_t size = round_up(std::max(bytes, chunks_.empty() ? last_peak : 0));
  auto* data = static_cast<unsigned char*>(std::aligned_alloc(kAlignment, size));
  TORCH_CHECK(data != nullptr, "cwrnn_ext: could not allocate ", size, " bytes of workspace");
  chunks_.push_back({data, size, start});
  allocated_ = true;
  active_bytes += static_cast<int64_t>(size);
  used_ = start + bytes;
  peak_ = std::max(peak_, used_);
  return data;
}

at::Tensor Workspace::take(at::IntArrayRef sizes, at::ScalarType dtype) {
  size_t numel = 1;
  for (const auto s : sizes) numel *= static_cast<size_t>(s);
  void* data = reserve(numel * c10::elementSize(dtype));
  return at::from_blob(data, sizes, at::TensorOptions().dtype(dtype));
}

WorkspaceStats workspace_stats() {
  const auto [cached, peak] = idle_blocks().cached_and_peak();
  return {static_cast<int64_t>(cached), static_cast<int64_t>(peak), active_bytes.load(), hits.load(),
          misses.load()};
}

void empty_workspace_cache() { idle_blocks().free_all(); }

}  // namespace cwrnn
