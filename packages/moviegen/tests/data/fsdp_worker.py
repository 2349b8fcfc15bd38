"""One rank of the 2-process FSDP2 test (run by test_moviegen_parallel.py as a subprocess).

python fsdp_worker.py RANK WORLD PORT OUT.pt
"""

import os
import sys

import torch
import torch.distributed as dist

from papershelf.moviegen import MovieGenTransformer, TextContext, flow_matching_loss, preset
from papershelf.moviegen.train import make_mesh, parallelize

STEPS = 3


def setup(seed: int = 0):
    torch.manual_seed(seed)
    model = MovieGenTransformer(
        preset("tiny", in_channels=4, max_pos=(4, 4, 4), text_dims={"a": 6})
    )
    with torch.no_grad():  # non-trivial outputs so every parameter gets a gradient
        torch.nn.init.normal_(model.proj_out.weight, std=0.05)
        torch.nn.init.normal_(model.adaln_shared.weight, std=0.05)
    g = torch.Generator().manual_seed(1)
    data = []
    for _ in range(STEPS):
        x1 = torch.randn(4, 4, 2, 4, 4, generator=g)
        x0 = torch.randn(4, 4, 2, 4, 4, generator=g)
        t = torch.rand(4, generator=g)
        text = TextContext(
            {"a": torch.randn(4, 3, 6, generator=g)}, {"a": torch.ones(4, 3, dtype=torch.bool)}
        )
        data.append((x1, x0, t, text))
    return model, data


def train(model, data, rank: int = 0, world: int = 1) -> list[float]:
    # SGD: Adam would amplify float-rounding differences of near-zero gradients
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    losses = []
    for x1, x0, t, text in data:
        sl = slice(rank * 4 // world, (rank + 1) * 4 // world)  # this rank's share
        loss = flow_matching_loss(
            model, x1[sl], text.index(sl), x0=x0[sl], t=t[sl], cfg_dropout=0.0
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    return losses


def main() -> None:
    rank, world, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model, data = setup()
        parallelize(model, make_mesh(dp_shard=world, device_type="cpu"))
        local_rows = model.blocks[0].ffn.w1.weight.to_local().shape[0]
        losses = torch.tensor(train(model, data, rank, world))
        dist.all_reduce(losses)  # global-batch loss = mean of the equal halves
        full = {k: v.full_tensor() for k, v in model.state_dict().items()}
        if rank == 0:
            torch.save(
                {"losses": (losses / world).tolist(), "local_rows": local_rows, "state": full}, out
            )
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
