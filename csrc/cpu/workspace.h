// Scratch memory for one CPU kernel call, kept per thread between calls.
//
// Freshly mapped memory costs a page fault per 4 KiB on first touch, and glibc's malloc maps every
// large block afresh: a call whose temporaries come from the allocator pays those faults again on
// every call, which in a plain process costs more than the arithmetic. A Workspace hands out
// tensors carved from one buffer owned by the calling thread and reused by its next call, so after
// the first call the temporaries touch no new page. Bounded: a buffer larger than
// cached_limit_bytes() (64 MiB unless CWRNN_WORKSPACE_CACHE_MB says otherwise; 0 disables the
// cache) is freed at the end of the call. Thread-safe: each thread has its own buffer, and a
// second Workspace opened on a thread while one is in use gets memory of its own.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
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

  static size_t cached_limit_bytes();

  struct Chunk {
    unsigned char* data;
    size_t size;
    size_t start;  // offset of data[0] in the running count of bytes handed out
  };

 private:
  unsigned char* reserve(size_t bytes);

  std::vector<Chunk>* chunks_;  // the thread's cached chunks, or own_ if those are in use
  std::vector<Chunk> own_;
  size_t used_ = 0;  // bytes handed out, counted across chunks in order
  size_t peak_ = 0;
};

}  // namespace cwrnn
