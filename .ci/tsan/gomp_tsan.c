// Makes OpenMP's fork and join visible to ThreadSanitizer. libgomp is not instrumented, so TSan
// does not see that the threads of a parallel region start after the code before the region and
// end before the code after it, and reports the region's reads of data written before it (and
// the caller's reads of what the region wrote) as races. Preloaded after libtsan, this
// GOMP_parallel (the call GCC emits for `#pragma omp parallel`, so for at::parallel_for too)
// wraps the real one: a release before the fork that each thread acquires as its share starts,
// and a release as each share ends that the caller acquires after the join.
//
// Build: gcc -shared -fPIC -O1 gomp_tsan.c -o gomp_tsan.so -ldl (not instrumented itself; the
// __tsan_* calls resolve to the preloaded libtsan).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

void __tsan_acquire(void *address);
void __tsan_release(void *address);

typedef void (*gomp_parallel_fn)(void (*)(void *), void *, unsigned, unsigned);

struct region {
  void (*fn)(void *);
  void *data;
};

static void run_share(void *argument) {
  struct region *region = argument;
  __tsan_acquire(region);
  region->fn(region->data);
  __tsan_release(region);
}

// libgomp is usually loaded after this library (by torch or the program), often not into the
// global scope (Python loads extensions RTLD_LOCAL), so RTLD_NEXT may miss it: then by name.
static gomp_parallel_fn real_gomp_parallel(void) {
  static gomp_parallel_fn real;
  gomp_parallel_fn found = __atomic_load_n(&real, __ATOMIC_ACQUIRE);
  if (found) return found;
  found = (gomp_parallel_fn)dlsym(RTLD_NEXT, "GOMP_parallel");
  if (!found) {
    void *libgomp = dlopen("libgomp.so.1", RTLD_NOW | RTLD_NOLOAD);
    if (!libgomp) libgomp = dlopen("libgomp.so.1", RTLD_NOW);
    if (libgomp) found = (gomp_parallel_fn)dlsym(libgomp, "GOMP_parallel");
  }
  if (!found || found == (gomp_parallel_fn)real_gomp_parallel) {
    fprintf(stderr, "gomp_tsan: cannot find libgomp's GOMP_parallel\n");
    abort();
  }
  __atomic_store_n(&real, found, __ATOMIC_RELEASE);
  return found;
}

void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags) {
  struct region region = {fn, data};
  __tsan_release(&region);
  real_gomp_parallel()(run_share, &region, num_threads, flags);
  __tsan_acquire(&region);
}
