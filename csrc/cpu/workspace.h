// Scratch memory for one CPU kernel call, kept between calls.
//
// Freshly mapped memory costs a page fault per 4 KiB on first touch, and glibc's malloc maps every
// large block afresh: a call whose temporaries come from the allocator pays those faults again on
// every call, which in a plain process costs more than the arithmetic. A Workspace hands out
// tensors carved from blocks that it owns for its lifetime; when it ends, its block goes to a
// process-wide list of idle blocks, from which the next Workspace (on any thread) takes one.
//
// The rule that bounds the memory kept: the idle blocks together never exceed
// settings().workspace_cache_bytes (CWRNN_WORKSPACE_CACHE_MB, 64 MiB by default, the total over
// all threads; 0 keeps none). An ending Workspace that used one block puts it on the list, first
// freeing the oldest idle blocks to make room, or frees it if it alone is above the limit; one
// that needed several blocks frees them all, and its thread's next Workspace starts with one
// block of that call's peak size. Blocks held by running calls are not counted against the limit
// (workspace_stats().active_bytes reports them). A block is on the list or owned by exactly one
// Workspace, never both, so empty_workspace_cache() may free the whole list from any thread.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace cwrnn {

class Workspace {
 public:
  Workspace();
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  // An uninitialised contiguous CPU tensor valid until the Workspace ends, or until release() of
  // a mark taken before it. Never returned to the caller of the op.
  at::Tensor take(at::IntArrayRef sizes, at::ScalarType dtype);
  size_t mark() const { return used_; }
  void release(size_t mark) { used_ = mark; }

  struct Chunk {
    unsigned char* data;
    size_t size;
    size_t start;  // offset of data[0] in the running count of bytes handed out
  };

 private:
  unsigned char* reserve(size_t bytes);

  std::vector<Chunk> chunks_;
  size_t used_ = 0;  // bytes handed out, counted across chunks in order
  size_t peak_ = 0;
  bool allocated_ = false;  // whether this Workspace allocated a block (a miss) or only reused one
};

struct WorkspaceStats {
  int64_t cached_bytes;       // idle blocks kept now, all threads together
  int64_t peak_cached_bytes;  // the most cached_bytes has been since the process started
  int64_t active_bytes;       // blocks held by Workspaces of calls running now
  int64_t hits;               // Workspaces that allocated nothing (an idle block sufficed)
  int64_t misses;             // Workspaces that allocated at least one block
};
WorkspaceStats workspace_stats();

// Frees every idle block, whichever thread used it last; blocks of running calls are untouched.
void empty_workspace_cache();

}  // namespace cwrnn
