"""The CUDA kernels against the reference (float64 on the CPU, from the same inputs), the CPU
kernel, gradcheck, opcheck, torch.compile, bad input, unwritten memory and determinism. The
problems are the shape catalogue (catalogue.py), which the CPU kernels meet too (test_catalogue.py).

The whole module skips where no GPU is visible or the extension was built without its CUDA
kernels.
"""
from __future__ import annotations

import os

# Older torch versions refuse cuBLAS under torch.use_deterministic_algorithms(True) unless this is
# set before cuBLAS starts; harmless elsewhere.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import pytest  # noqa: E402
import torch  # noqa: E402

import cwrnn_ext  # noqa: E402
from catalogue import (CONFIGS, DTYPES, LAYOUTS, Config, assert_close, check_against,  # noqa: E402
                       make_problem, prepare, reference_results, run, upstream)

HAS_CUDA = torch.cuda.is_available() and cwrnn_ext.cuda_kernels_available()
pytestmark = pytest.mark.skipif(not HAS_CUDA, reason="needs a GPU and cwrnn_ext built with CUDA kernels")

ERRORS = (ValueError, TypeError, RuntimeError)


# --------------------------------------------------------------------------------------------
# Kernel vs reference
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).replace("torch.", ""))
@pytest.mark.parametrize("config", CONFIGS, ids=Config.id)
def test_matches_reference(config, dtype):
    problem = make_problem(config)
    check_against(problem, dtype, reference_results(problem, dtype))


def test_disallowed_blocks_never_read():
    """NaN in the blocks from faster to slower modules changes nothing; their gradient is 0."""
    problem = make_problem(Config("unequal", T=20, B=5, t0=1, lengths=True))
    hidden, periods, sizes = LAYOUTS["unequal"]
    per_unit = torch.repeat_interleave(torch.tensor(periods), torch.tensor(sizes))
    allowed = per_unit[None, :] >= per_unit[:, None]
    expected = reference_results(problem, torch.float64)
    problem.args["weight_hh"] = problem.args["weight_hh"].masked_fill(~allowed, float("nan"))
    check_against(problem, torch.float64, expected)
    kwargs, leaves = prepare(problem, torch.float32, "cuda")
    _, _, grads = run(cwrnn_ext.clockwork_rnn, kwargs, leaves, *upstream(problem, torch.float32))
    assert (grads["weight_hh"].cpu()[~allowed] == 0).all()


@pytest.mark.parametrize("config", CONFIGS, ids=Config.id)
def test_cpu_and_cuda_agree_float64(config):
    problem = make_problem(config)
    kwargs, leaves = prepare(problem, torch.float64, "cpu")
    expected = run(cwrnn_ext.clockwork_rnn, kwargs, leaves, *upstream(problem, torch.float64))
    check_against(problem, torch.float64, expected, (1e-12, 1e-13))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).replace("torch.", ""))
def test_empty(dtype):
    """Empty batch and zero-length sequences: shapes right, gradients defined."""
    hidden = 6
    for T, B in ((0, 3), (4, 0), (0, 0)):
        x = torch.randn(T, B, 2, device="cuda", dtype=dtype, requires_grad=True)
        hx = torch.randn(B, hidden, device="cuda", dtype=dtype, requires_grad=True)
        w_ih = torch.randn(hidden, 2, device="cuda", dtype=dtype, requires_grad=True)
        w_hh = torch.randn(hidden, hidden, device="cuda", dtype=dtype, requires_grad=True)
        out, h_n = cwrnn_ext.clockwork_rnn(x, hx, w_ih, w_hh, None, None, [1, 2])
        assert out.shape == (T, B, hidden) and h_n.shape == (B, hidden)
        if B > 0:
            assert torch.equal(h_n, hx)
        (out.sum() + (h_n * 2).sum()).backward()
        assert torch.equal(hx.grad, torch.full_like(hx, 2))
        assert x.grad.shape == x.shape and not w_hh.grad.isnan().any()


