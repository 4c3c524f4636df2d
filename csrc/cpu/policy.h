// Every tuned constant of the CPU paths, with how it was chosen. Each was measured on one or
// two 2-core x86-64 VMs: a guess that held there, not a law; the tests check the properties that
// depend on them (which path runs, how many threads), never their values.
#pragma once

#include <cstdint>

namespace cwrnn::policy {

// Multiply-adds per parallel region below which a second thread costs more than it saves: waking
// the pool and joining it take microseconds on an idle machine, and on a loaded one the join waits
// for a descheduled thread. One threshold for every CPU call; each op counts its work per parallel
// region it opens: the forward and the step one region (all their multiply-adds), the backward
// about two per period group (recurrence, GEMMs), so the forward's count over the number of groups.
// Measured (idle 2-core AMD EPYC, 2 threads against 1): the forward broke even at 0.13M
// multiply-adds, the step at 0.66M, forward+backward between 4M and 34M; loaded, a B=4 T=20
// H=64 forward took 19 ms on two threads against 0.7 ms on one.
constexpr int64_t kMinParallelMacs = int64_t{1} << 19;

// A sequence forward runs time-major (forward_path.h) when steps * hidden * batch^0.6 is at most
// kTimeMajorMaxCost. Time-major costs about one step's work per step and almost nothing per call;
// module-major has a fixed cost per call and group that a long sequence amortises, but reads each
// weight row once per group and call instead of once per step. Measured on a 2-core Xeon VM
// (float32, 8 exponential groups, forward, 1 and 2 threads, I = 16 and 64), the longest sequence
// at which time-major still won was T * H about constant for a batch size, falling about as
// B^0.6 (B=1: T=128 at H=256; B=32: T=4-8 at H=512); near the limit the two are within 10-20%.
constexpr double kTimeMajorMaxCost = 32768;
constexpr double kTimeMajorBatchExponent = 0.6;

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
