"""Loads the compiled kernels and teaches PyTorch about them: fake (meta) kernels for tracing
and torch.compile, and autograd through the registered backward op.

If the extension did not build or does not load, `KERNELS_LOADED` is False and callers fall back
to the reference implementation (with one warning, see functional.py).
"""
from __future__ import annotations

import contextlib
import importlib.util
import warnings
from typing import Optional

import torch

from .arguments import _is_compiling

NOT_BUILT = ("cwrnn_ext's compiled kernels are not built; run: python3 -m pip install "
             "--no-build-isolation --no-deps -e .  (in the repository root)")

# Python's own message for a missing _C would blame a circular import; say what is wrong instead.
if importlib.util.find_spec(f"{__package__}._C") is None:
    KERNELS_LOADED = False
    LOAD_ERROR = ImportError(NOT_BUILT)
else:
    try:
        from . import _C  # noqa: F401  (importing registers torch.ops.cwrnn_ext.*)

        KERNELS_LOADED = True
        LOAD_ERROR = None
    except ImportError as error:  # built but does not load: its own error says why
        KERNELS_LOADED = False
        LOAD_ERROR = error

# {"sequence" | "step": {"cpu" | "cuda": (torch dtypes)}}: the C++ kernels' own table
# (csrc/kernel_dtypes.h), so Python and the kernels' checks cannot disagree. Empty without _C.
KERNEL_DTYPES = ({op: {device: tuple(getattr(torch, name) for name in names)
                       for device, names in by_device.items()}
                  for op, by_device in _C.kernel_dtypes().items()} if KERNELS_LOADED else {})


def kernel_dtypes(op: str, device_type: str) -> tuple:
    """The dtypes the `op` kernel ("sequence": forward/backward, "step") takes on a device type."""
    return KERNEL_DTYPES.get(op, {}).get(device_type, ())


# Fixed once _C is loaded. Asked once, here: torch.compile cannot trace the dispatcher query and
# would break the graph on it (fullgraph=True fails), but it traces a module-level bool.
_CUDA_KERNELS = KERNELS_LOADED and torch._C._dispatch_has_kernel_for_dispatch_key("cwrnn_ext::forward", "CUDA")


def cuda_kernels_available() -> bool:
    """True if the CUDA kernels were compiled into the installed extension.

    This says what was built, not what the machine has: it can be True without a GPU (CI builds
    them on machines without one) and False with one (a CPU-only build). CUDA tensors run the
    kernels only when this and `torch.cuda.is_available()` are both True; otherwise the layers
    fall back to the reference implementation. `python -m cwrnn_ext` prints both.
    """
    return _CUDA_KERNELS


def cpu_capability() -> str:
    """The instruction set the CPU kernels run with: "AVX512", "AVX2" or "DEFAULT" (the baseline:
    SSE2 on x86-64, NEON on aarch64), named as `torch.backends.cpu.get_cpu_capability()` names
    ATen's. Chosen once per process from that capability, so `ATEN_CPU_CAPABILITY=default|avx2`
    lowers both alike; never above what the CPU has. None when the extension is not loaded."""
    return _C.cpu_capability() if KERNELS_LOADED else None


def memory_stats() -> dict:
    """What the CPU kernels keep between calls, as {name: int}, in the manner of
    `torch.cuda.memory_stats()`: the pool of large results ("pool.*") and the workspaces of
    temporaries ("workspace.*"). docs/contract.md lists the keys. Raises RuntimeError if a CWRNN_*
    environment variable holds a bad value; {} when the extension is not loaded."""
    return _C.memory_stats() if KERNELS_LOADED else {}


def empty_cache() -> None:
    """Frees the memory the CPU kernels keep between calls and no call uses: the pool's unused
    blocks and every idle workspace block, whichever thread used it last. Memory of live results
    and of calls running now on other threads is untouched. Nothing to do when the extension is
    not loaded."""
    if KERNELS_LOADED:
        _C.empty_cache()


# False until the CUDA kernels have passed tests/test_cuda.py on a GPU; until then the first call
# that runs them warns (once per process) that only the CPU emulation of their source checks them.
CUDA_KERNELS_RUN_ON_A_GPU = False
CUDA_UNVALIDATED = (
    "cwrnn_ext: the CUDA kernels have never run on a GPU before; they are checked only by running "
    "their source on the CPU in an emulator (tests/test_cuda_emulation.py). Compare a few results "
    "with cwrnn_ext.reference.clockwork_rnn (or run pytest tests/test_cuda.py) before relying on them")
_cuda_warned = False


def warn_cuda_unvalidated_once() -> None:
    """Called where a CUDA kernel is about to run. Not while torch.compile traces (the warning
    would break the graph); a compiled call warns from the fake kernel instead, at trace time."""
    if not _is_compiling():
        _warn_cuda_unvalidated()


def _warn_cuda_unvalidated() -> None:
    global _cuda_warned
    if not (_cuda_warned or CUDA_KERNELS_RUN_ON_A_GPU):
        _cuda_warned = True
        warnings.warn(CUDA_UNVALIDATED, UserWarning, stacklevel=4)