# --------------------------------------------------------------------------------------------
# gradcheck, opcheck, torch.compile
# --------------------------------------------------------------------------------------------
def small_problem(device, dtype=torch.float64, nonlinearity="tanh"):
    gen = torch.Generator().manual_seed(3)

    def r(*s, scale=1.0):
        return (torch.randn(*s, generator=gen, dtype=torch.float64) * scale).to(device, dtype).requires_grad_()

    T, B, I, H = 6, 3, 2, 7
    tensors = (r(T, B, I), r(B, H, scale=0.5), r(H, I, scale=0.5), r(H, H, scale=0.3), r(H, scale=0.1),
               r(H, scale=0.1))
    options = dict(periods=[1, 2, 3], module_sizes=[3, 2, 2], t0=1, nonlinearity=nonlinearity,
                   lengths=torch.tensor([6, 2, 0], device=device))
    return tensors, options


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_gradcheck(nonlinearity):
    tensors, options = small_problem("cuda", nonlinearity=nonlinearity)

    def fn(*ts):
        return cwrnn_ext.clockwork_rnn(*ts, **options)

    assert torch.autograd.gradcheck(fn, tensors, eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16],
                         ids=lambda d: str(d).replace("torch.", ""))
def test_opcheck(dtype):
    (x, hx, w_ih, w_hh, b_ih, b_hh), options = small_problem("cuda", dtype)
    bias = (b_ih + b_hh).detach().requires_grad_()
    args = (x, hx, w_ih, w_hh, bias, options["periods"], options["module_sizes"], options["t0"], "tanh",
            options["lengths"])
    torch.library.opcheck(torch.ops.cwrnn_ext.forward.default, args)
    output, h_n = torch.ops.cwrnn_ext.forward(*args)
    grad_args = (torch.randn_like(output), torch.randn_like(h_n), x.detach(), hx.detach(), w_ih.detach(),
                 w_hh.detach(), output.detach()) + args[5:]
    torch.library.opcheck(torch.ops.cwrnn_ext.backward.default, grad_args)


# aot_eager: graph capture, fake kernels and the autograd registration, no code generation;
# inductor (the default backend): also Triton code for the ops around the kernel.
@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compile_fullgraph(backend):
    tensors, options = small_problem("cuda", torch.float32)

    def loss_fn(*ts):
        output, h_n = cwrnn_ext.clockwork_rnn(*ts, **options)
        return output.square().sum() + h_n.sum()

    torch._dynamo.reset()
    compiled = torch.compile(loss_fn, fullgraph=True, backend=backend)
    eager_loss = loss_fn(*tensors)
    eager_grads = torch.autograd.grad(eager_loss, tensors)
    compiled_loss = compiled(*tensors)
    compiled_grads = torch.autograd.grad(compiled_loss, tensors)
    assert_close(compiled_loss, eager_loss, (1e-5, 1e-6), "loss")
    for eager, comp in zip(eager_grads, compiled_grads):
        assert_close(comp, eager, (1e-5, 1e-6), "grad")


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------
def _base_cuda(dtype=torch.float32):
    tensors, options = small_problem("cuda", dtype)
    x, hx, w_ih, w_hh, b_ih, b_hh = (t.detach() for t in tensors)
    return dict(input=x, hx=hx, weight_ih=w_ih, weight_hh=w_hh, bias_ih=b_ih, bias_hh=b_hh), options


@pytest.mark.parametrize("name", ["hx", "weight_ih", "weight_hh", "bias_ih", "input"])
def test_tensor_on_cpu_is_rejected(name):
    kwargs, options = _base_cuda()
    kwargs[name] = kwargs[name].cpu()
    with pytest.raises(ERRORS, match=name):
        cwrnn_ext.clockwork_rnn(**kwargs, **options)


@pytest.mark.parametrize("name", ["input", "hx", "weight_ih", "weight_hh", "bias", "lengths"])
def test_op_checks_devices_in_cpp(name):
    """Calling the op directly (no Python checks): the C++ entry names the CPU tensor."""
    kwargs, options = _base_cuda()
    args = dict(input=kwargs["input"], hx=kwargs["hx"], weight_ih=kwargs["weight_ih"],
                weight_hh=kwargs["weight_hh"], bias=kwargs["bias_ih"] + kwargs["bias_hh"],
                lengths=options["lengths"])
    args[name] = args[name].cpu()
    with pytest.raises(RuntimeError, match=name):
        torch.ops.cwrnn_ext.forward(args["input"], args["hx"], args["weight_ih"], args["weight_hh"],
                                    args["bias"], options["periods"], options["module_sizes"], options["t0"],
                                    "tanh", args["lengths"])


