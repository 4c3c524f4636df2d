// Fresh output buffers that fault in 2 MiB pages rather than 4 KiB ones.
//
// A large output is freshly mapped memory on every call (glibc maps each large block anew), and its
// first touch costs one page fault per 4 KiB: for a 32 MiB output, 8192 faults, more time than the
// kernel's arithmetic. Where transparent huge pages are available on request (the kernel's
// "madvise" mode, the usual default), asking for them before the first touch cuts that to one fault
// per 2 MiB. Only a hint: the memory and its ownership are the ordinary allocator's, and where THP
// is off (or CWRNN_HUGE_PAGES=0) nothing changes.
#pragma once

#include <ATen/core/Tensor.h>

namespace cwrnn {

// at::empty(sizes, options), with huge pages requested for its whole 2 MiB-aligned part when it
// spans at least two of them.
at::Tensor empty_huge_paged(at::IntArrayRef sizes, const at::TensorOptions& options);

}  // namespace cwrnn
