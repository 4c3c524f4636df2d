"""What the benchmark prints: one table per configuration and the CPU target verdicts."""
from __future__ import annotations

from typing import Iterable, List, Optional

from .configs import MODEL_NAMES, PASSES, TARGET_MINIMA, TARGET_THREADS, Config, Target
from .machine import fma_peak_per_s, plural
from .work import kernel_macs

COLUMNS = (  # (heading, width)
    ("model", 20), ("pass", 4), ("H", 5), ("params", 9), ("warm ms", 8), ("IQR", 7), ("cold ms", 8),
    ("xRNN", 6), ("cold", 6), ("xLSTM", 6), ("work", 5), ("real", 5), ("faults", 7), ("peak MiB", 8),
)
PASS_SHORT = {"forward": "fwd", "forward_backward": "f+b"}


def fmt(value, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def row_text(cells: Iterable[str]) -> str:
    return " ".join(cell.ljust(width) if heading in ("model", "pass") else cell.rjust(width)
                    for (heading, width), cell in zip(COLUMNS, cells))


def load_text(record: dict) -> str:
    if record.get("other_cores") is None:  # no /proc/stat
        return f"load average {record['load_1min']:.1f}"
    return (f"other processes used {record['other_cores']:.1f} cores meanwhile"
            + (" (BUSY: timings unreliable)" if record.get("load_busy") else ""))


def config_table(config: Config, records: List[dict]) -> str:
    """One row per model and pass: warm and cold times, ratios, faults, memory."""
    by_key = {(r["model"], r["pass"]): r for r in records}
    theory = next((r["work_ratio"] for r in records if r["work_ratio"] is not None), None)
    lines = [f"{config.label}  periods {config.periods[0]}..{config.periods[-1]}"
             + (f"  theoretical work ratio {theory:.2f}x" if theory else "")
             + (f"  [{load_text(records[0])}]" if records else ""),
             row_text(h for h, _ in COLUMNS)]
    notes = []
    for name in MODEL_NAMES:
        first = True  # the model's first row carries its name, size and parameter count
        for pass_name in PASSES:
            r = by_key.get((name, pass_name))
            if r is None:
                continue
            status = r["status"].split(":")[0]  # "skipped" / "failed"
            if r["status"] != "ok" and f"  {r['model_label']}: {r['status']}" not in notes:
                notes.append(f"  {r['model_label']}: {r['status']}")
            lines.append(row_text([
                r["model_label"] if first else "", PASS_SHORT[pass_name],
                str(r["model_hidden_size"]) if first else "", f"{r['parameters']:,}" if first else "",
                fmt(r["median_ms"], ".2f", status), fmt(r["iqr_ms"], ".2f"), fmt(r["cold_ms"], ".2f"),
                fmt(r["speedup_vs_rnn"], ".2f"), fmt(r["speedup_vs_rnn_cold"], ".2f"),
                fmt(r["speedup_vs_lstm"], ".2f"), fmt(r["work_ratio"], ".2f"), fmt(r["realised"], ".0%"),
                fmt(r["faults_per_call"], ".0f"), fmt(r["peak_memory_mib"], ".1f")]))
            first = False
    return "\n".join(lines + notes)


LEGEND = (
    "warm ms: median time per call in a fresh process after its first two calls; IQR: its "
    "interquartile range;\ncold ms: the first call in a fresh process (median over rounds).\n"
    "xRNN / xLSTM: the row's model's speed-up over nn.RNN / nn.LSTM of the same hidden size, same pass "
    "(warm medians);\ncold: the same over nn.RNN for first calls.\n"
    "work: the theoretical work ratio, SRN multiply-adds / CW-RNN multiply-adds over this sequence "
    "(exact, t0 = 0);\nreal: the fraction of it realised = xRNN / work.\n"
    "faults: minor page faults per warm call (first touches of freshly mapped memory; load-independent).\n"
    "peak MiB: memory held at once during one forward+backward call, on top of what was live before it.")


def evaluate_targets(targets: Iterable[Target], records: List[dict], capability: str, threads: int,
                     mhz: Optional[float]) -> List[dict]:
    """Kernel vs nn.RNN speed-up for each target (None where not measured yet),
    its minimum for the kernel's CPU capability, the load meanwhile, and the share of the FMA peak
    the kernel's multiply-adds reach (an estimate: the clock is read from /proc/cpuinfo)."""
    results, peak = [], fma_peak_per_s(threads, capability, mhz)
    for target in targets:
        config = target.config
        record = next((r for r in records if r["model"] == "cwrnn" and r["pass"] == target.pass_name
                       and config.matches(r) and r["status"] == "ok"), {})
        speedup = record.get("speedup_vs_rnn")
        minimum = TARGET_MINIMA.get(capability, {}).get(target.key)
        macs_per_s = None
        if record.get("median_ms"):
            macs = kernel_macs(config.periods, config.module_sizes, config.input_size, config.steps, config.batch)
            passes = 3 if target.pass_name == "forward_backward" else 1  # backward: two products per forward one
            macs_per_s = macs * config.directions * passes / (record["median_ms"] / 1e3)
        results.append({"key": target.key, "config": config.label, "pass": target.pass_name,
                        "cpu_capability": capability, "speedup_vs_rnn": speedup,
                        "speedup_vs_rnn_cold": record.get("speedup_vs_rnn_cold"),
                        "work_ratio": record.get("work_ratio"), "minimum": minimum,
                        "passed": None if speedup is None or minimum is None else speedup >= minimum,
                        "kernel_gfma_per_s": None if macs_per_s is None else macs_per_s / 1e9,
                        "fma_peak_share": None if macs_per_s is None or not peak else macs_per_s / peak,
                        "other_cores": record.get("other_cores"), "load_1min": record.get("load_1min"),
                        "load_busy": record.get("load_busy")})
    return results


def verdict(result: dict) -> str:
    if result["speedup_vs_rnn"] is None:
        return "NOT RUN"
    return "REPORT ONLY" if result["passed"] is None else ("PASS" if result["passed"] else "MISS")


def target_line(result: dict) -> str:
    """One target: speed-up, cold speed-up, work ratio, FMA peak share, minimum, verdict, load."""
    speedup = fmt(result["speedup_vs_rnn"], "6.2f", "     -")
    cold, work = fmt(result["speedup_vs_rnn_cold"], ".2f"), fmt(result["work_ratio"], ".2f")
    share = fmt(result["fma_peak_share"], ".1%")
    minimum = "no target" if result["minimum"] is None else f"target >= {result['minimum']:g}x"
    load = ""
    if result["load_busy"]:
        load = "  BUSY" + (f" (other processes {result['other_cores']:.1f} cores)"
                           if result["other_cores"] is not None else "")
    return (f"({result['key']}) {result['config']:<34} {PASS_SHORT[result['pass']]} {speedup}x (cold {cold}x, "
            f"work {work}x, FMA peak {share})  {minimum}  {verdict(result)}{load}")


def verdicts_in_one_line(results: List[dict]) -> str:
    """e.g. '(a) 19.0x PASS, (b) 12.8x PASS, (c) not measured, ...'."""
    return ", ".join(f"({r['key']}) not measured" if r["speedup_vs_rnn"] is None
                     else f"({r['key']}) {r['speedup_vs_rnn']:.1f}x {verdict(r)}" for r in results)


def targets_text(results: List[dict], threads: int, mode: str, busy: Optional[str]) -> str:
    bar = "=" * 110
    capability = results[0]["cpu_capability"] if results else "?"
    title = (f"CPU targets ({capability}): CW-RNN kernel vs nn.RNN (same hidden size), float32, exponential "
             f"periods, {plural(threads, 'thread')}, warm medians (cold first calls beside)")
    lines = [bar, title]
    if capability not in TARGET_MINIMA:
        lines.append(f"  note: no targets are set for CPU capability {capability}: speed-ups reported only")
    if threads != TARGET_THREADS:
        lines.append(f"  note: the targets are defined at {TARGET_THREADS} threads; this run used {threads}")
    if mode == "smoke":
        lines.append("  note: --smoke runs tiny sizes, so these verdicts mean nothing")
    if busy:
        lines.append(f"  note: busy machine: {busy}: verdicts marked BUSY are unreliable")
    lines += ["  " + target_line(result) for result in results]
    lines.append("  FMA peak: the kernel's multiply-adds per second (module-major count, benchmarks/work.py) over "
                 "cores used x clock ('cpu MHz' of /proc/cpuinfo: an estimate) x 2 FMA units x float32 lanes "
                 "(16 AVX512, 8 AVX2, 4 DEFAULT)")
    lines.append(bar)
    return "\n".join(lines)
