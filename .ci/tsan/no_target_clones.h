// Force-included (-include) into the ThreadSanitizer build of the CPU kernels: turns every
// __attribute__((target_clones(...))) into the harmless `unused`, so each kernel is compiled once
// for the baseline instruction set. target_clones dispatches through ifunc resolvers, which run
// before ThreadSanitizer's runtime is ready and crash python at import.
#pragma once
#define target_clones(...) unused
