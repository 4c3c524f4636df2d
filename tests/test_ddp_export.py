"""DistributedDataParallel (gloo, 2 processes on 127.0.0.1) and torch.export (save, then load
in a fresh process), with the compiled kernels."""
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import cwrnn_ext
from helpers import assert_close

STEPS, BATCH, T, I, H = 3, 8, 12, 3, 12


class Regressor(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = cwrnn_ext.ClockworkRNN(I, H, periods=[1, 2, 4], num_layers=2, batch_first=True,
                                          dtype=torch.float64)
        self.head = torch.nn.Linear(H, 1, dtype=torch.float64)

    def forward(self, x, lengths):
        _, h_n = self.rnn(x, t0=1, lengths=lengths)
        return self.head(h_n[-1])


def make_model():
    torch.manual_seed(0)
    return Regressor()


def make_data():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(BATCH, T, I, generator=gen, dtype=torch.float64)
    y = torch.randn(BATCH, 1, generator=gen, dtype=torch.float64)
    lengths = torch.randint(1, T + 1, (BATCH,), generator=gen)
    return x, y, lengths


def train(model, x, y, lengths):
    """A few SGD steps; the loss is a mean over the batch, so DDP's gradient average over two
    halves equals the gradient of the whole batch. Returns the gradients of every step."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    history = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss = (model(x, lengths) - y).square().mean()
        loss.backward()
        history.append([p.grad.clone() for p in model.parameters()])
        optimizer.step()
    return history


def _ddp_worker(rank, port, path):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        model = torch.nn.parallel.DistributedDataParallel(make_model())
        x, y, lengths = make_data()
        half = slice(rank * BATCH // 2, (rank + 1) * BATCH // 2)
        history = train(model, x[half], y[half], lengths[half])
        if rank == 0:
            torch.save(history, path)
        # Both ranks done before either tears gloo down: a rank destroying the group while the
        # other's gloo threads still talk to it can abort that process ("terminate called without
        # an active exception", seen once in a CI run).
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")
def test_ddp_gradients_equal_single_process_on_the_whole_batch(tmp_path):
    path = tmp_path / "ddp.pt"
    mp.spawn(_ddp_worker, args=(_free_port(), str(path)), nprocs=2, join=True)
    ddp_history = torch.load(path)
    single_history = train(make_model(), *make_data())
    names = [n for n, _ in make_model().named_parameters()]
    for step, (ddp, single) in enumerate(zip(ddp_history, single_history)):
        for name, a, b in zip(names, ddp, single):
            assert_close(a, b, what=f"step {step} grad {name}")
            assert b.abs().max() > 0, f"step {step} grad {name} is zero"


@pytest.mark.slow
def test_export_save_load_in_a_fresh_process(tmp_path):
    model = cwrnn_ext.ClockworkRNN(I, H, periods=[1, 2, 4], num_layers=2, batch_first=True).eval()
    x = torch.randn(2, T, I)
    expected_out, expected_hn = model(x)
    program = torch.export.export(model, (x,))
    path = tmp_path / "cwrnn.pt2"
    torch.export.save(program, str(path))
    torch.save(x, tmp_path / "x.pt")
    script = textwrap.dedent(f"""
        import torch
        import cwrnn_ext  # registers the cwrnn_ext ops the program calls
        program = torch.export.load({str(path)!r})
        out, h_n = program.module()(torch.load({str(tmp_path / 'x.pt')!r}))
        torch.save((out, h_n), {str(tmp_path / 'result.pt')!r})
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
    out, h_n = torch.load(tmp_path / "result.pt")
    assert torch.equal(out, expected_out) and torch.equal(h_n, expected_hn)
    assert "cwrnn_ext" in str(program.graph), "the exported graph calls the kernel op"
