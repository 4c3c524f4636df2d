"""A small forward + backward through every CUDA kernel variant, for compute-sanitizer
(benchmarks/cuda_check.sh runs it under memcheck, racecheck, initcheck and synccheck).

Variants: one row per thread with W_ii in shared memory (small groups), four rows per thread
(batch >= 8 rows per SM), W_ii read from global memory (a 1024-unit group), the column loop
(groups wider than 512 units); every dtype; t0, lengths, no hx/bias. Exits non-zero if a result
is not finite or disagrees with the float64 CPU reference beyond a loose bound.
"""
import sys

import torch

import cwrnn_ext
from cwrnn_ext import reference

# (T, B, I, H, periods, module_sizes, t0, with lengths)
CASES = [
    (9, 3, 4, 30, [1, 2, 4, 8], None, 1, True),          # 1 row/thread, W_ii resident
    (5, 1100, 3, 12, [1, 2, 4], None, 0, True),          # 4 rows/thread (1100 >= 8 * SMs up to 137)
    (4, 2, 3, 1024, [1, 1], None, 1, False),             # W_ii (4 MB) from global memory, column loop
    (4, 3, 2, 600, [1, 2], [560, 40], 0, True),          # column loop, two groups
]
TOLERANCE = {torch.float32: 1e-3, torch.float64: 1e-8, torch.float16: 3e-2, torch.bfloat16: 1e-1}


def main() -> int:
    assert torch.cuda.is_available() and cwrnn_ext.cuda_kernels_available(), "needs a GPU and the CUDA kernels"
    bad = 0
    gen = torch.Generator().manual_seed(0)
    for T, B, I, H, periods, sizes, t0, with_lengths in CASES:
        for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
            def r(*shape, scale=1.0):
                return torch.randn(*shape, generator=gen, dtype=torch.float64) * scale

            tensors = [r(T, B, I), r(B, H, scale=0.5), r(H, I, scale=0.5), r(H, H, scale=0.7 / H ** 0.5),
                       r(H, scale=0.1), None]
            lengths = torch.randint(0, T + 1, (B,), generator=gen) if with_lengths else None
            if lengths is not None:
                lengths[0] = T
            options = dict(periods=periods, module_sizes=sizes, t0=t0, lengths=lengths)
            results = []
            for device, dt in (("cuda", dtype), ("cpu", torch.float64)):
                leaves = [t.to(dtype).to(dt).to(device).requires_grad_() if t is not None else None
                          for t in tensors]
                out, h_n = (cwrnn_ext if device == "cuda" else reference).clockwork_rnn(*leaves, **options)
                (out.double().square().sum() + h_n.double().sum()).backward()
                results.append([out, h_n] + [t.grad for t in leaves if t is not None])
            for name, got, want in zip(("output", "h_n", "grad_input", "grad_hx", "grad_w_ih", "grad_w_hh",
                                        "grad_bias_ih"), *results):
                got, want = got.detach().double().cpu(), want.detach().double().cpu()
                error = (got - want).abs().max().item() / max(1.0, want.abs().max().item())
                if not got.isfinite().all() or not error <= TOLERANCE[dtype]:
                    bad += 1
                    print(f"BAD T={T} B={B} H={H} {dtype} {name}: relative error {error:.2e}")
    torch.cuda.synchronize()
    print("sanitize_case:", "OK" if bad == 0 else f"{bad} bad results")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
