"""Estimates the float16/bfloat16 output error of the CUDA path without a GPU: a float64
time-major loop with exactly the roundings the CUDA forward makes (the input + bias term `pre` and
each slower group's held term rounded to the half type and summed unrounded, the group's own state
kept unrounded, the stored output rounded), compared with the float64 reference over tests/test_cuda.py's CONFIGS,
against test_cuda.py's criterion for half types (helpers.assert_half_close: at most twice the
error of PyTorch's own math in that dtype, here run on the CPU, plus 4 eps). Prints the worst ratio
of error to what is allowed (< 1 passes). Run: python tests/cuda_emulation/half_rounding.py
"""
import importlib.util
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # test_cuda imports tests/helpers.py
spec = importlib.util.spec_from_file_location("test_cuda", HERE.parent / "test_cuda.py")
tc = importlib.util.module_from_spec(spec)
sys.modules["test_cuda"] = tc
spec.loader.exec_module(tc)


def simulate(problem, dtype):
    a = problem.args

    def rd(t):  # round to dtype, compute on in float64
        return t.to(dtype).double()

    x, w_ih, w_hh = rd(a["input"]), rd(a["weight_ih"]), rd(a["weight_hh"])
    steps, batch, _ = x.shape
    hidden = w_hh.shape[0]
    hx = rd(a["hx"]) if a["hx"] is not None else torch.zeros(batch, hidden, dtype=torch.float64)
    bias = (rd(rd(a["bias_ih"]) + rd(a["bias_hh"])) if a["bias_ih"] is not None
            else torch.zeros(hidden, dtype=torch.float64))
    sizes = problem.module_sizes or tc.LAYOUTS[problem.config.layout][2]
    if sizes is None:
        base, extra = divmod(hidden, len(problem.periods))
        sizes = [base + (i < extra) for i in range(len(problem.periods))]
    groups, unit = [], 0  # [period, begin, end], equal periods merged
    for period, size in zip(problem.periods, sizes):
        if groups and groups[-1][0] == period:
            groups[-1][2] += size
        else:
            groups.append([period, unit, unit + size])
        unit += size
    f = torch.tanh if a["nonlinearity"] == "tanh" else torch.relu
    rounded, state = hx.clone(), hx.clone()  # what slower groups read (out); a group's own state
    outs = []
    for step in range(steps):
        t = a["t0"] + step
        new_rounded, new_state = rounded.clone(), state.clone()
        for period, b0, b1 in groups:
            if t % period:
                continue
            pre = rd(x[step] @ w_ih[b0:b1].t() + bias[b0:b1])
            for _, c0, c1 in groups:  # each slower group's held term, one rounded GEMM output
                if c0 >= b1:
                    pre = pre + rd(rounded[:, c0:c1] @ w_hh[b0:b1, c0:c1].t())
            h = f(pre + state[:, b0:b1] @ w_hh[b0:b1, b0:b1].t())
            new_state[:, b0:b1], new_rounded[:, b0:b1] = h, rd(h)
        rounded, state = new_rounded, new_state
        outs.append(rounded)
    out = torch.stack(outs)
    if a["lengths"] is None:
        return out, out[-1]
    lengths = a["lengths"]
    h_n = torch.stack([out[lengths[b] - 1, b] if lengths[b] > 0 else hx[b] for b in range(batch)])
    return out * (torch.arange(steps)[:, None] < lengths[None, :])[:, :, None], h_n


def main():
    for dtype in (torch.float16, torch.bfloat16):
        worst, where = 0.0, None
        atol = 4 * torch.finfo(dtype).eps
        for config in tc.CONFIGS:
            if config.B > 100 or config.layout in ("big_k", "chunks", "g8_1024", "boundary"):
                continue  # slow here, and nothing new for rounding
            problem = tc.make_problem(config)
            ref_out, ref_h_n, _ = tc.reference_results(problem, dtype)
            same_out, same_h_n, _ = tc.reference_results(problem, dtype, "cpu", dtype)
            out, h_n = simulate(problem, dtype)
            for got, want, same in ((out, ref_out, same_out), (h_n, ref_h_n, same_h_n)):
                if want.numel():
                    want, same = want.double().cpu(), same.detach().double().cpu()
                    ratio = ((got - want).abs() / (2 * (same - want).abs() + atol)).max().item()
                    if ratio > worst:
                        worst, where = ratio, config.id()
        print(f"{dtype}: worst simulated output error / allowed = {worst:.3f} ({where}); < 1 passes")


if __name__ == "__main__":
    main()
