"""One rank of the 2-process context-parallel test (run by test_moviegen_parallel.py).

python cp_worker.py RANK WORLD PORT OUT.pt
"""

import os
import sys

import torch
import torch.distributed as dist

from papershelf.moviegen import MovieGenTransformer, TextContext, preset
from papershelf.moviegen.train import enable_context_parallel


def setup():
    torch.manual_seed(0)
    model = MovieGenTransformer(
        preset("tiny", in_channels=4, max_pos=(4, 4, 4), text_dims={"a": 6})
    ).double()
    with torch.no_grad():
        torch.nn.init.normal_(model.proj_out.weight, std=0.05)
        torch.nn.init.normal_(model.adaln_shared.weight, std=0.05)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 2, 4, 4, generator=g, dtype=torch.float64)  # 8 tokens per clip
    t = torch.rand(2, generator=g, dtype=torch.float64)
    text = TextContext(
        {"a": torch.randn(2, 3, 6, generator=g, dtype=torch.float64)},
        {"a": torch.ones(2, 3, dtype=torch.bool)},
    )
    return model, x, t, text


def main() -> None:
    rank, world, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model, x, t, text = setup()
        enable_context_parallel(model)
        y = model(x, t, text)
        y.square().mean().backward()
        grads = {}
        for name, p in model.named_parameters():
            g = p.grad if p.grad is not None else torch.zeros_like(p)
            dist.all_reduce(g)  # partial per rank: the data-parallel reduction completes it
            grads[name] = g
        if rank == 0:
            torch.save({"out": y.detach(), "grads": grads}, out)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
