// The CUDA built-ins that csrc/cuda/recurrence_kernels.cuh uses, for running that source on the
// CPU: threadIdx/blockIdx/blockDim, __syncthreads, __shfl_xor_sync, __ldg, float4/double2, the
// block's dynamic shared memory; and launch(), which runs a grid.
//
// Each CUDA thread is a fiber. A block's fibers run on one OS thread and switch only where a GPU
// thread could wait (__syncthreads, the two rendezvous of a shuffle), to a fiber picked at random
// (seeded). Between two such points a fiber runs alone, so code that relies on a barrier that is
// not there reads what its peers have not written yet (shared memory starts as NaN): a missing
// barrier fails deterministically, not by luck of timing. A barrier that not every thread of the
// block (or of the warp, for a shuffle) reaches is reported as a deadlock. The blocks of a launch
// run concurrently, one OS thread each.
//
// Built with -fsanitize=thread, the fibers are ThreadSanitizer fibers that switch without
// synchronising, and a barrier is a release by every arriving thread and an acquire by every
// leaving one: ThreadSanitizer then reports any two accesses to the same memory, one a write, by
// CUDA threads that no barrier orders (a data race on the GPU), whatever the schedule.
#pragma once

#include <math.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
// The emulator's own bookkeeping, shared by all fibers of a block: not instrumented (ordering it
// would order the fibers, and hide the races between them that the sanitizer is there to find).
#define EMU_UNSANITIZED __attribute__((no_sanitize("thread"), noinline))
#else
#define EMU_UNSANITIZED
#endif

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __shared__
#define __align__(n) __attribute__((aligned(n)))

struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(16) double2 {
  double x, y;
};
struct Dim3 {
  unsigned x = 0, y = 0, z = 0;
};

namespace emu {

constexpr int kWarp = 32;
constexpr size_t kSharedGuard = 4096;  // bytes after a block's shared memory that must stay untouched

// Aborts the emulation (a deadlock or a misuse the GPU would not forgive); the test sees the
// message and the exit code.
[[noreturn]] inline void fatal(const std::string& what) {
  std::printf("EMULATION ERROR %s\n", what.c_str());
  std::fflush(stdout);
  std::_Exit(3);
}

class Block {
 public:
  explicit Block(int threads, size_t shared_bytes)
      : threads_(threads),
        shared_(new unsigned char[shared_bytes + kSharedGuard + 16]),
        shared_bytes_(shared_bytes),
        slots_(threads) {
    if (threads % kWarp != 0) fatal("a block of " + std::to_string(threads) + " threads: not whole warps");
    // NaN as float and double: a read of what nothing wrote poisons the result.
    std::memset(shared(), 0xFF, shared_bytes + kSharedGuard);
  }
  virtual ~Block() = default;
  virtual void sync_threads() = 0;
  virtual void sync_warp(int warp) = 0;
  unsigned char* shared() { return reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(shared_.get()) + 15) / 16 * 16); }
  bool guard_intact() {
    for (size_t i = 0; i < kSharedGuard; ++i)
      if (shared()[shared_bytes_ + i] != 0xFF) return false;
    return true;
  }
  int threads() const { return threads_; }
  uint64_t& slot(int thread) { return slots_[thread]; }

 protected:
  int threads_;
  std::unique_ptr<unsigned char[]> shared_;
  size_t shared_bytes_;
  std::vector<uint64_t> slots_;  // shuffle exchange, one word per thread
};

struct ThreadState {
  Dim3 thread, block, dim;
  Block* block_ptr = nullptr;
};

// The CUDA thread (fiber) running on this OS thread now.
inline thread_local ThreadState* current = nullptr;

}  // namespace emu

#define threadIdx (::emu::current->thread)
#define blockIdx (::emu::current->block)
#define blockDim (::emu::current->dim)
#define CWRNN_DYNAMIC_SHARED_MEMORY(name) unsigned char* const name = ::emu::current->block_ptr->shared()

