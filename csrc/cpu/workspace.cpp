#include "workspace.h"

#include <ATen/ops/from_blob.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdlib>
#include <string>

namespace cwrnn {

namespace {

constexpr size_t kAlignment = 64;  // a cache line; also what the GEMMs like

size_t round_up(size_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

void free_chunks(std::vector<Workspace::Chunk>* chunks) {
  for (const auto& c : *chunks) std::free(c.data);
  chunks->clear();
}

// The chunks a thread keeps between calls, and the size the next call should start with.
struct ThreadCache {
  std::vector<Workspace::Chunk> chunks;
  size_t hint = 0;
  bool in_use = false;
  ~ThreadCache() { free_chunks(&chunks); }
};

thread_local ThreadCache cache;

}  // namespace

size_t Workspace::cached_limit_bytes() {
  static const size_t limit = [] {
    const char* mb = std::getenv("CWRNN_WORKSPACE_CACHE_MB");
    return (mb != nullptr ? static_cast<size_t>(std::strtoull(mb, nullptr, 10)) : size_t(64)) << 20;
  }();
  return limit;
}

Workspace::Workspace() {
  if (cache.in_use) {
    chunks_ = &own_;
  } else {
    cache.in_use = true;
    chunks_ = &cache.chunks;
  }
}

Workspace::~Workspace() {
  if (chunks_ == &own_) {
    free_chunks(&own_);
    return;
  }
  size_t total = 0;
  for (const auto& c : cache.chunks) total += c.size;
  if (total > cached_limit_bytes()) {
    free_chunks(&cache.chunks);
    cache.hint = 0;
  } else if (cache.chunks.size() > 1) {  // next time, one chunk of this call's peak
    free_chunks(&cache.chunks);
    cache.hint = peak_;
  }
  cache.in_use = false;
}

unsigned char* Workspace::reserve(size_t bytes) {
  bytes = round_up(std::max<size_t>(bytes, 1));
  for (const auto& c : *chunks_) {
    if (used_ >= c.start + c.size) continue;
    const size_t offset = std::max(used_, c.start);
    if (offset + bytes <= c.start + c.size) {
      used_ = offset + bytes;
      peak_ = std::max(peak_, used_);
      return c.data + (offset - c.start);
    }
  }
  const size_t start = chunks_->empty() ? 0 : chunks_->back().start + chunks_->back().size;
  const bool cached = chunks_ == &cache.chunks;
  const size_t size = round_up(std::max(bytes, cached ? cache.hint : 0));
  if (cached) cache.hint = 0;
  auto* data = static_cast<unsigned char*>(std::aligned_alloc(kAlignment, size));
  TORCH_CHECK(data != nullptr, "cwrnn_ext: could not allocate ", size, " bytes of workspace");
  chunks_->push_back({data, size, start});
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

}  // namespace cwrnn
