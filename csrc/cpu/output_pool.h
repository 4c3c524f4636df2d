// Large results (output, grad_input) in memory reused across calls instead of mapped afresh.
//
// glibc maps every block above its mmap threshold (at most 32 MiB) anew and unmaps it on free, so
// a plain process pays for a large output on every call: one page fault per 4 KiB and the kernel
// zeroing each page, a cost of the order of the forward's own arithmetic (docs/design.md, Fresh
// memory costs page faults).
// empty_output hands out blocks that, when their tensor dies, go back to a process-wide pool
// instead of to the OS, and the next call of the same size takes them with every page mapped.
//
// Bounded: the pool keeps at most settings().output_cache_bytes of unused blocks
// (CWRNN_OUTPUT_CACHE_MB, 64 MiB by default; 0 turns the pool off), dropping the oldest first.
// Only blocks of at least kPooledBytes go through it: smaller ones come from malloc's heap, which
// already reuses them. Fresh blocks are 2 MiB aligned with transparent huge pages requested
// (CWRNN_HUGE_PAGES=0: not), one fault per 2 MiB on their first touch. Thread-safe: tensors may
// die on any thread (autograd's, a DataLoader's).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>

namespace cwrnn {

constexpr size_t kPooledBytes = size_t(1) << 20;

// at::empty(sizes, options) for a CPU tensor, its storage from the pool when it is large.
at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options);

struct OutputPoolStats {
  int64_t cached_bytes;       // unused blocks kept now
  int64_t peak_cached_bytes;  // the most cached_bytes has been since the process started
  int64_t live_bytes;         // pooled blocks held by live tensors
  int64_t hits;               // results given a kept block
  int64_t misses;             // results given a fresh block
};
OutputPoolStats output_pool_stats();

// Frees every unused block the pool keeps (blocks of live tensors are untouched).
void empty_output_pool();

}  // namespace cwrnn