inline void __syncthreads() { emu::current->block_ptr->sync_threads(); }

template <typename T>
inline T __ldg(const T* p) {
  return *p;
}

// Every lane of a full warp exchanges v with lane ^ lane_mask: both rendezvous of the exchange
// are waits, as on the GPU (a lane that does not arrive is a deadlock).
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask) {
  static_assert(sizeof(T) <= sizeof(uint64_t) && std::is_trivially_copyable_v<T>);
  if (mask != 0xffffffffu) emu::fatal("__shfl_xor_sync with a partial mask (the kernels use full warps)");
  emu::Block* block = emu::current->block_ptr;
  const int thread = static_cast<int>(emu::current->thread.x), warp = thread / emu::kWarp;
  const int partner = warp * emu::kWarp + ((thread % emu::kWarp) ^ lane_mask);
  std::memcpy(&block->slot(thread), &v, sizeof(T));
  block->sync_warp(warp);
  T result;
  std::memcpy(&result, &block->slot(partner), sizeof(T));
  block->sync_warp(warp);
  return result;
}

namespace emu {

// What ThreadSanitizer needs to know (nothing without it).
#if defined(__SANITIZE_THREAD__)
struct Sanitizer {
  static void* create_fiber() { return __tsan_create_fiber(0); }
  static void destroy_fiber(void* fiber) { __tsan_destroy_fiber(fiber); }
  static void* current_fiber() { return __tsan_get_current_fiber(); }
  static void switch_to(void* fiber) { __tsan_switch_to_fiber(fiber, __tsan_switch_to_fiber_no_sync); }
  static void release(void* address) { __tsan_release(address); }
  static void acquire(void* address) { __tsan_acquire(address); }
};
#else
struct Sanitizer {
  static void* create_fiber() { return nullptr; }
  static void destroy_fiber(void*) {}
  static void* current_fiber() { return nullptr; }
  static void switch_to(void*) {}
  static void release(void*) {}
  static void acquire(void*) {}
};
#endif

#if defined(__x86_64__)
// A context switch: the callee-saved registers go onto the old stack, whose pointer is stored in
// *from; then the new stack's are restored. A new fiber's stack is set up to "return" into
// fiber_start, which calls function(argument) from r12 and rbx.
extern "C" void emu_switch(void** from, void* to);
extern "C" void emu_fiber_start();
asm(R"(
.text
.globl emu_switch
.type emu_switch,@function
emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size emu_switch, .-emu_switch
.globl emu_fiber_start
.type emu_fiber_start,@function
emu_fiber_start:
  movq %rbx, %rdi
  callq *%r12
  ud2
.size emu_fiber_start, .-emu_fiber_start
.section .note.GNU-stack,"",@progbits
.text
)");
struct Context {
  void* sp = nullptr;
  EMU_UNSANITIZED void make(char* stack, size_t size, void (*function)(void*), void* argument) {
    uintptr_t top = (reinterpret_cast<uintptr_t>(stack) + size) & ~uintptr_t(15);
    // 6 registers, the "return" address, padding: rsp is 16-aligned after the return, so that the
    // call in emu_fiber_start enters function with rsp = 8 (mod 16), as the ABI wants.
    void** frame = reinterpret_cast<void**>(top) - 9;
    frame[0] = nullptr;                                             // r15
    frame[1] = nullptr;                                             // r14
    frame[2] = nullptr;                                             // r13
    frame[3] = reinterpret_cast<void*>(function);                   // r12
    frame[4] = argument;                                            // rbx
    frame[5] = nullptr;                                             // rbp
    frame[6] = reinterpret_cast<void*>(&emu_fiber_start);           // "return" address
    frame[7] = frame[8] = nullptr;
    sp = frame;
  }
  EMU_UNSANITIZED void switch_to(Context& next) { emu_switch(&sp, next.sp); }
};
#else
struct Context {
  ucontext_t context;
  EMU_UNSANITIZED void make(char* stack, size_t size, void (*function)(void*), void* argument) {
    getcontext(&context);
    context.uc_stack.ss_sp = stack;
    context.uc_stack.ss_size = size;
    context.uc_link = nullptr;
    makecontext(&context, reinterpret_cast<void (*)()>(function), 1, argument);  // 64-bit glibc passes it whole
  }
  EMU_UNSANITIZED void switch_to(Context& next) { swapcontext(&context, &next.context); }
};
#endif

class FiberBlock final : public Block {
 public:
  static constexpr size_t kStack = 64 * 1024;
  static constexpr uint64_t kCanary = 0x5ca1ab1e0ddba11ull;

