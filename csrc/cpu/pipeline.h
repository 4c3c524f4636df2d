// The CPU forward of a batch too small to split over threads (B = 1 above all) as a two-thread
// pipeline over time (docs/design.md, The CPU recurrence).
#pragma once

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "../generic/module_major.h"
#include "recurrence.h"
#include "module_major_cpu.h"
#include "threads.h"
#include "workspace.h"

namespace cwrnn {

// One chain of pieces that must run in order, one at a time, on whichever thread gets to it.
struct Chain {
  std::atomic<bool> running{false};
  std::atomic<int64_t> done{0};  // pieces finished
};

// Runs the chain's next piece if it is below `limit` and no other thread is running one of this
// chain; returns whether it ran one.
template <typename F>
bool try_run_next(Chain& chain, int64_t limit, const F& run_piece) {
  if (chain.done.load(std::memory_order_acquire) >= limit) return false;
  if (chain.running.exchange(true, std::memory_order_acquire)) return false;
  const int64_t piece = chain.done.load(std::memory_order_relaxed);
  const bool ran = piece < limit;
  if (ran) {
    run_piece(piece);
    chain.done.store(piece + 1, std::memory_order_release);
  }
  chain.running.store(false, std::memory_order_release);
  return ran;
}

// The forward of a batch that cannot be split (e.g. B = 1) on two threads, as two chains of pieces
// of kPipelineSteps steps: the slower groups, and the fastest group (which reads their held terms)
// with the held-row pass, whose piece c waits for the slower groups' piece c. At B = 1 with
// exponential periods the fastest group has as many ticks as all the others together. Each thread
// prefers one chain and takes a piece of the other when its own has none ready, so that a thread
// the OS has descheduled (another process on its core) delays nothing: the other thread runs
// both chains, as one thread would. params: slowest first.
template <typename scalar_t, typename acc_t>
void run_pipelined(Workspace& ws, const std::vector<ForwardRecurrence<scalar_t, acc_t>>& params,
                   const std::vector<GroupTicks>& groups, const HeldRows<scalar_t>& held_rows) {
  const int64_t T = held_rows.steps, B = held_rows.batch;
  const int64_t steps = policy::kPipelineSteps;
  const int64_t pieces = (T + steps - 1) / steps;
  const auto acc = c10::CppTypeToScalarType<acc_t>::value;
  std::vector<ForwardRecurrence<scalar_t, acc_t>> runs = params;
  std::vector<at::Tensor> carries;  // each group's state between pieces
  for (auto& p : runs) {
    carries.push_back(ws.take({B, p.size}, acc));
    p.carry = mutable_rows_of<acc_t>(carries.back());
  }
  const size_t fastest = runs.size() - 1;
  // Group i (slowest first) over the ticks of steps [steps * piece, steps * (piece + 1)).
  const auto run_group = [&](size_t i, int64_t piece) {
    const GroupTicks& g = groups[groups.size() - 1 - i];
    const auto ticks_before = [&](int64_t s) {
      return std::min(g.ticks, tick_count(std::min(s, T), g.first, g.group.period));
    };
    runs[i].starts = piece == 0;
    runs[i].tick_begin = ticks_before(piece * steps);
    runs[i].tick_end = ticks_before((piece + 1) * steps);
    run_forward_recurrence(runs[i], 0, B);
  };
  const auto slower_piece = [&](int64_t piece) {
    for (size_t i = 0; i < fastest; ++i) run_group(i, piece);
  };
  const auto fastest_piece = [&](int64_t piece) {
    run_group(fastest, piece);
    const int64_t s0 = piece * steps;
    fill_held_rows(held_rows, s0, std::min(T, s0 + steps), 0, B);
  };
  Chain slower, fastest_chain;
  at::parallel_for(0, 2, 1, [&](int64_t role0, int64_t role1) {
    for (int64_t role = role0; role < role1; ++role) {  // one thread: both roles, in turn
      for (int idle = 0; fastest_chain.done.load(std::memory_order_acquire) < pieces;) {
        const auto ready = [&] { return slower.done.load(std::memory_order_acquire); };
        const bool ran = role == 0
            ? try_run_next(slower, pieces, slower_piece) || try_run_next(fastest_chain, ready(), fastest_piece)
            : try_run_next(fastest_chain, ready(), fastest_piece) || try_run_next(slower, pieces, slower_piece);
        if (ran) {
          idle = 0;
        } else if (++idle < policy::kPipelineSpins) {  // spin briefly, then yield the core
#if defined(__x86_64__) || defined(__i386__)
          __builtin_ia32_pause();
#endif
        } else {
          std::this_thread::yield();
        }
      }
    }
  });
}

}  // namespace cwrnn