def test_op_checks_dtypes_in_cpp():
    kwargs, options = _base_cuda(torch.float16)
    with pytest.raises(RuntimeError, match="weight_hh"):
        torch.ops.cwrnn_ext.forward(kwargs["input"], kwargs["hx"], kwargs["weight_ih"],
                                    kwargs["weight_hh"].float(), None, options["periods"],
                                    options["module_sizes"], 0, "tanh", None)
    output, h_n = torch.ops.cwrnn_ext.forward(kwargs["input"], kwargs["hx"], kwargs["weight_ih"],
                                              kwargs["weight_hh"], None, options["periods"],
                                              options["module_sizes"], 0, "tanh", None)
    with pytest.raises(RuntimeError, match="grad_output"):
        torch.ops.cwrnn_ext.backward(output.float(), h_n, kwargs["input"], kwargs["hx"], kwargs["weight_ih"],
                                     kwargs["weight_hh"], output, options["periods"], options["module_sizes"],
                                     0, "tanh", None)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_tensors_on_two_gpus_are_rejected_and_second_gpu_works():
    kwargs, options = _base_cuda()
    options["lengths"] = None
    bad = dict(kwargs, hx=kwargs["hx"].to("cuda:1"))
    with pytest.raises(ERRORS, match=r"(?i)device|cuda"):
        cwrnn_ext.clockwork_rnn(**bad, **options)
    on_1 = {k: v.to("cuda:1") for k, v in kwargs.items()}
    out1, h1 = cwrnn_ext.clockwork_rnn(**on_1, **options)
    out0, h0 = cwrnn_ext.clockwork_rnn(**kwargs, **options)
    assert out1.device == torch.device("cuda:1")
    assert torch.equal(out1.cpu(), out0.cpu()) and torch.equal(h1.cpu(), h0.cpu())


def test_lengths_out_of_range_on_cuda():
    kwargs, options = _base_cuda()
    options["lengths"] = torch.tensor([7, 1, 0], device="cuda")  # T = 6
    with pytest.raises(ERRORS, match="lengths"):
        cwrnn_ext.clockwork_rnn(**kwargs, **options)


def test_slower_groups_past_one_launch_are_a_clear_error():
    """A group's launch takes the held terms of at most 64 slower groups (kernel parameters):
    65 distinct periods run, 66 name the limit."""
    for groups, ok in ((65, True), (66, False)):
        x = torch.randn(3, 2, 4, device="cuda")
        model = cwrnn_ext.ClockworkRNN(4, groups, periods=list(range(1, groups + 1)), device="cuda")
        if ok:
            out, _ = model(x)
            assert torch.isfinite(out).all()
        else:
            with pytest.raises(RuntimeError, match="distinct periods"):
                model(x)


# --------------------------------------------------------------------------------------------
# Every element written, streams, determinism
# --------------------------------------------------------------------------------------------
# 0x7FFF7FFF is NaN read as float32, as two float16 or bfloat16, and (twice) as float64.
NAN_EVERY_WAY = 0x7FFF7FFF


def _poison_cuda_allocator():
    """Fill the blocks the caching allocator will hand out next with NaN: allocate, fill, free
    (without emptying the cache). Large and small pools both."""
    torch.cuda.synchronize()
    junk = [torch.full((64 << 20,), NAN_EVERY_WAY, dtype=torch.int32, device="cuda")]  # 256 MB
    junk += [torch.full((n,), NAN_EVERY_WAY, dtype=torch.int32, device="cuda")
             for n in (1 << 8, 1 << 12, 1 << 16, 1 << 18) for _ in range(8)]
    torch.cuda.synchronize()
    del junk


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).replace("torch.", ""))
@pytest.mark.parametrize("config", [
    Config("exp4", T=64, B=16, t0=5, lengths=True),
    Config("nonharmonic", T=130, B=33, t0=1, hx=False),
    Config("big_k", T=5, B=3, t0=1),
    Config("wide", T=9, B=1100, t0=2),
], ids=Config.id)
def test_every_element_written(config, dtype):
    problem = make_problem(config)
    kwargs, leaves = prepare(problem, dtype, "cuda")
    grad_out, grad_hn = (g.to("cuda", dtype) for g in upstream(problem, dtype))
    _poison_cuda_allocator()
    output, h_n = cwrnn_ext.clockwork_rnn(**kwargs)
    _poison_cuda_allocator()
    grads = torch.autograd.grad([output, h_n], list(leaves.values()), [grad_out, grad_hn])
    torch.cuda.synchronize()
    assert not output.isnan().any() and not h_n.isnan().any()
    for name, grad in zip(leaves, grads):
        assert not grad.isnan().any(), f"NaN in grad of {name}"


