"""The machine a result was measured on, for the metadata of every result file: CPU model and clock,
the CPU capability (instruction set) the kernels run with and how to limit it, versions, command;
and the FMA peak that a measured speed is compared with."""
from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import torch

import cwrnn_ext

from .load import available_cores

# --capability NAME: the environment every process of the run gets, so that torch's own kernels
# (ATEN_CPU_CAPABILITY), MKL and oneDNN all stop at the same instruction set.
CAPABILITY_ENV: Dict[str, Dict[str, str]] = {
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "MKL_ENABLE_INSTRUCTIONS": "AVX512",
               "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "default": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
                "ONEDNN_MAX_CPU_ISA": "SSE41"},
}
FP32_LANES = {"AVX512": 16, "AVX2": 8, "DEFAULT": 4}  # by torch.backends.cpu.get_cpu_capability()
FMA_UNITS = 2  # per core: what current x86 server cores have; the peak is an estimate


def capability_applied(name: str) -> bool:
    """Whether this process was started with --capability NAME's environment."""
    return all(os.environ.get(key) == value for key, value in CAPABILITY_ENV[name].items())


def requested_capability() -> Optional[str]:
    """The --capability name whose environment this process runs with, or None."""
    return next((name for name in CAPABILITY_ENV if capability_applied(name)), None)


def result_stem(mode: str, device: str, section: str = "") -> str:
    """The name of a result file without its suffix: section, mode, the capability if one was
    requested, device; e.g. quick_cpu, streaming_quick_avx2_cpu."""
    capability = requested_capability()
    return "_".join(part for part in (section, mode, capability, device) if part)


def cpu_capabilities() -> Dict[str, Optional[str]]:
    """The instruction set torch's CPU kernels use here and the one cwrnn_ext's own kernels use
    (None where this cwrnn_ext does not say), and which of them the CW-RNN kernel runs with."""
    torch_capability = torch.backends.cpu.get_cpu_capability()
    library = str(cwrnn_ext.cpu_capability()).upper() if hasattr(cwrnn_ext, "cpu_capability") else None
    return {"torch": torch_capability, "cwrnn_ext": library, "kernel": library or torch_capability}


def cpu_model() -> str:
    try:  # Linux names the CPU model here; platform.processor() is often empty
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_mhz() -> Optional[float]:
    """The highest 'cpu MHz' in /proc/cpuinfo: the clock the kernel sees the moment it is read (in
    a VM often the nominal one), so an estimate; None where Linux does not say."""
    try:
        values = [float(line.split(":", 1)[1]) for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("cpu MHz")]
    except (OSError, ValueError):
        return None
    return max(values) if values else None


def fma_peak_per_s(threads: int, capability: Optional[str], mhz: Optional[float]) -> Optional[float]:
    """Fused multiply-adds per second at best: cores used x clock x FMA units x float32 lanes of the
    capability; None where the clock or the lane count is unknown."""
    lanes = FP32_LANES.get(capability or "")
    if lanes is None or not mhz:
        return None
    return min(threads, available_cores()) * mhz * 1e6 * FMA_UNITS * lanes


def git_commit() -> Optional[str]:
    """HEAD of the checkout the benchmark ran from, '+dirty' if it had local changes."""
    def git(*command):
        return subprocess.run(["git", *command], cwd=Path(__file__).resolve().parent.parent,
                              capture_output=True, text=True, timeout=10)
    try:
        head, status = git("rev-parse", "HEAD"), git("status", "--porcelain")
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if status.stdout.strip() else "")


def run_metadata(program: str, argv: Optional[List[str]], threads) -> dict:
    """What every result file records about its run: date, machine, versions, command, threads,
    CPU capability (and the environment that limited it, if any) and the clock estimate."""
    mhz = cpu_mhz()
    return {
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([f"python -m {program}"] + list(sys.argv[1:] if argv is None else argv)),
        "cpu_model": cpu_model(), "cores": available_cores(), "threads": threads,
        "cpu_capability": cpu_capabilities(),
        "capability_env": {key: os.environ[key] for env in CAPABILITY_ENV.values() for key in env
                           if key in os.environ},
        "cpu_mhz": mhz, "cpu_mhz_note": "from /proc/cpuinfo when the run started: an estimate" if mhz else None,
        "torch": torch.__version__, "cwrnn_ext": cwrnn_ext.__version__,
        "cuda_kernels_available": cwrnn_ext.cuda_kernels_available(),
        "python": platform.python_version(), "platform": platform.platform(), "git_commit": git_commit(),
    }
