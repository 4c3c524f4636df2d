"""What the benchmark prints: one table per configuration and the CPU target verdicts."""
from __future__ import annotations

from typing import Iterable, List, Optional

from .configs import TARGET_THREADS, Config, Target, with_dtype
from .models import MODEL_NAMES

COLUMNS = (  # (heading, width)
    ("model", 20), ("H", 5), ("params", 9),
    ("fwd ms", 9), ("xRNN", 6), ("xLSTM", 6),
    ("f+b ms", 9), ("xRNN", 6), ("xLSTM", 6),
    ("peak MiB", 9), ("work", 6), ("real fwd", 8), ("real f+b", 8),
)


def fmt(value, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def row_text(cells: Iterable[str]) -> str:
    parts = []
    for (heading, width), cell in zip(COLUMNS, cells):
        parts.append(cell.ljust(width) if heading == "model" else cell.rjust(width))
    return " ".join(parts)


def pass_cells(record: dict) -> List[str]:
    """Median ms (or why there is none) and the two speed-ups."""
    status = record["status"].split(":")[0]  # "skipped" / "failed"
    return [fmt(record["median_ms"], ".2f", status), fmt(record["speedup_vs_rnn"], ".2f"),
            fmt(record["speedup_vs_lstm"], ".2f")]


def config_table(config: Config, records: List[dict]) -> str:
    """One row per model: both passes side by side, ratios, memory, theoretical work ratio."""
    by_key = {(r["model"], r["pass"]): r for r in records}
    theory = next((r["work_ratio"] for r in records if r["work_ratio"] is not None), None)
    lines = [f"{config.label}  periods {config.periods[0]}..{config.periods[-1]}"
             + (f"  theoretical work ratio {theory:.2f}x" if theory else ""),
             row_text(h for h, _ in COLUMNS)]
    notes = []
    for name in MODEL_NAMES:
        fwd, fb = by_key.get((name, "forward")), by_key.get((name, "forward_backward"))
        if fwd is None:
            continue
        for record in (fwd, fb):
            if record["status"] != "ok" and f"  {record['model_label']}: {record['status']}" not in notes:
                notes.append(f"  {record['model_label']}: {record['status']}")
        lines.append(row_text([fwd["model_label"], str(fwd["model_hidden_size"]), f"{fwd['parameters']:,}"]
                              + pass_cells(fwd) + pass_cells(fb)
                              + [fmt(fb["peak_memory_mib"], ".1f"), fmt(fwd["work_ratio"], ".2f"),
                                 fmt(fwd["realised"], ".0%"), fmt(fb["realised"], ".0%")]))
    return "\n".join(lines + notes)


LEGEND = ("xRNN / xLSTM: speed-up of the row's model over nn.RNN / nn.LSTM with the same hidden "
          "size, same pass.\nwork: SRN multiply-adds / CW-RNN multiply-adds over this sequence "
          "(exact, t0 = 0).\nreal: fraction of that work ratio realised = xRNN / work.")


def evaluate_targets(targets: Iterable[Target], records: List[dict]) -> List[dict]:
    """Kernel vs nn.RNN speed-up for each target (float32 CPU records)."""
    results = []
    for target in targets:
        config = with_dtype(target.config, "float32")
        speedup = _find_speedup(records, config, target.pass_name)
        results.append({"key": target.key, "config": config.label, "pass": target.pass_name,
                        "speedup_vs_rnn": speedup, "minimum": target.minimum,
                        "passed": None if speedup is None else speedup >= target.minimum})
    return results


def _find_speedup(records: List[dict], config: Config, pass_name: str) -> Optional[float]:
    for r in records:
        if r["model"] == "cwrnn" and r["pass"] == pass_name and config.matches(r):
            return r["speedup_vs_rnn"]
    return None


def targets_text(results: List[dict], threads: int, mode: str) -> str:
    bar = "=" * 96
    title = (f"CPU targets: CW-RNN kernel vs nn.RNN (same hidden size), float32, 8 exponential modules, "
             f"{threads} threads")
    lines = [bar, title]
    if threads != TARGET_THREADS:
        lines.append(f"  note: the targets are defined at {TARGET_THREADS} threads; this run used {threads}")
    if mode == "smoke":
        lines.append("  note: --smoke runs tiny sizes, so these verdicts mean nothing")
    for result in results:
        verdict = {True: "PASS", False: "MISS", None: "NOT RUN"}[result["passed"]]
        speedup = fmt(result["speedup_vs_rnn"], "6.2f", "     -")
        lines.append(f"  ({result['key']}) {result['config']:<42} {result['pass']:<17} "
                     f"{speedup}x   target >= {result['minimum']:g}x   {verdict}")
    lines.append(bar)
    return "\n".join(lines)
