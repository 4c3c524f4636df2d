// Proves that ThreadSanitizer with the GOMP_parallel wrapper (gomp_tsan.c) reports races and
// only races, on a program built as the extension's TSan build is (-fsanitize=thread -fopenmp):
//   planted_race ordered   the caller writes before a parallel region, its two threads read that
//                          and each writes a slot of its own, the caller reads the slots after
//                          the region: ordered by fork and join alone, so no report with the
//                          wrapper (and reports without it: TSan cannot see libgomp's order)
//   planted_race race      both threads of a region write one int, over and over, with nothing
//                          ordering them:
//                          it must be reported
#include <omp.h>

#include <atomic>
#include <cstdio>
#include <cstring>

static int before_region;
static int slots[2];
static int shared_counter;

// Both threads wait here until the other has arrived. Relaxed atomics give TSan no order between
// the threads, so neither thread's share can appear to end before the other's begins.
static void meet(std::atomic<int>& arrived) {
  arrived.fetch_add(1, std::memory_order_relaxed);
  while (arrived.load(std::memory_order_relaxed) < 2) {
  }
}

static int ordered() {
  before_region = 41;
  std::atomic<int> arrived{0};
#pragma omp parallel num_threads(2)
  {
    meet(arrived);
    slots[omp_get_thread_num()] = before_region + 1;
  }
  return slots[0] + slots[1] == 84 ? 0 : 1;
}

static int race() {
  std::atomic<int> arrived{0};
#pragma omp parallel num_threads(2)
  {
    meet(arrived);
    // The planted race, many times over: TSan reports a pair of unordered accesses when it sees
    // both, and a single access per thread was missed in some runs.
    for (int i = 0; i < 100000; ++i) shared_counter += 1;
  }
  return 0;
}

int main(int argc, char** argv) {
  omp_set_dynamic(0);
  if (argc == 2 && std::strcmp(argv[1], "ordered") == 0) return ordered();
  if (argc == 2 && std::strcmp(argv[1], "race") == 0) return race();
  std::fprintf(stderr, "usage: planted_race ordered|race\n");
  return 2;
}
