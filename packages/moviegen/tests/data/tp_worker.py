"""One rank of the 2-process tensor-parallel test (run by test_moviegen_parallel.py).

python tp_worker.py RANK WORLD PORT OUT.pt
"""

import os
import sys

import torch
import torch.distributed as dist

from papershelf.moviegen import MovieGenTransformer, TextContext, preset
from papershelf.moviegen.train import make_mesh, parallelize


def setup():
    torch.manual_seed(0)
    model = MovieGenTransformer(
        preset("tiny", in_channels=4, max_pos=(4, 4, 4), text_dims={"a": 6})
    )
    with torch.no_grad():
        torch.nn.init.normal_(model.proj_out.weight, std=0.05)
        torch.nn.init.normal_(model.adaln_shared.weight, std=0.05)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 2, 4, 4, generator=g)
    t = torch.rand(2, generator=g)
    text = TextContext(
        {"a": torch.randn(2, 3, 6, generator=g)}, {"a": torch.ones(2, 3, dtype=torch.bool)}
    )
    return model, x, t, text


def main() -> None:
    rank, world, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model, x, t, text = setup()
        parallelize(model, make_mesh(dp_shard=1, tp=world, device_type="cpu"))
        heads_local = model.blocks[0].self_attn.q.weight.to_local().shape[0]
        y = model(x, t, text)
        y = y.full_tensor() if hasattr(y, "full_tensor") else y
        y.square().mean().backward()
        g = model.blocks[0].ffn.w2.weight.grad.full_tensor()
        if rank == 0:
            torch.save({"out": y.detach(), "q_rows": heads_local, "grad_w2": g}, out)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