  FiberBlock(int threads, size_t shared_bytes, uint64_t seed)
      : Block(threads, shared_bytes), fibers_(threads), ready_(threads), block_waiters_(threads),
        warp_waiters_(threads), warp_waiter_counts_(threads / kWarp, 0), warp_arrived_(threads / kWarp, 0),
        random_(seed | 1),
        stacks_(new char[kStack * threads]) {}

  ~FiberBlock() override {
    for (Fiber& f : fibers_) Sanitizer::destroy_fiber(f.sanitizer);
  }

  // Runs body() as every thread of block `block`, until all have returned.
  template <typename Body>
  EMU_UNSANITIZED void run(Dim3 block, const Body& body) {
    body_ = &body;
    invoke_ = [](const void* b) { (*static_cast<const Body*>(b))(); };
    for (int t = 0; t < threads_; ++t) {
      Fiber& f = fibers_[t];
      f.state.thread = {static_cast<unsigned>(t), 0, 0};
      f.state.block = block;
      f.state.dim = {static_cast<unsigned>(threads_), 1, 1};
      f.state.block_ptr = this;
      f.block = this;
      f.sanitizer = Sanitizer::create_fiber();
      char* stack = stacks_.get() + kStack * t;
      std::memcpy(stack, &kCanary, sizeof(kCanary));
      f.context.make(stack, kStack, &FiberBlock::entry, &f);
      ready_[ready_count_++] = t;
    }
    main_sanitizer_ = Sanitizer::current_fiber();
    Sanitizer::release(&started_);  // what the launching thread wrote, for every fiber
    ThreadState* const saved = current;
    current_ = pick();
    current = &fibers_[current_].state;
    Sanitizer::switch_to(fibers_[current_].sanitizer);
    main_.switch_to(fibers_[current_].context);
    current = saved;
    Sanitizer::acquire(&finished_);  // what every fiber wrote, for the launching thread
    for (int t = 0; t < threads_; ++t) {
      uint64_t canary;
      std::memcpy(&canary, stacks_.get() + kStack * t, sizeof(canary));
      if (canary != kCanary) fatal("fiber stack overflow");
    }
  }

  EMU_UNSANITIZED void sync_threads() override { wait(all_arrived_, block_waiters_.data(), block_waiter_count_, threads_, &all_arrived_); }
  EMU_UNSANITIZED void sync_warp(int warp) override {
    wait(warp_arrived_[warp], warp_waiters_.data() + warp * kWarp, warp_waiter_counts_[warp], kWarp,
         &warp_arrived_[warp]);
  }

 private:
  struct Fiber {
    Context context;
    ThreadState state;
    FiberBlock* block = nullptr;
    void* sanitizer = nullptr;
  };

  EMU_UNSANITIZED static void entry(void* argument) {
    Fiber* f = static_cast<Fiber*>(argument);
    FiberBlock* self = f->block;
    Sanitizer::acquire(&self->started_);
    self->invoke_(self->body_);
    Sanitizer::release(&self->finished_);
    ++self->finished_;
    self->leave();
  }

