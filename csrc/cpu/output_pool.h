// Large results (output, grad_input) in memory reused across calls instead of mapped afresh.
//
// glibc maps every block above its mmap threshold (at most 32 MiB) anew and unmaps it on free, so
// a plain process pays for a large output on every call: one page fault per 4 KiB and the kernel
// zeroing each page, which for target (a)'s 32 MiB output took about a third of the forward.
// empty_output hands out blocks that, when their tensor dies, go back to a process-wide pool
// instead of to the OS, and the next call of the same size takes them with every page mapped.
//
// Bounded: the pool keeps at most output_cache_limit_bytes() of unused blocks (64 MiB unless
// CWRNN_OUTPUT_CACHE_MB says otherwise; 0 turns the pool off), dropping the oldest first. Only
// blocks of at least kPooledBytes go through it: smaller ones come from malloc's heap, which
// already reuses them. Fresh blocks are 2 MiB aligned with transparent huge pages requested
// (CWRNN_HUGE_PAGES=0: not), one fault per 2 MiB on their first touch. Thread-safe: tensors may
// die on any thread (autograd's, a DataLoader's).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>

namespace cwrnn {

constexpr size_t kPooledBytes = size_t(1) << 20;

// at::empty(sizes, options) for a CPU tensor, its storage from the pool when it is large.
at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options);

size_t output_cache_limit_bytes();

}  // namespace cwrnn
