"""One rank of the multi-process mesh tests (run by test_moviegen_mesh.py as subprocesses).

python mesh_worker.py RANK WORLD PORT OUT MODE [ARGS...]

Modes
-----
grads DP TP CP [AC [bf16]]  one forward / backward of the flow-matching loss on a (DP, CP, TP)
                      mesh (optional activation checkpointing, bf16 FSDP mixed precision);
                      rank 0 saves the loss and every parameter's full gradient.
train DP TP CP CKPT   FlowMatchingTrainer on the mesh: 4 steps straight; 2 steps, DCP save,
                      a fresh trainer loads and runs 2 more; saves the losses, the full
                      weights, EMA and optimizer state of both runs.
load DP TP CP CKPT    load an (unsharded) DCP checkpoint into a sharded trainer and save
                      its full weights / EMA / step.
"""

import os
import sys

import torch
import torch.distributed as dist

from papershelf.moviegen import MovieGenTransformer, TextContext, flow_matching_loss, preset
from papershelf.moviegen.train import FlowMatchingTrainer, bf16_policy, make_mesh, parallelize

B = 4  # global batch


def build(seed: int = 0, dtype=torch.float64):
    torch.manual_seed(seed)
    model = MovieGenTransformer(
        preset("tiny", in_channels=4, max_pos=(4, 4, 4), text_dims={"a": 6})
    ).to(dtype)
    with torch.no_grad():  # non-trivial outputs so every parameter gets a gradient
        torch.nn.init.normal_(model.proj_out.weight, std=0.05)
        torch.nn.init.normal_(model.adaln_shared.weight, std=0.05)
    return model


def batch(seed: int = 1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x1 = torch.randn(B, 4, 2, 4, 4, generator=g, dtype=dtype)  # 8 tokens per clip
    x0 = torch.randn(B, 4, 2, 4, 4, generator=g, dtype=dtype)
    t = torch.rand(B, generator=g, dtype=dtype)
    mask = torch.ones(B, 3, dtype=torch.bool)
    mask[0, 2] = False  # one padded text token
    text = TextContext({"a": torch.randn(B, 3, 6, generator=g, dtype=dtype)}, {"a": mask})
    return x1, x0, t, text


def train_batches(n: int, dtype=torch.float32):
    out = []
    for i in range(n):
        x1, _, _, text = batch(100 + i, dtype)
        out.append((x1, text))
    return out


TRAIN_KW = dict(lr=1e-3, ema_decay=0.9, warmup_steps=1, total_steps=4, max_grad_norm=0.05)


def local(x, text, dp_rank, dp):
    sl = slice(dp_rank * B // dp, (dp_rank + 1) * B // dp)
    return x[sl], text.index(sl)


def full(t):
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def full_opt_state(trainer):
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    sd = get_optimizer_state_dict(
        trainer.model, trainer.optimizer, options=StateDictOptions(full_state_dict=True)
    )
    return {f"{k}.{n}": v.clone() for k, s in sd["state"].items() for n, v in s.items()}


def run(rank: int, world: int, port: str, out: str, mode: str, *args: str) -> None:
    dp, tp, cp = (int(a) for a in args[:3])
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        mesh = make_mesh(dp_shard=dp, tp=tp, cp=cp, device_type="cpu")
        dp_rank = mesh["dp_shard"].get_local_rank()
        res = {}
        if mode == "grads":
            ac = None if len(args) < 4 or args[3] == "none" else args[3]
            bf16 = len(args) > 4 and args[4] == "bf16"
            dtype = torch.float32 if bf16 else torch.float64
            policy = bf16_policy() if bf16 else None
            model = parallelize(
                build(dtype=dtype), mesh, activation_checkpointing=ac, mp_policy=policy
            )
            x1, x0, t, text = batch(dtype=dtype)
            x1l, textl = local(x1, text, dp_rank, dp)
            x0l, tl = (
                local(x0, text, dp_rank, dp)[0],
                t[dp_rank * B // dp : (dp_rank + 1) * B // dp],
            )
            loss = flow_matching_loss(model, x1l, textl, x0=x0l, t=tl, cfg_dropout=0.0)
            loss.backward()
            mean = loss.detach().clone()
            dist.all_reduce(mean)  # replicated over cp x tp: the world mean is the dp mean
            res["loss"] = mean / world
            res["grads"] = {n: full(p.grad) for n, p in model.named_parameters()}
            res["local_q_rows"] = model.blocks[0].self_attn.q.weight.to_local().shape[0]
        elif mode == "train":
            ckpt = args[3]
            data = train_batches(4)

            def trainer(seed):
                model = parallelize(build(seed, torch.float32), mesh)
                return FlowMatchingTrainer(model, mesh=mesh, **TRAIN_KW)

            def local_data(d):
                return [local(x, tx, dp_rank, dp) for x, tx in d]

            ref = trainer(0)
            ref.fit(local_data(data), 4, show_progress=False)
            a = trainer(0)
            a.fit(local_data(data[:2]), 2, show_progress=False)
            a.save_checkpoint(ckpt)
            b = trainer(7)
            b.load_checkpoint(ckpt)
            b.fit(local_data(data[2:]), 2, show_progress=False)
            res["ref_losses"], res["resumed_losses"] = ref.losses, b.losses
            res["ref_state"] = {k: full(v) for k, v in ref.model.state_dict().items()}
            res["resumed_state"] = {k: full(v) for k, v in b.model.state_dict().items()}
            res["ref_ema"] = {k: full(v) for k, v in ref.ema.state_dict()["shadow"].items()}
            res["resumed_ema"] = {k: full(v) for k, v in b.ema.state_dict()["shadow"].items()}
            res["ref_opt"], res["resumed_opt"] = full_opt_state(ref), full_opt_state(b)
            res["a_state"] = {k: full(v) for k, v in a.model.state_dict().items()}
            res["a_ema"] = {k: full(v) for k, v in a.ema.state_dict()["shadow"].items()}
            res["skipped"] = ref.skipped_steps
        elif mode == "load":
            ckpt = args[3]
            model = parallelize(build(7, torch.float32), mesh)
            tr = FlowMatchingTrainer(model, mesh=mesh, **TRAIN_KW)
            tr.load_checkpoint(ckpt)
            res["state"] = {k: full(v) for k, v in tr.model.state_dict().items()}
            res["ema"] = {k: full(v) for k, v in tr.ema.state_dict()["shadow"].items()}
            res["step"] = tr.step_count
            res["opt"] = full_opt_state(tr)
        else:
            raise ValueError(mode)
        if rank == 0:
            torch.save(res, out)
    finally:
        dist.destroy_process_group()


def main() -> None:
    run(int(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:])


if __name__ == "__main__":
    main()