  // This fiber at a barrier (`sync` names it to ThreadSanitizer): it releases what it wrote; the
  // last to arrive makes everyone waiting there runnable; each acquires on leaving.
  EMU_UNSANITIZED void wait(int& arrived, int* waiters, int& waiting, int count, void* sync) {
    Sanitizer::release(sync);
    waiters[waiting++] = current_;
    if (++arrived == count) {
      arrived = 0;
      for (int i = 0; i < waiting; ++i) ready_[ready_count_++] = waiters[i];
      waiting = 0;
    }
    leave();
    Sanitizer::acquire(sync);
  }

  // Switches to a random runnable fiber (maybe this one again), or back to the launching thread
  // when all are done.
  EMU_UNSANITIZED void leave() {
    const int from = current_;
    if (ready_count_ == 0) {
      if (finished_ == threads_) {
        Sanitizer::switch_to(main_sanitizer_);
        fibers_[from].context.switch_to(main_);
        return;
      }
      fatal("deadlock: " + std::to_string(threads_ - finished_) +
            " threads wait at a __syncthreads or shuffle that the others never reach (or already passed)");
    }
    current_ = pick();
    if (current_ == from) return;
    current = &fibers_[current_].state;
    Sanitizer::switch_to(fibers_[current_].sanitizer);
    fibers_[from].context.switch_to(fibers_[current_].context);
  }

  EMU_UNSANITIZED int pick() {  // xorshift
    random_ ^= random_ << 13;
    random_ ^= random_ >> 7;
    random_ ^= random_ << 17;
    const int i = static_cast<int>(random_ % static_cast<uint64_t>(ready_count_));
    const int t = ready_[i];
    ready_[i] = ready_[--ready_count_];
    return t;
  }

  std::vector<Fiber> fibers_;
  std::vector<int> ready_;  // runnable fibers other than the current one: the first ready_count_
  int ready_count_ = 0;
  int all_arrived_ = 0;
  std::vector<int> block_waiters_;
  int block_waiter_count_ = 0;
  std::vector<int> warp_waiters_;  // [warp][lane]
  std::vector<int> warp_waiter_counts_;
  std::vector<int> warp_arrived_;
  uint64_t random_;
  std::unique_ptr<char[]> stacks_;
  Context main_;
  void* main_sanitizer_ = nullptr;
  int current_ = 0;
  int finished_ = 0;
  int started_ = 0;  // only its address: what ThreadSanitizer synchronises on
  const void* body_ = nullptr;
  void (*invoke_)(const void*) = nullptr;
};

// Blocks running at once (one OS thread each); fewer under ThreadSanitizer, whose state per fiber
// is large.
#if defined(__SANITIZE_THREAD__)
constexpr int kMaxLiveBlocks = 2;
#else
constexpr int kMaxLiveBlocks = 32;
#endif

// Runs kernel(args...) over `blocks` blocks of `threads` threads with `shared_bytes` of dynamic
// shared memory each. Returns false if a block wrote past its shared memory.
template <typename Kernel, typename... Args>
bool launch(int64_t blocks, int threads, size_t shared_bytes, uint64_t seed, Kernel kernel,
            const Args&... args) {
  std::mutex mutex;
  bool guards_intact = true;
  auto body = [&] { kernel(args...); };
  for (int64_t b0 = 0; b0 < blocks; b0 += kMaxLiveBlocks) {
    std::vector<std::thread> workers;
    for (int64_t b = b0; b < std::min<int64_t>(blocks, b0 + kMaxLiveBlocks); ++b) {
      workers.emplace_back([&, b] {
        FiberBlock block(threads, shared_bytes, seed * 1000003 + static_cast<uint64_t>(b));
        block.run({static_cast<unsigned>(b), 0, 0}, body);
        const bool intact = block.guard_intact();
        std::lock_guard<std::mutex> lock(mutex);
        guards_intact = guards_intact && intact;
      });
    }
    for (auto& w : workers) w.join();
  }
  return guards_intact;
}

}  // namespace emu
