// The CWRNN_* environment variables that change what the CPU kernels do at run time, parsed in one
// place, once per process. docs/contract.md ("Settings read from the environment") lists them.
//
// Parsed on first use (the first kernel call, memory_stats()), never at import: a bad value (not a
// whole number, negative, trailing characters, too large, a flag other than 0 or 1) raises a
// c10::Error, a RuntimeError in Python, that names the variable and the value. The parse is retried
// on each use until it succeeds, so every call raises the same error while the value is bad; once
// it has succeeded it never throws again (the pool's deleters rely on that).
#pragma once

#include <cstddef>

namespace cwrnn {

struct Settings {
  size_t output_cache_bytes;     // CWRNN_OUTPUT_CACHE_MB (64): unused pooled results kept; 0: no pool
  size_t workspace_cache_bytes;  // CWRNN_WORKSPACE_CACHE_MB (64): idle workspace kept, all threads together
  bool huge_pages;               // CWRNN_HUGE_PAGES (1): ask for transparent huge pages for pooled blocks
};

const Settings& settings();

}  // namespace cwrnn
