"""The shape catalogue (catalogue.py, which the CUDA tests run on a GPU) on the CPU kernels: every
configuration in every dtype against the float64 reference, values and the gradients of every
input; float32 and float64 on each forward path, the half types on module-major (their only one).

The half types run the tanh configurations only: relu's derivative is a step, so over a long
sequence a pre-activation within rounding of 0 flips a whole gradient term, in any dtype, at places
that differ between PyTorch's half math (the yardstick of assert_half_close) and the kernel's float32
math; one such flip (exp4, T=130, B=33, bfloat16: one grad_hx entry of 990) exceeds the yardstick.
Short relu sequences in the half types are held to it in test_half_cpu.py."""
import functools

import pytest

from catalogue import CONFIGS, DTYPES, Config, check_against, make_problem, reference_results
from cwrnn_ext import ops
from helpers import HALF_TYPES


@functools.lru_cache(maxsize=None)
def _expected(config: Config, dtype):
    problem = make_problem(config)
    return problem, reference_results(problem, dtype)


def _cases():
    for config in CONFIGS:
        for dtype in DTYPES:
            if dtype not in HALF_TYPES:
                paths = ("time_major", "module_major")
            elif config.nonlinearity == "relu":
                continue  # see the module docstring
            else:
                paths = ("module_major",)
            for path in paths:
                yield pytest.param(config, dtype, path,
                                   id=f"{config.id()}-{str(dtype).replace('torch.', '')}-{path}")


@pytest.mark.parametrize("config,dtype,path", list(_cases()))
def test_catalogue_on_cpu(config, dtype, path):
    problem, expected = _expected(config, dtype)
    with ops.forced_forward_path(path):
        check_against(problem, dtype, expected, device="cpu")
