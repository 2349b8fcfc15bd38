"""A flow-matching trainer: bf16 autocast, gradient accumulation, EMA, warmup + cosine LR,
checkpoint save and exact resume (model, optimizer, EMA, scheduler and RNG state), in plain
PyTorch or on a Hugging Face ``accelerate.Accelerator`` (optional ``train`` extra)."""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from papershelf.core import progress
from papershelf.moviegen.flow import SIGMA_MIN, flow_matching_loss
from papershelf.moviegen.text import TextContext

if TYPE_CHECKING:
    from accelerate import Accelerator

__all__ = ["EMA", "FlowMatchingTrainer"]

log = logging.getLogger(__name__)


class EMA:
    """Exponential moving average of a model's floating-point parameters."""

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for pe, p in zip(self.model.parameters(), model.parameters()):
            pe.lerp_(p.detach().to(pe.dtype), 1.0 - self.decay)

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "model": self.model.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.decay = state["decay"]
        self.model.load_state_dict(state["model"])


class FlowMatchingTrainer:
    """Train a velocity model with Movie Gen's flow-matching objective.

    Parameters
    ----------
    model : nn.Module
        ``model(x_t, t, text)`` -> velocity (e.g. :class:`MovieGenTransformer`, possibly
        sharded with :func:`~papershelf.moviegen.train.shard_model`).
    lr : float
        Peak learning rate of AdamW.
    weight_decay, betas : AdamW settings.
    warmup_steps : int
        Linear warmup from 0.
    total_steps : int, optional
        Cosine decay to 10% of ``lr`` at this step (constant after warmup if None).
    grad_accum : int, optional
        Micro-batches per optimizer step: each batch is split into this many chunks
        (default 1, or the accelerator's ``gradient_accumulation_steps``).
    max_grad_norm : float, optional
        Gradient clipping.
    ema_decay : float, optional
        Keep an EMA copy of the weights (``trainer.ema.model``).
    mixed_precision : {"no", "bf16"}
        bf16 autocast for the forward pass (weights and optimizer stay float32). With an
        ``accelerator`` the accelerator's own ``mixed_precision`` is used instead.
    cfg_dropout : float
        Text dropout for classifier-free guidance (0.1; the paper does not state it).
    sigma_min : float
    seed : int
        Seed of the trainer's generator (noise, times, dropout), saved in checkpoints.
    accelerator : accelerate.Accelerator, optional
        Run on Hugging Face ``accelerate`` (``pip install papershelf-moviegen[train]``):
        the model and optimizer go through ``accelerator.prepare`` (DDP / FSDP / DeepSpeed as
        the accelerator is configured), the backward pass through ``accelerator.backward``
        inside ``accelerator.accumulate``, clipping through ``accelerator.clip_grad_norm_``
        and mixed precision from the accelerator. Batches are moved to
        ``accelerator.device``. Without it (the default) the trainer is plain PyTorch.
        ``trainer.model`` is the prepared model; checkpoints hold the unwrapped weights and
        load into either path.
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
        sigma_min: float = SIGMA_MIN,
        seed: int = 0,
        accelerator: Accelerator | None = None,
    ) -> None:
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
        if grad_accum is None:
            grad_accum = 1
        if grad_accum < 1:
            raise ValueError(f"grad_accum must be >= 1, got {grad_accum}")
        if mixed_precision not in ("no", "bf16"):
            raise ValueError(f"mixed_precision must be 'no' or 'bf16', got {mixed_precision!r}")
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        self.accelerator = accelerator
        self.model = model
        self.lr, self.warmup_steps, self.total_steps = lr, warmup_steps, total_steps
        self.grad_accum, self.max_grad_norm = grad_accum, max_grad_norm
        self.mixed_precision, self.cfg_dropout, self.sigma_min = (
            mixed_precision,
            cfg_dropout,
            sigma_min,
        )
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=lr, betas=betas, weight_decay=weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.ema = EMA(model, ema_decay) if ema_decay is not None else None
        if accelerator is not None:
            self.model, self.optimizer = accelerator.prepare(model, self.optimizer)
        self.generator = torch.Generator().manual_seed(seed)
        self.step_count = 0
        self.losses: list[float] = []

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

    def step(self, x1: Tensor, text: TextContext) -> float:
        """One optimizer step on a batch of clean latents; returns the mean loss.

        Parameters
        ----------
        x1 : Tensor, shape (B, C, T, H, W)
            Clean latents (B divisible by ``grad_accum``).
        text : TextContext
            Context of the B prompts.
        """
        B = x1.shape[0]
        if B % self.grad_accum:
            raise ValueError(f"batch size {B} must be divisible by grad_accum {self.grad_accum}")
        if self.accelerator is not None:
            return self._accelerate_step(x1, text)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        mb = B // self.grad_accum
        total = 0.0
        for i in range(self.grad_accum):
            sl = slice(i * mb, (i + 1) * mb)
            with self._autocast(x1.device):
                loss = self._micro_batch_loss(x1, text, sl)
            (loss / self.grad_accum).backward()
            total += float(loss.detach()) / self.grad_accum
        if self.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
        self.optimizer.step()
        return self._finish_step(total)

    def _micro_batch_loss(self, x1: Tensor, text: TextContext, sl: slice) -> Tensor:
        return flow_matching_loss(
            self.model,
            x1[sl],
            text.index(sl),
            sigma_min=self.sigma_min,
            cfg_dropout=self.cfg_dropout,
            generator=self.generator,
        )

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
        for i in range(self.grad_accum):
            sl = slice(i * mb, (i + 1) * mb)
            with acc.accumulate(self.model):
                loss = self._micro_batch_loss(x1, text, sl)
                acc.backward(loss)  # divides by gradient_accumulation_steps
                total += float(loss.detach()) / self.grad_accum
                if acc.sync_gradients and self.max_grad_norm is not None:
                    acc.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
                self.optimizer.step()  # a no-op until the last micro-batch
                self.optimizer.zero_grad(set_to_none=True)
        if not acc.sync_gradients:
            raise RuntimeError(
                "the accelerator's gradient accumulation counter is out of step with the "
                "trainer; give the trainer an Accelerator of its own"
            )
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
        it: Iterator[tuple[Tensor, TextContext]] = iter(batches)
        bar = progress(
            range(steps),
            total=steps,
            desc=desc,
            disable=None if show_progress is None else not show_progress,
        )
        out = []
        for _ in bar:
            x1, text = next(it)
            loss = self.step(x1, text)
            out.append(loss)
            if self.step_count % log_every == 0:
                recent = sum(out[-log_every:]) / len(out[-log_every:])
                log.info("step %d loss %.4f", self.step_count, recent)
                bar.set_postfix(loss=f"{recent:.3f}")
        return out

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly."""
        model = self.unwrapped_model
        return {
            "model": model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "generator": self.generator.get_state(),
            "step_count": self.step_count,
            "losses": list(self.losses),
            "model_class": type(model).__name__,
            "num_params": sum(p.numel() for p in model.parameters()),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        model = self.unwrapped_model
        n = sum(p.numel() for p in model.parameters())
        if state.get("model_class") != type(model).__name__ or state.get("num_params") != n:
            raise ValueError(
                f"checkpoint is for {state.get('model_class')} with {state.get('num_params')} "
                f"parameters, this trainer holds {type(model).__name__} with {n}"
            )
        model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if (state["ema"] is None) != (self.ema is None):
            raise ValueError("checkpoint and trainer disagree on whether an EMA is kept")
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.generator.set_state(state["generator"])
        self.step_count = state["step_count"]
        self.losses = list(state["losses"])

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint (atomically: a temporary file renamed into place)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save(self.state_dict(), tmp)
        tmp.replace(path)
        return path

    def load(self, path: str | Path) -> FlowMatchingTrainer:
        """Resume from a checkpoint written by :meth:`save`; returns self."""
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=False))
        return self
