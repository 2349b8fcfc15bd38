"""A flow-matching trainer for one process or a sharded mesh.

bf16 autocast, gradient accumulation, a sharded EMA, warmup + cosine LR, joint guidance
dropout, a step guard (non-finite loss or gradient norm: the step is skipped and counted),
gradient clipping that is exact on ``DTensor`` shards, single-file checkpoints for
unsharded models and ``torch.distributed.checkpoint`` (DCP) checkpoints for any sharding,
in plain PyTorch or on a Hugging Face ``accelerate.Accelerator`` (optional ``train`` extra).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from papershelf.core import progress
from papershelf.core.validation import check_int, check_real
from papershelf.moviegen.flow import SIGMA_MIN, flow_matching_loss, sample_t_logit_normal
from papershelf.moviegen.text import TextContext
from papershelf.moviegen.train.guidance import guidance_dropout
from papershelf.moviegen.train.parallel import data_parallel_rank

if TYPE_CHECKING:
    from accelerate import Accelerator

__all__ = ["EMA", "FlowMatchingTrainer"]

log = logging.getLogger(__name__)


def _is_dtensor(x: Any) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(x, DTensor)


def _local(x: Tensor) -> Tensor:
    """The local shard of a DTensor (a view of its storage under no_grad), else ``x``."""
    return x.to_local() if _is_dtensor(x) else x  # type: ignore[attr-defined]


class EMA:
    """Exponential moving average of a model's floating-point parameters, kept as shards.

    The average lives beside the parameters with the same layout: for a model sharded by
    :func:`~papershelf.moviegen.train.parallelize` every entry is a ``DTensor`` holding this
    rank's shard only (no full copy of the model anywhere), and the update is one
    ``torch._foreach_lerp_`` over the local shards.

    Parameters
    ----------
    model : nn.Module
    decay : float
        In [0, 1): ``ema <- decay * ema + (1 - decay) * param`` after every optimizer step.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        self.decay = check_real("ema_decay", decay, low=0.0, high=1.0, inclusive=(True, False))
        self._source = model
        with torch.no_grad():
            self.shadow: dict[str, Tensor] = {
                n: p.detach().clone() for n, p in model.named_parameters() if p.is_floating_point()
            }

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One EMA step towards ``model``'s current parameters."""
        params = dict(model.named_parameters())
        names = list(self.shadow)
        dst = [_local(self.shadow[n]) for n in names]
        src = [_local(params[n].detach()).to(d.dtype) for n, d in zip(names, dst)]
        torch._foreach_lerp_(dst, src, 1.0 - self.decay)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> nn.Module:
        """Write the averaged weights into ``model`` (same names and sharding); returns it."""
        params = dict(model.named_parameters())
        for n, s in self.shadow.items():
            _local(params[n].data).copy_(_local(s))
        return model

    @property
    def model(self) -> nn.Module:
        """A fresh unsharded copy of the model holding the averaged weights (for sampling).

        For a sharded model use :meth:`copy_to` on a model of the same layout, or load the
        ``"ema"`` part of a checkpoint into an unsharded model.
        """
        if any(_is_dtensor(s) for s in self.shadow.values()):
            raise RuntimeError(
                "the EMA of a sharded model has no unsharded copy; use ema.copy_to(model) or "
                "load the checkpoint's EMA into an unsharded model"
            )
        return self.copy_to(copy.deepcopy(self._source)).eval().requires_grad_(False)

    def parameters(self) -> Iterator[Tensor]:
        """The averaged tensors in the model's parameter order."""
        return iter(self.shadow.values())

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "shadow": self.shadow}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.decay = float(state["decay"])
        shadow = state["shadow"] if "shadow" in state else _params_only(state["model"], self)
        if set(shadow) != set(self.shadow):
            raise ValueError("EMA state names different parameters than this model")
        for n, s in shadow.items():
            _local(self.shadow[n]).copy_(_local(s))


def _params_only(model_state: dict[str, Tensor], ema: EMA) -> dict[str, Tensor]:
    """An EMA saved as a whole model's state dict (older checkpoints): its parameters."""
    return {n: model_state[n] for n in ema.shadow}


