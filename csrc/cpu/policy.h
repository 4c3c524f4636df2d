// Every tuned constant of the CPU schedules, with how it was chosen. Each was measured on one or
// two machines (2-core x86-64 VMs, 2026-11/12): a guess that held there, not a law; the tests check
// the properties that depend on them (which path runs, how many threads), never their values.
#pragma once

#include <cstdint>

namespace cwrnn::policy {

// Multiply-adds in a call below which a second thread costs more than it saves: waking the pool
// and joining it take microseconds on an idle machine, and on a loaded one the join waits for a
// descheduled thread (a B=4 T=20 H=64 forward: 0.7 ms on one thread, 19 ms on two at load 15).
// Measured for one step (a step of this size takes about as long on one core as the fork and
// join), and applied to every CPU call alike: forward, backward (its GEMMs included) and step.
constexpr int64_t kMinParallelMacs = int64_t{1} << 17;

// Batch rows per thread below which splitting the batch costs more than it saves.
constexpr int64_t kMinRowsPerThread = 2;

// Steps per piece of the pipelined forward (pipeline.h): short enough that filling and draining
// the pipeline costs little, long enough that a piece (tens of microseconds at B=1) dwarfs a handoff.
constexpr int64_t kPipelineSteps = 64;

// Idle polls of the pipeline before a thread yields its core: a piece takes microseconds.
constexpr int kPipelineSpins = 1000;

// Steps per task of the separate held-row pass: enough rows that a task is worth a thread.
constexpr int64_t kMinStepsPerTask = 16;

// Hidden rows per task of a parallel step: a multiple of the step kernel's widest weight tile.
constexpr int64_t kTaskRowQuantum = 8;

}  // namespace cwrnn::policy
