// What the CPU kernels keep between calls, for cwrnn_ext.memory_stats() and empty_cache():
// the output pool (output_pool.h) and the workspaces (workspace.h).
#pragma once

#include <cstdint>
#include <vector>

namespace cwrnn {

struct MemoryStat {
  const char* name;  // "pool.cached_bytes", ...: docs/contract.md lists them
  int64_t value;
};

// Reads the settings (the limits are among the stats), so a bad setting raises c10::Error here.
std::vector<MemoryStat> memory_stats();

// Frees the pool's unused blocks and every idle workspace block; memory of live results and of
// calls running now on other threads is untouched.
void empty_cache();

}  // namespace cwrnn