def _class_name(model: nn.Module) -> str:
    """The model's own class name (not FSDP2's generated ``FSDP<name>`` subclass)."""
    from torch.distributed.fsdp import FSDPModule

    for cls in type(model).__mro__:
        if not issubclass(cls, FSDPModule):
            return cls.__name__
    return type(model).__name__


@contextmanager
def _single_process_ok() -> Iterator[None]:
    """DCP warns that it saves / loads in one process when no group exists: that is intended."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def _json_tensor(obj: Any) -> Tensor:
    return torch.frombuffer(bytearray(json.dumps(obj).encode()), dtype=torch.uint8).clone()


def _from_json_tensor(t: Tensor) -> Any:
    return json.loads(bytes(t.tolist()).decode())


class FlowMatchingTrainer:
    """Train a velocity model with Movie Gen's flow-matching objective.

    Parameters
    ----------
    model : nn.Module
        ``model(x_t, t, text)`` -> velocity (e.g. :class:`MovieGenTransformer`, possibly
        sharded with :func:`~papershelf.moviegen.train.parallelize`).
    lr : float
        Peak learning rate of AdamW.
    weight_decay, betas : AdamW settings.
    warmup_steps : int
        Linear warmup from 0.
    total_steps : int, optional
        Cosine decay to 10% of ``lr`` at this step (constant after warmup if None).
    grad_accum : int, optional
        Micro-batches per optimizer step: each batch is split into this many chunks
        (default 1, or the accelerator's ``gradient_accumulation_steps``). On a sharded
        model gradients are reduced once, on the last micro-batch.
    max_grad_norm : float, optional
        Clip the global gradient norm (computed exactly over all shards) to this value.
    ema_decay : float, optional
        Keep a sharded EMA of the weights (``trainer.ema``).
    mixed_precision : {"no", "bf16"}
        bf16 autocast for the forward pass (weights and optimizer stay float32). With an
        ``accelerator`` the accelerator's own ``mixed_precision`` is used instead; on a
        mesh prefer FSDP's :func:`~papershelf.moviegen.train.bf16_policy`.
    cfg_dropout : float
        Probability that a sample's *whole* text context is nulled (all encoders jointly),
        the unconditional input of guided sampling (0.1; the paper does not state it).
    cfg_dropout_per_encoder : float
        Extra independent drop rate per encoder (default 0).
    sigma_min : float
    seed : int
        Seed of the trainer's generator (noise, times, dropout), saved in checkpoints. Each
        data-parallel shard draws from ``seed + 1_000_003 * dp_rank``; ranks that share a
        batch (context / tensor parallel) share the draws.
    accelerator : accelerate.Accelerator, optional
        Run on Hugging Face ``accelerate`` (``pip install papershelf-moviegen[train]``):
        the model and optimizer go through ``accelerator.prepare``, the backward pass
        through ``accelerator.backward`` inside ``accelerator.accumulate``, clipping through
        ``accelerator.clip_grad_norm_`` and mixed precision from the accelerator.
    mesh : DeviceMesh, optional
        The mesh the model was parallelized on (taken from the model when
        :func:`~papershelf.moviegen.train.parallelize` made it). Decides the data-parallel
        rank of the generator and that losses and norms are reduced over the ranks.

    Attributes
    ----------
    step_count : int
        Optimizer steps taken.
    skipped_steps : int
        Steps skipped by the guard (non-finite loss or gradient norm); their weights,
        optimizer state, EMA and LR schedule are untouched.
    losses : list of float
        Mean loss of every step (over the data-parallel ranks), skipped ones included.
    grad_norms : list of float
        Global gradient norm before clipping of every step.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.95),
        warmup_steps: int = 0,
        total_steps: int | None = None,
        grad_accum: int | None = None,
        max_grad_norm: float | None = 1.0,
        ema_decay: float | None = None,
        mixed_precision: str = "no",
        cfg_dropout: float = 0.1,
        cfg_dropout_per_encoder: float = 0.0,
        sigma_min: float = SIGMA_MIN,
        seed: int = 0,
        accelerator: Accelerator | None = None,
        mesh: Any = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if accelerator is not None:
            acc_steps = int(accelerator.gradient_accumulation_steps)
            if grad_accum is None:
                grad_accum = acc_steps
            elif grad_accum != acc_steps:
                raise ValueError(
                    f"grad_accum={grad_accum} disagrees with the accelerator's "
                    f"gradient_accumulation_steps={acc_steps}; set one of them"
                )
            if mixed_precision != "no" and mixed_precision != accelerator.mixed_precision:
                raise ValueError(
                    f"mixed_precision={mixed_precision!r} disagrees with the accelerator's "
                    f"{accelerator.mixed_precision!r}; set it on the Accelerator"
                )
        self.grad_accum = check_int("grad_accum", 1 if grad_accum is None else grad_accum, low=1)
        if mixed_precision not in ("no", "bf16"):
            raise ValueError(f"mixed_precision must be 'no' or 'bf16', got {mixed_precision!r}")
        self.lr = check_real("lr", lr, low=0.0, inclusive=(False, True))
        self.warmup_steps = check_int("warmup_steps", warmup_steps, low=0)
        self.total_steps = None if total_steps is None else check_int("total_steps", total_steps)
        self.max_grad_norm = (
            None
            if max_grad_norm is None
            else check_real("max_grad_norm", max_grad_norm, low=0.0, inclusive=(False, True))
        )
        self.cfg_dropout = check_real("cfg_dropout", cfg_dropout, low=0.0, high=1.0)
        self.cfg_dropout_per_encoder = check_real(
            "cfg_dropout_per_encoder", cfg_dropout_per_encoder, low=0.0, high=1.0
        )
        self.sigma_min = check_real("sigma_min", sigma_min, low=0.0, high=1.0)
        check_real("weight_decay", weight_decay, low=0.0)
        self.seed = check_int("seed", seed, low=0)
        self.accelerator = accelerator
        self.mixed_precision = mixed_precision
        self.mesh = mesh if mesh is not None else getattr(model, "_papershelf_mesh", None)
        self.model = model
        self._sharded = any(_is_dtensor(p) for p in model.parameters())
        self._distributed = self.mesh is not None or self._sharded
        self.dp_rank, self.dp_size = data_parallel_rank(self.mesh) if self._distributed else (0, 1)
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=self.lr, betas=betas, weight_decay=weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.ema = EMA(model, ema_decay) if ema_decay is not None else None
        if accelerator is not None:
            self.model, self.optimizer = accelerator.prepare(model, self.optimizer)
        self.generator = torch.Generator().manual_seed(self.seed + 1_000_003 * self.dp_rank)
        self.step_count = 0
        self.skipped_steps = 0
        self.losses: list[float] = []
        self.grad_norms: list[float] = []

    def _lr_factor(self, step: int) -> float:
        if self.warmup_steps and step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.total_steps is None:
            return 1.0
        frac = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))

    @property
    def unwrapped_model(self) -> nn.Module:
        """The model without any accelerator (DDP / compile) wrapper."""
        if self.accelerator is None:
            return self.model
        return self.accelerator.unwrap_model(self.model)

    def _autocast(self, device: torch.device) -> Any:
        if self.accelerator is not None:
            return nullcontext()  # the prepared model's forward autocasts itself
        if self.mixed_precision == "bf16":
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return nullcontext()

    # ------------------------------------------------------------------ inputs
    def _check_batch(self, x1: Tensor, text: TextContext) -> None:
        if not isinstance(x1, Tensor):
            raise TypeError(f"x1 must be a torch.Tensor of latents, got {type(x1).__name__}")
        if not isinstance(text, TextContext):
            raise TypeError(f"text must be a TextContext, got {type(text).__name__}")
        if x1.ndim != 5:
            raise ValueError(f"x1 must be latents of shape (B, C, T, H, W), got {tuple(x1.shape)}")
        B = x1.shape[0]
        if B == 0 or x1.numel() == 0:
            raise ValueError(f"x1 is an empty batch (shape {tuple(x1.shape)})")
        if not x1.is_floating_point():
            raise TypeError(
                f"x1 must be floating-point latents, got {x1.dtype} (encode videos with the "
                "TAE first; pixels go to the TAE as float in [-1, 1])"
            )
        wdtype = next(iter(self.unwrapped_model.parameters())).dtype
        if x1.dtype != wdtype:
            raise TypeError(
                f"x1 must have the model's dtype {wdtype}, got {x1.dtype} "
                f"(cast with x1.to({wdtype}); bf16 compute comes from mixed_precision)"
            )
        if B % self.grad_accum:
            raise ValueError(f"batch size {B} must be divisible by grad_accum {self.grad_accum}")
        if text.batch_size != B:
            raise ValueError(f"text has batch size {text.batch_size}, x1 has {B}")
        if not bool(torch.isfinite(x1).all()):
            raise ValueError("x1 contains NaN or inf")
        for name, s in text.states.items():
            if not bool(torch.isfinite(s).all()):
                raise ValueError(f"text.states[{name!r}] contains NaN or inf")

    # ------------------------------------------------------------------ step
    def step(self, x1: Tensor, text: TextContext) -> float:
        """One optimizer step on a batch of clean latents; returns the mean loss.

        Parameters
        ----------
        x1 : Tensor, shape (B, C, T, H, W)
            Clean latents of this data-parallel shard (B divisible by ``grad_accum``), in
            the model's parameter dtype, finite.
        text : TextContext
            Context of the B prompts.

        Returns
        -------
        float
            The loss averaged over the data-parallel ranks; NaN or inf when the step guard
            skipped the step (see ``skipped_steps``).
        """
        self._check_batch(x1, text)
        if self.accelerator is not None:
            return self._accelerate_step(x1, text)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        mb = x1.shape[0] // self.grad_accum
        total = 0.0
        sync = getattr(self.model, "set_requires_gradient_sync", None)
        for i in range(self.grad_accum):
            if sync is not None:  # FSDP2: reduce-scatter once, after the last micro-batch
                sync(i == self.grad_accum - 1)
            sl = slice(i * mb, (i + 1) * mb)
            with self._autocast(x1.device):
                loss = self._micro_batch_loss(x1, text, sl)
            (loss / self.grad_accum).backward()
            total += float(loss.detach()) / self.grad_accum
        return self._guarded_update(total)

    def _micro_batch_loss(self, x1: Tensor, text: TextContext, sl: slice) -> Tensor:
        x = x1[sl]
        g = self.generator
        x0 = torch.randn(x.shape, generator=g, dtype=torch.float32).to(x)
        t = sample_t_logit_normal(x.shape[0], generator=g).to(x.device)
        cond = guidance_dropout(
            text.index(sl),
            self.cfg_dropout,
            per_encoder=self.cfg_dropout_per_encoder,
            generator=g,
        )
        return flow_matching_loss(
            self.model, x, cond, sigma_min=self.sigma_min, cfg_dropout=0.0, x0=x0, t=t
        )

    def _grads(self) -> list[Tensor]:
        return [p.grad for p in self.model.parameters() if p.grad is not None]

    @torch.no_grad()
    def _global_norm_and_loss(self, loss: float) -> tuple[float, float]:
        """Exact global gradient norm over all shards and the loss averaged over ranks.

        Each rank adds the squared norm of its local shards divided by the number of
        ranks holding a copy of each element (``world / shards``), then one all-reduce
        sums the world: exact for any mix of FSDP, TP and replicated parameters.
        """
        import torch.distributed as dist

        grads = self._grads()
        distributed = self._distributed and dist.is_available() and dist.is_initialized()
        world = dist.get_world_size() if distributed else 1
        acc = torch.zeros((), dtype=torch.float64)
        for g in grads:
            local = _local(g)
            copies = float(world)
            if _is_dtensor(g):
                shards = 1
                for size, pl in zip(g.device_mesh.shape, g.placements):  # type: ignore[attr-defined]
                    shards *= size if pl.is_shard() else 1
                copies = world / shards
            acc += local.detach().double().square().sum().cpu() / copies
        if not distributed:
            return math.sqrt(float(acc)), loss
        dev = grads[0].device if grads else torch.device("cpu")
        if dist.get_backend() == "nccl":
            dev = torch.device("cuda", torch.cuda.current_device())
        buf = torch.tensor([float(acc), loss], dtype=torch.float64, device=dev)
        dist.all_reduce(buf)
        return math.sqrt(float(buf[0])), float(buf[1]) / world

    def _guarded_update(self, loss: float) -> float:
        norm, loss = self._global_norm_and_loss(loss)
        self.grad_norms.append(norm)
        if not (math.isfinite(norm) and math.isfinite(loss)):
            return self._skip(loss, norm)
        if self.max_grad_norm is not None:
            coef = min(1.0, self.max_grad_norm / (norm + 1e-6))
            if coef < 1.0:
                torch._foreach_mul_([_local(g) for g in self._grads()], coef)
        self.optimizer.step()
        return self._finish_step(loss)

    def _skip(self, loss: float, norm: float) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        self.skipped_steps += 1
        self.losses.append(loss)
        log.warning(
            "step %d skipped: non-finite loss %s or gradient norm %s (%d skipped so far)",
            self.step_count + 1,
            loss,
            norm,
            self.skipped_steps,
        )
        return loss

    def _finish_step(self, total: float) -> float:
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.unwrapped_model)
        self.step_count += 1
        self.losses.append(total)
        return total

    def _accelerate_step(self, x1: Tensor, text: TextContext) -> float:
        """The same step through ``accelerator.accumulate`` / ``accelerator.backward``."""
        acc = self.accelerator
        assert acc is not None
        x1, text = x1.to(acc.device), text.to(acc.device)
        self.model.train()
        mb = x1.shape[0] // self.grad_accum
        total = 0.0
        skipped = False
        for i in range(self.grad_accum):
            sl = slice(i * mb, (i + 1) * mb)
            with acc.accumulate(self.model):
                loss = self._micro_batch_loss(x1, text, sl)
                acc.backward(loss)  # divides by gradient_accumulation_steps
                total += float(loss.detach()) / self.grad_accum
                if acc.sync_gradients:
                    norm = acc.clip_grad_norm_(
                        self.model.parameters(),
                        self.max_grad_norm if self.max_grad_norm is not None else math.inf,
                    )
                    norm_f = float(norm) if norm is not None else 0.0
                    self.grad_norms.append(norm_f)
                    skipped = not (math.isfinite(norm_f) and math.isfinite(total))
                    if not skipped:
                        self.optimizer.step()  # a no-op until the last micro-batch
                self.optimizer.zero_grad(set_to_none=True)
        if not acc.sync_gradients:
            raise RuntimeError(
                "the accelerator's gradient accumulation counter is out of step with the "
                "trainer; give the trainer an Accelerator of its own"
            )
        if skipped:
            return self._skip(total, self.grad_norms[-1])
        return self._finish_step(total)

    def fit(
        self,
        batches: Iterable[tuple[Tensor, TextContext]],
        steps: int,
        log_every: int = 50,
        show_progress: bool | None = None,
        desc: str = "train",
    ) -> list[float]:
        """Run ``steps`` optimizer steps over ``batches`` (an iterator of (x1, text)).

        Returns the per-step losses of this call; progress shows the running loss.
        """
        steps = check_int("steps", steps, low=0)
        log_every = check_int("log_every", log_every, low=1)
        it: Iterator[tuple[Tensor, TextContext]] = iter(batches)
        bar = progress(
            range(steps),
            total=steps,
            desc=desc,
            disable=None if show_progress is None else not show_progress,
        )
        out: list[float] = []
        for _ in bar:
            try:
                x1, text = next(it)
            except StopIteration:
                raise ValueError(f"batches ran out after {len(out)} of {steps} steps") from None
            loss = self.step(x1, text)
            out.append(loss)
            if (self.step_count + self.skipped_steps) % log_every == 0:
                recent = [v for v in out[-log_every:] if math.isfinite(v)]
                mean = sum(recent) / max(1, len(recent))
                log.info("step %d loss %.4f", self.step_count, mean)
                bar.set_postfix(loss=f"{mean:.3f}")
        return out

    # ------------------------------------------------------------------ single-file state
    def _meta(self) -> dict[str, Any]:
        model = self.unwrapped_model
        sched = {k: v for k, v in self.scheduler.state_dict().items() if k not in ("lr_lambdas",)}
        groups = [
            {k: v for k, v in g.items() if k in ("lr", "initial_lr")}
            for g in self.optimizer.param_groups
        ]
        return {
            "model_class": _class_name(model),
            "num_params": sum(p.numel() for p in model.parameters()),
            "step_count": self.step_count,
            "skipped_steps": self.skipped_steps,
            "scheduler": sched,
            "param_groups": groups,
            "ema_decay": None if self.ema is None else self.ema.decay,
        }

    def _check_meta(self, meta: dict[str, Any]) -> None:
        model = self.unwrapped_model
        n = sum(p.numel() for p in model.parameters())
        if meta.get("model_class") != _class_name(model) or meta.get("num_params") != n:
            raise ValueError(
                f"checkpoint is for {meta.get('model_class')} with {meta.get('num_params')} "
                f"parameters, this trainer holds {_class_name(model)} with {n}"
            )
        if (meta.get("ema_decay") is None) != (self.ema is None):
            raise ValueError("checkpoint and trainer disagree on whether an EMA is kept")

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly (unsharded models; see :meth:`save_checkpoint`)."""
        if self._sharded:
            raise RuntimeError(
                "the model is sharded: a single state dict would hold only this rank's "
                "shards; use trainer.save_checkpoint(dir) (torch.distributed.checkpoint)"
            )
        model = self.unwrapped_model
        meta = self._meta()
        return {
            "model": model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "generator": self.generator.get_state(),
            "step_count": self.step_count,
            "skipped_steps": self.skipped_steps,
            "losses": list(self.losses),
            "model_class": meta["model_class"],
            "num_params": meta["num_params"],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._check_meta(
            {
                "model_class": state.get("model_class"),
                "num_params": state.get("num_params"),
                "ema_decay": None if state.get("ema") is None else state["ema"]["decay"],
            }
        )
        self.unwrapped_model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.generator.set_state(state["generator"])
        self.step_count = int(state["step_count"])
        self.skipped_steps = int(state.get("skipped_steps", 0))
        self.losses = list(state["losses"])

    def save(self, path: str | Path) -> Path:
        """Write a single-file checkpoint of an unsharded model (atomically).

        For sharded models (and for any model at scale) use :meth:`save_checkpoint`.
        """
        path = Path(path)
        state = self.state_dict()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save(state, tmp)
        tmp.replace(path)
        return path

    def load(self, path: str | Path) -> FlowMatchingTrainer:
        """Resume from a checkpoint written by :meth:`save`; returns self.

        Loaded with ``torch.load(weights_only=True)``: tensors and plain containers only,
        never code.
        """
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return self

    # ------------------------------------------------------------------ DCP
    def _dcp_tensors(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Model and optimizer state as tensors only (sharded as the model is)."""
        from torch.distributed.checkpoint.state_dict import get_state_dict

        model_sd, optim_sd = get_state_dict(self.unwrapped_model, self.optimizer)
        return model_sd, optim_sd

    def save_checkpoint(self, path: str | Path, *, data: Any = None) -> Path:
        """Write a ``torch.distributed.checkpoint`` directory (call on every rank).

        Layout (one DCP directory, any sharding; tensors only, no pickled objects):

        - ``model.*``: parameters (each rank writes its own shards),
        - ``optim.state.*``: AdamW moments and step counts,
        - ``ema.*``: the EMA shards,
        - ``trainer.meta``: step, skipped steps, LR schedule, learning rates (JSON bytes),
        - ``trainer.losses``: the loss curve,
        - ``rng.rank<r>``: each rank's generator state,
        - ``data.rank<r>``: ``data.state_dict()`` of each rank's sampler (JSON), if given.

        Parameters
        ----------
        path : str or Path
            Directory (created).
        data : object with ``state_dict()``, optional
            The data position, e.g. a :class:`~papershelf.moviegen.data_video.DistributedBucketSampler`.
        """
        import torch.distributed as dist
        import torch.distributed.checkpoint as dcp

        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        model_sd, optim_sd = self._dcp_tensors()
        state: dict[str, Any] = {
            "model": model_sd,
            "optim": {"state": optim_sd["state"]},
            "trainer": {
                "meta": _json_tensor(self._meta()),
                "losses": torch.tensor(self.losses, dtype=torch.float64),
            },
            f"rng.rank{rank}": self.generator.get_state(),
        }
        if self.ema is not None:
            state["ema"] = self.ema.shadow
        if data is not None:
            state[f"data.rank{rank}"] = _json_tensor(data.state_dict())
        path = Path(path)
        with _single_process_ok():
            dcp.save(state, checkpoint_id=str(path))
        return path

    def load_checkpoint(self, path: str | Path, *, data: Any = None) -> FlowMatchingTrainer:
        """Resume from :meth:`save_checkpoint` on any number of ranks / any sharding.

        A checkpoint of a sharded run loads into an unsharded model and the reverse
        (``torch.distributed.checkpoint`` reshards). Only tensors are read (nothing is
        unpickled). ``data`` gets ``load_state_dict`` of this rank's saved position (or rank
        0's when the checkpoint has fewer ranks).
        """
        import torch.distributed as dist
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import set_state_dict

        path = Path(path)
        if not path.is_dir():
            raise ValueError(f"path must be a checkpoint directory, got {str(path)!r}")
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        stored = dcp.FileSystemReader(str(path)).read_metadata().state_dict_metadata

        def size(key: str) -> tuple[int, ...]:
            return tuple(stored[key].size)  # type: ignore[union-attr]

        meta_t = torch.empty(size("trainer.meta"), dtype=torch.uint8)
        with _single_process_ok():
            dcp.load({"trainer": {"meta": meta_t}}, checkpoint_id=str(path))
        meta = _from_json_tensor(meta_t)
        self._check_meta(meta)

        model_sd, optim_sd = self._dcp_tensors()
        rng_key = f"rng.rank{rank}" if f"rng.rank{rank}" in stored else "rng.rank0"
        state: dict[str, Any] = {
            "model": model_sd,
            "optim": {"state": optim_sd["state"]},
            "trainer": {"losses": torch.empty(size("trainer.losses"), dtype=torch.float64)},
            rng_key: torch.empty(size(rng_key), dtype=torch.uint8),
        }
        if self.ema is not None:
            state["ema"] = self.ema.shadow  # loaded in place, shard by shard
        data_key = None
        if data is not None:
            data_key = f"data.rank{rank}" if f"data.rank{rank}" in stored else "data.rank0"
            if data_key not in stored:
                raise ValueError("the checkpoint holds no data position; save with data=...")
            state[data_key] = torch.empty(size(data_key), dtype=torch.uint8)
        with _single_process_ok():
            dcp.load(state, checkpoint_id=str(path))
        optim_sd["state"] = state["optim"]["state"]
        set_state_dict(
            self.unwrapped_model,
            self.optimizer,
            model_state_dict=state["model"],
            optim_state_dict=optim_sd,
        )
        for g, saved in zip(self.optimizer.param_groups, meta["param_groups"]):
            g.update(saved)
        sched = dict(meta["scheduler"], lr_lambdas=[None] * len(self.optimizer.param_groups))
        self.scheduler.load_state_dict(sched)
        if self.ema is not None:
            self.ema.decay = float(meta["ema_decay"])
        if rng_key == f"rng.rank{rank}":
            self.generator.set_state(state[rng_key])
        else:  # a different layout: continue each shard's own stream from the saved step
            log.warning("checkpoint has no generator of rank %d; reseeding it", rank)
        self.step_count = int(meta["step_count"])
        self.skipped_steps = int(meta["skipped_steps"])
        self.losses = state["trainer"]["losses"].tolist()
        if data is not None and data_key is not None:
            data.load_state_dict(_from_json_tensor(state[data_key]))
        return self