def test_side_stream():
    """The kernels run on the current stream: the same results on a side stream."""
    problem = make_problem(Config("exp4", T=64, B=16, t0=1, lengths=True))
    kwargs, leaves = prepare(problem, torch.float32, "cuda")
    expected = run(cwrnn_ext.clockwork_rnn, kwargs, leaves, *upstream(problem, torch.float32))
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        got = run(cwrnn_ext.clockwork_rnn, kwargs, leaves, *upstream(problem, torch.float32))
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    # A kernel on the wrong stream races with the GEMMs around it: far more than rounding.
    assert_close(got[0], expected[0], (1e-6, 1e-7), "output")
    assert_close(got[1], expected[1], (1e-6, 1e-7), "h_n")
    for name in leaves:
        assert_close(got[2][name], expected[2][name], (1e-6, 1e-7), f"grad of {name}")


@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=lambda d: str(d).replace("torch.", ""))
def test_deterministic(deterministic, dtype):
    problem = make_problem(Config("unequal", T=130, B=33, t0=1, lengths=True))
    kwargs, leaves = prepare(problem, dtype, "cuda")
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(deterministic)
    try:
        first = run(cwrnn_ext.clockwork_rnn, kwargs, leaves, *upstream(problem, dtype))
        second = run(cwrnn_ext.clockwork_rnn, kwargs, leaves, *upstream(problem, dtype))
    finally:
        torch.use_deterministic_algorithms(previous)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    for name in leaves:
        assert torch.equal(first[2][name], second[2][name]), name


def test_module_on_cuda():
    """ClockworkRNN (two layers, batch_first) on CUDA matches itself on the CPU in float64."""
    torch.manual_seed(0)
    model = cwrnn_ext.ClockworkRNN(5, 12, periods=[1, 2, 4], num_layers=2, batch_first=True,
                                   dtype=torch.float64)
    x = torch.randn(3, 17, 5, dtype=torch.float64)
    out_cpu, h_cpu = model(x, t0=2)
    model_cuda = model.to("cuda")
    out_cuda, h_cuda = model_cuda(x.cuda(), t0=2)
    assert_close(out_cuda, out_cpu, (1e-12, 1e-13), "output")
    assert_close(h_cuda, h_cpu, (1e-12, 1e-13), "h_n")


# --------------------------------------------------------------------------------------------
# No host synchronisation: CUDA graphs and sync debug mode
# --------------------------------------------------------------------------------------------
def _graph_model_and_data():
    torch.manual_seed(0)
    model = cwrnn_ext.ClockworkRNN(5, 48, periods=[1, 2, 4, 8], num_layers=2, device="cuda")
    x = torch.randn(33, 6, 5, device="cuda")
    lengths = torch.tensor([33, 0, 7, 20, 1, 32], device="cuda")  # on the GPU: checked there
    return model, x, lengths


def _loss(model, x, lengths):
    out, h_n = model(x, t0=3, lengths=lengths)
    return out.square().sum() + h_n.sum()


def test_forward_backward_do_not_sync_the_host():
    model, x, lengths = _graph_model_and_data()
    _loss(model, x, lengths).backward()  # warm-up: lazy initialisation may sync once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        model.zero_grad()
        _loss(model, x, lengths).backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_cuda_graph_capture_and_replay():
    """Forward and backward captured in one CUDA graph, replayed on new input: the gradients of
    eager execution on that input."""
    model, x, lengths = _graph_model_and_data()
    static_x = x.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up on a side stream, as torch.cuda.graphs asks
        for _ in range(2):
            model.zero_grad(set_to_none=True)
            _loss(model, static_x, lengths).backward()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    model.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        static_loss = _loss(model, static_x, lengths)
        static_loss.backward()

    new_x = torch.randn_like(x)
    static_x.copy_(new_x)
    graph.replay()
    torch.cuda.synchronize()
    replayed = [static_loss.detach().clone()] + [p.grad.detach().clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    eager_loss = _loss(model, new_x, lengths)
    eager_loss.backward()
    eager = [eager_loss.detach()] + [p.grad for p in model.parameters()]
    for (name, _), a, b in zip([("loss", None)] + list(model.named_parameters()), replayed, eager):
        assert_close(a, b, (1e-5, 1e-6), f"replayed {name}")
