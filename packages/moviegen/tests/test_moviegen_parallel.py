"""FSDP2 sharded training on 2 CPU processes (gloo) equals unsharded training."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from papershelf.core.testing import slow
from papershelf.moviegen import MovieGenTransformer, TextContext, flow_matching_loss, preset
from papershelf.moviegen.train import make_mesh, shard_model

STEPS = 3


def _setup(seed=0):
    torch.manual_seed(seed)
    model = MovieGenTransformer(preset("tiny", in_channels=4, max_pos=(4, 4, 4),
                                       text_dims={"a": 6}))
    with torch.no_grad():  # non-trivial outputs so every parameter gets gradient
        torch.nn.init.normal_(model.proj_out.weight, std=0.05)
        torch.nn.init.normal_(model.adaln_shared.weight, std=0.05)
    g = torch.Generator().manual_seed(1)
    data = []
    for _ in range(STEPS):
        x1 = torch.randn(4, 4, 2, 4, 4, generator=g)
        x0 = torch.randn(4, 4, 2, 4, 4, generator=g)
        t = torch.rand(4, generator=g)
        text = TextContext({"a": torch.randn(4, 3, 6, generator=g)},
                           {"a": torch.ones(4, 3, dtype=torch.bool)})
        data.append((x1, x0, t, text))
    return model, data


def _train(model, data, rank=0, world=1):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for x1, x0, t, text in data:
        sl = slice(rank * 4 // world, (rank + 1) * 4 // world)  # this rank's share
        loss = flow_matching_loss(model, x1[sl], text.index(sl), x0=x0[sl], t=t[sl],
                                  cfg_dropout=0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    return losses


def _worker(rank, world, port, queue):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model, data = _setup()
        shard_model(model, make_mesh(dp_shard=world, device_type="cpu"))
        local_rows = model.blocks[0].ffn.w1.weight.to_local().shape[0]
        losses = torch.tensor(_train(model, data, rank, world))
        dist.all_reduce(losses)  # global-batch loss = mean of the equal halves
        full = {k: v.full_tensor() for k, v in model.state_dict().items()}
        if rank == 0:
            queue.put(((losses / world).tolist(), local_rows, full))
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@slow
def test_two_process_fsdp2_training_matches_unsharded():
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, 2, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    losses, local_rows, sharded = queue.get(timeout=600)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert local_rows == 172 // 2  # the FFN weight is split in two row shards
    model, data = _setup()
    ref_losses = _train(model, data)
    assert losses == pytest.approx(ref_losses, abs=1e-5)
    for k, v in model.state_dict().items():
        assert torch.allclose(sharded[k], v, atol=1e-5), k
