"""Only the gradients asked for: the backward op skips those not in its output_mask (they come back
None) and the others are bitwise what the full backward gives; autograd asks only for the inputs
that need a gradient."""
import itertools

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import cwrnn_ext
from helpers import DEVICES, NAMES, make_problem

GRADIENTS = ("input", "hx", "weight_ih", "weight_hh", "bias")
MASKS = [list(m) for m in itertools.product([False, True], repeat=5)]


def op_problem(device, lengths):
    problem = make_problem(11, 4, 3, 9, [1, 2, 5], [3, 4, 2], dtype=torch.float64, device=device,
                           seed=31, requires_grad=False)
    bias = problem.bias_ih + problem.bias_hh
    lengths_t = torch.tensor([11, 0, 6, 3], device=device) if lengths else None
    args = (problem.input, problem.hx, problem.weight_ih, problem.weight_hh, bias, [1, 2, 5],
            [3, 4, 2], 2, "tanh", lengths_t)
    output, h_n = torch.ops.cwrnn_ext.forward(*args)
    gen = torch.Generator().manual_seed(5)
    grad_output = torch.randn(output.shape, generator=gen, dtype=output.dtype).to(device)
    grad_h_n = torch.randn(h_n.shape, generator=gen, dtype=h_n.dtype).to(device)
    return (grad_output, grad_h_n, *args[:4], output, *args[5:])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("schedule", ["backward", "_generic_backward"], ids=["device", "generic"])
@pytest.mark.parametrize("lengths", [False, True], ids=["nolengths", "lengths"])
def test_masked_backward_skips_and_keeps_bits(lengths, schedule, device):
    """The device's backward, and the generic schedule (the one CUDA runs) through its CPU test op."""
    if schedule == "_generic_backward" and device != "cpu":
        pytest.skip("the generic schedule's test op is registered for the CPU (on a GPU it is the backward)")
    backward = getattr(torch.ops.cwrnn_ext, schedule)
    args = op_problem(device, lengths)
    full = backward(*args)
    assert all(g is not None for g in full)
    for mask in MASKS:
        got = backward(*args, mask)
        for name, wanted, g, f in zip(GRADIENTS, mask, got, full):
            if wanted:
                assert g is not None and torch.equal(g, f), f"{name} with mask {mask}"
            else:
                assert g is None, f"{name} computed although mask {mask} skips it"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mask", [[True, False, True, False, True], [False, True, False, True, False],
                                  [False] * 5], ids=["10101", "01010", "00000"])
def test_opcheck_masked_backward(mask, device):
    torch.library.opcheck(torch.ops.cwrnn_ext.backward, (*op_problem(device, True), mask))


class BackwardMasks(TorchDispatchMode):
    """Records the output_mask of every cwrnn_ext::backward call."""

    def __init__(self):
        super().__init__()
        self.masks = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.cwrnn_ext.backward.default:
            # A mask equal to the schema's default (all True) may arrive as no argument at all.
            mask = args[12] if len(args) > 12 else (kwargs or {}).get("output_mask", [True] * 5)
            self.masks.append(list(mask))
        return func(*args, **(kwargs or {}))


# (which of input, hx, weight_ih, weight_hh, bias_ih, bias_hh require grad, expected mask)
PARTIAL = [
    ((False, True, True, True, True, True), [False, True, True, True, True]),   # a first layer
    ((True, False, False, False, False, False), [True, False, False, False, False]),  # frozen model
    ((False, False, True, False, False, True), [False, False, True, False, True]),
    ((True, True, False, True, False, False), [True, True, False, True, False]),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("requires,expected", PARTIAL, ids=["first-layer", "frozen", "ih-and-bias", "no-ih"])
def test_autograd_asks_only_for_needed_gradients(requires, expected, device):
    def grads(requires_grad):
        problem = make_problem(9, 3, 4, 8, [1, 3], [5, 3], dtype=torch.float64, device=device, seed=8,
                               requires_grad=False)
        tensors = [t.requires_grad_(r) for (_, t), r in zip(problem.tensors(), requires_grad)]
        lengths = torch.tensor([9, 4, 0])
        with BackwardMasks() as recorder:
            output, h_n = cwrnn_ext.clockwork_rnn(*problem.args(t0=1, lengths=lengths))
            wanted = [t for t in tensors if t.requires_grad]
            got = torch.autograd.grad(output.sum() + h_n.pow(2).sum(), wanted)
        return dict(zip([n for (n, t) in problem.tensors() if t.requires_grad], got)), recorder.masks

    partial, masks = grads(requires)
    full, full_masks = grads((True,) * 6)
    assert masks == [expected] and full_masks == [[True] * 5]
    assert set(partial) == {n for n, r in zip(NAMES, requires) if r}
    for name, g in partial.items():
        assert torch.equal(g, full[name]), name
