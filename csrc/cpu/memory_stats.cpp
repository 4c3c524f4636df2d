#include "memory_stats.h"

#include "output_pool.h"
#include "settings.h"
#include "workspace.h"

namespace cwrnn {

std::vector<MemoryStat> memory_stats() {
  const Settings& config = settings();
  const OutputPoolStats pool = output_pool_stats();
  const WorkspaceStats ws = workspace_stats();
  return {
      {"pool.cached_bytes", pool.cached_bytes},
      {"pool.peak_cached_bytes", pool.peak_cached_bytes},
      {"pool.limit_bytes", static_cast<int64_t>(config.output_cache_bytes)},
      {"pool.live_bytes", pool.live_bytes},
      {"pool.hits", pool.hits},
      {"pool.misses", pool.misses},
      {"workspace.cached_bytes", ws.cached_bytes},
      {"workspace.peak_cached_bytes", ws.peak_cached_bytes},
      {"workspace.limit_bytes", static_cast<int64_t>(config.workspace_cache_bytes)},
      {"workspace.active_bytes", ws.active_bytes},
      {"workspace.hits", ws.hits},
      {"workspace.misses", ws.misses},
  };
}

void empty_cache() {
  empty_output_pool();
  empty_workspace_cache();
}

}  // namespace cwrnn
