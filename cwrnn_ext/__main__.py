"""`python -m cwrnn_ext`: what was built and what this machine offers it.

Prints the versions, whether the compiled extension loaded (and the error if not), which kernel
backends were compiled in, whether a GPU is visible, the CPU threads and the dtypes that have a
kernel on each device. Exits with status 1 when the compiled extension did not load (the layers
then fall back to the slow reference implementation), 0 otherwise.
"""
from __future__ import annotations

import os
import sys
from typing import List

import torch

import cwrnn_ext
from cwrnn_ext import ops


def _dtype_names(dtypes) -> str:
    return ", ".join(str(d).replace("torch.", "") for d in dtypes)


def report() -> List[str]:
    """The lines that `python -m cwrnn_ext` prints."""
    cuda_build = torch.version.cuda
    lines = [
        f"cwrnn_ext {cwrnn_ext.__version__} ({os.path.dirname(cwrnn_ext.__file__)})",
        f"torch {torch.__version__} ({'CUDA ' + cuda_build + ' build' if cuda_build else 'CPU-only build'}), "
        f"Python {sys.version.split()[0]}",
    ]
    if ops.KERNELS_LOADED:
        lines.append(f"compiled extension: loaded ({getattr(ops._C, '__file__', 'cwrnn_ext._C')})")
    else:
        lines.append(f"compiled extension: NOT loaded ({ops.LOAD_ERROR}); every call falls back to "
                     f"the pure-PyTorch reference (slow)")
    cuda_compiled = ops.cuda_kernels_available()
    backends = (["CPU"] + (["CUDA"] if cuda_compiled else [])) if ops.KERNELS_LOADED else []
    lines.append(f"compiled backends: {', '.join(backends) or 'none'}")
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        lines.append(f"GPU visible: yes ({names})")
    else:
        lines.append("GPU visible: no")
    if ops.KERNELS_LOADED:
        lines.append(f"CPU kernels: {ops.cpu_capability()} (torch's CPU capability: "
                     f"{torch.backends.cpu.get_cpu_capability()}; ATEN_CPU_CAPABILITY=default|avx2 lowers both)")
    lines.append(f"CPU threads: {torch.get_num_threads()} used by torch, {os.cpu_count()} logical cores")
    for device in ("cpu", "cuda"):
        kernel_dtypes = ops.kernel_dtypes("sequence", device)
        if not kernel_dtypes or not ops.kernel_supports(torch.device(device), kernel_dtypes[0]):
            why = "extension not loaded" if not ops.KERNELS_LOADED else "CUDA kernels not compiled in"
            lines.append(f"dtypes with a kernel on {device}: none ({why}; the reference would run instead)")
            continue
        note = ""
        if device == "cuda":
            note = (" (compiled in; no GPU visible to run them)" if not torch.cuda.is_available()
                    else " (not yet validated on a GPU)")
        step = _dtype_names(ops.kernel_dtypes("step", device))
        lines.append(f"dtypes with a kernel on {device}: {_dtype_names(kernel_dtypes)}{note}; "
                     f"one step at a time: {step}")
    return lines


def main() -> int:
    print("\n".join(report()))
    return 0 if ops.KERNELS_LOADED else 1


if __name__ == "__main__":
    sys.exit(main())
