"""NOT YET RUN ON A GPU (benchmarks/gpu/README.md).

A small forward + backward through every CUDA kernel variant, for compute-sanitizer
(benchmarks/gpu/cuda_check.sh runs it under memcheck, racecheck, initcheck and synccheck).

Variants (csrc/cuda/launch_shape.h): W_ii in registers, small (k = 8, 32) and big (k = 128, 256
threads), big plus the rest of W_ii in shared memory at the 227 KB boundary (k = 240), W_ii in
shared memory (k = 64), read from global memory with several passes (k = 560, 1024), several
rows per block (B = 300), more slower groups than register slots (13 periods); every dtype; t0,
lengths, no hx/bias. Exits non-zero if a result is not finite or disagrees with the float64 CPU
reference beyond a loose bound.
"""
import sys

import torch

import cwrnn_ext
from cwrnn_ext import reference

G8 = [1, 2, 4, 8, 16, 32, 64, 128]
# (T, B, I, H, periods, module_sizes, t0, with lengths)
CASES = [
    (9, 3, 4, 30, [1, 2, 4, 8], None, 1, True),          # k ~ 8: small register kernel
    (6, 3, 4, 256, G8, None, 0, True),                   # k = 32: small register kernel, 7 held terms
    (5, 2, 4, 1024, G8, None, 1, False),                 # k = 128: big register kernel
    (4, 2, 3, 240, [2], None, 0, True),                  # k = 240: registers + shared memory at the limit
    (4, 2, 3, 512, G8, None, 1, True),                   # k = 64
    (4, 2, 3, 1024, [1, 1], None, 1, False),             # k = 1024: W_ii from global memory, passes
    (4, 3, 2, 600, [1, 2], [560, 40], 0, True),          # k = 560: passes, two groups
    (5, 300, 3, 96, [1, 2, 4], None, 2, True),           # several rows per block
    (6, 2, 3, 39, list(range(1, 14)), None, 1, True),    # 12 held terms: past the register slots
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
