"""Train the Movie Gen transformer on a latent cache, on one mesh, with checkpoints and resume.

Launch (one node, 8 GPUs: FSDP2 over 4, tensor parallel 2)::

    torchrun --nproc-per-node 8 -m papershelf.moviegen.train.launch \\
        --cache CACHE/ --out RUN/ --preset 5b --dp 4 --tp 2 --cp 1 \\
        --batch 2 --steps 20000 --lr 6e-5 --ckpt-every 500 --ac selective

``CACHE`` comes from ``python -m papershelf.moviegen.cache``. Every ``--ckpt-every`` steps
the run writes ``RUN/step-XXXXXXXX/`` (a ``torch.distributed.checkpoint`` directory with
model, AdamW, EMA, LR schedule, step, every rank's generator and data position) and points
``RUN/latest`` at it; starting the same command again resumes from ``latest`` on any mesh.
``--grow-from STEP_DIR`` starts a new stage from another run's checkpoint with larger
position tables (256 px -> 768 px). On CPU it runs with gloo (``--device cpu``), which is
how the tests drive it.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

__all__ = ["main"]


def _batches(cache: Any, sampler: Any, trainer: Any, sample: bool) -> Iterator[Any]:
    while True:  # epochs
        for idx in sampler:
            yield cache.batch(idx, trainer.generator if sample else None)
        sampler.set_epoch(sampler.epoch + 1)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m papershelf.moviegen.train.launch")
    ap.add_argument("--cache", required=True, help="latent cache folder (index.json)")
    ap.add_argument("--out", required=True, help="run folder (checkpoints, latest)")
    ap.add_argument("--preset", default="1b")
    ap.add_argument("--max-pos", type=int, nargs=3, help="position tables (t h w) in patches")
    ap.add_argument("--dp", type=int, default=None, help="FSDP degree (default: the rest)")
    ap.add_argument("--tp", type=int, default=1)
    ap.add_argument("--cp", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1, help="clips per data-parallel rank")
    ap.add_argument("--steps", type=int, required=True, help="optimizer steps in total")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--cosine", action="store_true", help="cosine decay to 10% at --steps")
    ap.add_argument("--ema", type=float, default=None, help="EMA decay (off by default)")
    ap.add_argument("--cfg-dropout", type=float, default=0.1)
    ap.add_argument("--max-grad-norm", type=float, default=1.0)
    ap.add_argument("--ckpt-every", type=int, default=500)
    ap.add_argument(
        "--stop-at", type=int, default=None, help="checkpoint and exit at this step (time limits)"
    )
    ap.add_argument("--ac", choices=["none", "full", "selective"], default="none")
    ap.add_argument("--bf16", action="store_true", help="FSDP2 bf16 compute, fp32 reduce")
    ap.add_argument("--sample-latents", action="store_true", help="draw from the posterior")
    ap.add_argument("--grow-from", help="checkpoint of an earlier stage (smaller positions)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Run (or resume) a training run; returns 0. Call on every rank (torchrun)."""
    import torch.distributed as dist

    from papershelf.moviegen.cache import LatentCache
    from papershelf.moviegen.config import preset
    from papershelf.moviegen.data_video import DistributedBucketSampler
    from papershelf.moviegen.train.parallel import (
        bf16_policy,
        data_parallel_rank,
        make_mesh,
        parallelize,
    )
    from papershelf.moviegen.train.positions import grow_position_tables
    from papershelf.moviegen.train.trainer import FlowMatchingTrainer
    from papershelf.moviegen.transformer import MovieGenTransformer

    args = build_parser().parse_args(argv)
    own_group = not dist.is_initialized()
    if own_group:
        dist.init_process_group("nccl" if args.device == "cuda" else "gloo")
    if args.device == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    try:
        cache = LatentCache(args.cache, sample=args.sample_latents)
        latent, text, _ = cache[0]
        shapes = cache.bucket_keys()
        cfg = preset(args.preset, in_channels=int(latent.shape[0]))
        pt, ph, pw = cfg.patch
        need = (
            max(s[1] for s in shapes) // pt,
            max(s[2] for s in shapes) // ph,
            max(s[3] for s in shapes) // pw,
        )
        max_pos = tuple(args.max_pos) if args.max_pos else need
        cfg = preset(
            args.preset,
            in_channels=int(latent.shape[0]),
            max_pos=max_pos,
            text_dims={k: int(s.shape[-1]) for k, (s, _) in text.items()},
        )
        torch.manual_seed(args.seed)  # the same initial weights on every rank
        model: Any = MovieGenTransformer(cfg)
        if args.grow_from:  # a new stage: earlier weights, larger position tables
            small = preset(
                args.preset,
                in_channels=cfg.in_channels,
                max_pos=_stored_max_pos(args.grow_from),
                text_dims=dict(cfg.text_dims),
            )
            prev: Any = MovieGenTransformer(small)
            FlowMatchingTrainer(prev, ema_decay=args.ema).load_checkpoint(args.grow_from)
            model = grow_position_tables(prev, max_pos)
        device = torch.device(args.device)
        model = model.to(device)
        mesh = make_mesh(args.dp, tp=args.tp, cp=args.cp, device_type=device.type)
        parallelize(
            model,
            mesh,
            mp_policy=bf16_policy() if args.bf16 else None,
            activation_checkpointing=None if args.ac == "none" else args.ac,
        )
        trainer = FlowMatchingTrainer(
            model,
            lr=args.lr,
            warmup_steps=args.warmup,
            total_steps=args.steps if args.cosine else None,
            max_grad_norm=args.max_grad_norm,
            ema_decay=args.ema,
            cfg_dropout=args.cfg_dropout,
            seed=args.seed,
            mesh=mesh,
        )
        dp_rank, dp = data_parallel_rank(mesh)
        sampler = DistributedBucketSampler(
            shapes, args.batch, num_replicas=dp, rank=dp_rank, seed=args.seed
        )
        out = Path(args.out)
        latest = out / "latest"
        if latest.is_file():
            trainer.load_checkpoint(out / latest.read_text().strip(), data=sampler)
            log.info("resumed at step %d", trainer.step_count)
        batches = _batches(cache, sampler, trainer, args.sample_latents)
        stop = args.steps if args.stop_at is None else min(args.steps, args.stop_at)
        while trainer.step_count < stop:
            n = min(args.ckpt_every, stop - trainer.step_count)
            trainer.fit(batches, n, show_progress=dist.get_rank() == 0)
            name = f"step-{trainer.step_count:08d}"
            trainer.save_checkpoint(out / name, data=sampler)
            dist.barrier()
            if dist.get_rank() == 0:
                tmp = out / "latest.tmp"
                tmp.write_text(name)
                tmp.replace(latest)
        if trainer.skipped_steps:
            log.warning(
                "%d steps were skipped (non-finite loss or gradient)", trainer.skipped_steps
            )
    finally:
        if own_group:
            dist.destroy_process_group()
    return 0


def _stored_max_pos(path: str) -> tuple[int, int, int]:
    """Position-table sizes of a checkpoint (from its stored tensor shapes)."""
    import torch.distributed.checkpoint as dcp

    meta = dcp.FileSystemReader(path).read_metadata().state_dict_metadata
    sizes = [int(meta[f"model.pos_{a}"].size[0]) for a in "thw"]  # type: ignore[union-attr]
    return sizes[0], sizes[1], sizes[2]


if __name__ == "__main__":  # pragma: no cover
    logging.basicConfig(level=logging.INFO)
    raise SystemExit(main())