def kernel_supports(device: torch.device, dtype: torch.dtype, op: str = "sequence") -> bool:
    """Whether this build runs the `op` kernel for tensors of this device and dtype."""
    if not KERNELS_LOADED:
        return False
    if device.type == "cuda" and not cuda_kernels_available():
        return False
    return dtype in kernel_dtypes(op, device.type)


# The CPU forward chooses for itself between running a sequence step after step (time-major),
# module after module (module-major) or, for a batch too small to split, as a two-thread pipeline
# (csrc/cpu/forward_path.h). These read and steer that choice, for tests and benchmarks.


def forward_path(steps: int, batch: int, hidden: int, num_groups: int, dtype=torch.float32) -> str:
    """The path the CPU forward's rule picks for a sequence of this shape (ignoring forced_forward_path)."""
    return _C.forward_path(steps, batch, hidden, num_groups, str(dtype).replace("torch.", ""))


def last_forward_path() -> str:
    """The path this thread's last CPU forward took."""
    return _C.last_forward_path()


@contextlib.contextmanager
def forced_forward_path(path: Optional[str]):
    """Within the block every CPU forward takes `path`'s family: "time_major" (float32/float64;
    other dtypes run module-major) or "module_major" (pipelined where the rule would pipeline);
    None: the rule. Process-wide: meant for tests and benchmarks."""
    previous = _C.force_forward_path(path)
    try:
        yield
    finally:
        _C.force_forward_path(previous)


if KERNELS_LOADED:

    @torch.library.register_fake("cwrnn_ext::forward")
    def _forward_fake(input, hx, weight_ih, weight_hh, bias, periods, module_sizes, t0, nonlinearity, lengths):
        if input.device.type == "cuda":
            _warn_cuda_unvalidated()
        steps, batch, hidden = input.shape[0], input.shape[1], weight_hh.shape[0]
        return input.new_empty(steps, batch, hidden), hx.new_empty(batch, hidden)

    @torch.library.register_fake("cwrnn_ext::backward")
    def _backward_fake(grad_output, grad_h_n, input, hx, weight_ih, weight_hh, output, periods,
                       module_sizes, t0, nonlinearity, lengths, output_mask=(True,) * 5):
        grads = (torch.empty_like(input, memory_format=torch.contiguous_format),
                 torch.empty_like(hx, memory_format=torch.contiguous_format),
                 torch.empty_like(weight_ih, memory_format=torch.contiguous_format),
                 torch.empty_like(weight_hh, memory_format=torch.contiguous_format),
                 weight_hh.new_empty(weight_hh.shape[0]))
        return tuple(g if wanted else None for g, wanted in zip(grads, output_mask))

    def _setup_context(ctx, inputs, output):
        input, hx, weight_ih, weight_hh, bias, periods, module_sizes, t0, nonlinearity, lengths = inputs
        ctx.save_for_backward(input, hx, weight_ih, weight_hh, output[0], lengths)
        ctx.schedule = (periods, module_sizes, t0, nonlinearity)

    def _backward(ctx, grad_output, grad_h_n):
        input, hx, weight_ih, weight_hh, output, lengths = ctx.saved_tensors
        # Only the gradients autograd needs (input, hx, weight_ih, weight_hh, bias): e.g. a first
        # layer's input or frozen weights cost nothing.
        output_mask = list(ctx.needs_input_grad[:5])
        grads = torch.ops.cwrnn_ext.backward(grad_output, grad_h_n, input, hx, weight_ih, weight_hh,
                                             output, *ctx.schedule, lengths, output_mask)
        return (*grads, None, None, None, None, None)

    torch.library.register_autograd("cwrnn_ext::forward", _backward, setup_context=_setup_context)

    def _refuse_double_backward(ctx, *grads):
        raise RuntimeError(
            "cwrnn_ext: differentiating the Clockwork RNN kernel twice (double backward, e.g. a "
            "gradient penalty built with create_graph=True) is not supported; use "
            "cwrnn_ext.reference.clockwork_rnn for higher-order gradients")

    # Without this, autograd would treat the backward op as constant and silently return wrong
    # second derivatives; refusing loudly is the honest answer until double backward exists.
    torch.library.register_autograd("cwrnn_ext::backward", _refuse_double_backward,
                                    setup_context=lambda ctx, inputs, output: None)


# The step op (one step, a clock per row; its autograd is in C++, csrc/step_autograd.cpp).

if KERNELS_LOADED:

    @torch.library.register_fake("cwrnn_ext::step")
    def _step_fake(input, hx, weight_ih, weight_hh, bias_ih, bias_hh, periods, module_sizes, t,
                   clocks, nonlinearity):
        if input.device.type == "cuda":
            _warn_cuda_unvalidated()
        return hx.new_empty(input.shape[0], weight_hh.shape[0])

    @torch.library.register_fake("cwrnn_ext::step_backward")
    def _step_backward_fake(grad, input, hx, weight_ih, weight_hh, output, periods, module_sizes,
                            t, clocks, nonlinearity, output_mask):
        grads = (input.new_empty(input.shape), hx.new_empty(hx.shape),
                 weight_ih.new_empty(weight_ih.shape), weight_hh.new_empty(weight_hh.shape),
                 weight_hh.new_empty(weight_hh.shape[0]))
        return tuple(g if wanted else None for g, wanted in zip(grads, output_mask))
