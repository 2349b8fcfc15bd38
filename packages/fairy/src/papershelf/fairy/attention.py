r"""Anchor-based cross-frame attention (Fairy, Sec. 3.2) as a diffusers attention processor.

Every self-attention layer (``attn1``) of the editing UNet is replaced. With the frame's own
query, key and value :math:`Q, K, V` and the cached keys/values of the anchor frames
:math:`K_{anc} = [K_1; \dots; K_A]`, :math:`V_{anc} = [V_1; \dots; V_A]` of the same layer,
the same diffusion step and the same guidance branch,

.. math::

    \mathrm{Attn} = \mathrm{softmax}\!\left(\frac{Q\,[K; K_{anc}]^\top}{\sqrt{d}}\right) [V; V_{anc}].

Anchors themselves attend to all anchors (``record``); text cross-attention (``attn2``) is
untouched. The cache holds ``A`` frames per layer, step and branch, whatever the video length.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import torch
import torch.nn.functional as F

from papershelf.core.validation import check_real

__all__ = [
    "AnchorAttentionState",
    "AnchorAttnProcessor",
    "anchor_attention",
    "anchor_sdpa",
    "install_anchor_attention",
]

log = logging.getLogger(__name__)

Mode = Literal["off", "record", "replay", "joint", "full"]
MODES: tuple[str, ...] = ("off", "record", "replay", "joint", "full")


def _anchor_sdpa(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    anchor_key: torch.Tensor | None,
    anchor_value: torch.Tensor | None,
    *,
    scale: float | None = None,
) -> torch.Tensor:
    b, f, h, s, d = query.shape
    if anchor_key is not None and anchor_value is not None:
        n_anc = anchor_key.shape[2]
        key = torch.cat([key, anchor_key.unsqueeze(1).expand(b, f, h, n_anc, d)], dim=3)
        value = torch.cat([value, anchor_value.unsqueeze(1).expand(b, f, h, n_anc, d)], dim=3)
    out = F.scaled_dot_product_attention(
        query.reshape(b * f, h, s, d),
        key.reshape(b * f, h, key.shape[3], d),
        value.reshape(b * f, h, value.shape[3], d),
        scale=scale,
    )
    return out.reshape(b, f, h, s, d)


def anchor_sdpa(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    anchor_key: torch.Tensor | None,
    anchor_value: torch.Tensor | None,
    *,
    scale: float | None = None,
) -> torch.Tensor:
    r"""Attention of each frame over its own tokens and the anchors' tokens.

    Computes :math:`\mathrm{softmax}(Q [K; K_{anc}]^\top s) [V; V_{anc}]` in one
    ``scaled_dot_product_attention`` call, broadcasting the anchors over the frames.

    Parameters
    ----------
    query, key, value : Tensor, shape (B, F, H, S, d)
        Per-frame queries, keys and values: B independent groups (guidance branches),
        F frames, H heads, S tokens per frame, head size d.
    anchor_key, anchor_value : Tensor, shape (B, H, A*S_a, d), or None
        The anchors' keys and values, shared by every frame of a group. ``None`` gives plain
        per-frame self-attention.
    scale : float, optional
        Logit scale; ``1/sqrt(d)`` by default.

    Returns
    -------
    Tensor, shape (B, F, H, S, d)

    References
    ----------
    Wu et al., "Fairy", CVPR 2024, Eq. (2).
    """
    for name, x in (("query", query), ("key", key), ("value", value)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a tensor, got {type(x).__name__}")
    if query.ndim != 5 or key.shape != value.shape or key.shape[:3] != query.shape[:3]:
        raise ValueError(
            "query, key and value must have shape (B, F, H, S, d) with matching B, F, H; got "
            f"{tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}"
        )
    if key.shape[-1] != query.shape[-1] or query.numel() == 0 or key.shape[3] == 0:
        raise ValueError(
            f"query and key must share a non-empty head size d, got {tuple(query.shape)}, {tuple(key.shape)}"
        )
    b, _, h, _, d = query.shape
    if (anchor_key is None) != (anchor_value is None):
        raise ValueError("anchor_key and anchor_value must both be given or both be None")
    tensors = [query, key, value]
    if anchor_key is not None and anchor_value is not None:
        if anchor_key.ndim != 4 or anchor_key.shape[:2] != (b, h) or anchor_key.shape[-1] != d:
            raise ValueError(
                f"anchor_key must have shape ({b}, {h}, A*S, {d}), got {tuple(anchor_key.shape)}"
            )
        if anchor_value.shape != anchor_key.shape:
            raise ValueError(
                f"anchor_value must have the shape of anchor_key {tuple(anchor_key.shape)}, "
                f"got {tuple(anchor_value.shape)}"
            )
        tensors += [anchor_key, anchor_value]
    if any(not torch.isfinite(t).all() for t in tensors):
        raise ValueError("query, key, value and the anchors must be finite (found NaN or inf)")
    if scale is not None:
        scale = check_real("scale", scale, low=0.0, inclusive=(False, True))
    return _anchor_sdpa(query, key, value, anchor_key, anchor_value, scale=scale)


def _frames_to_anchor_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, A, H, S, d) -> (B, H, A*S, d): all anchors' tokens side by side."""
    b, a, h, s, d = x.shape
    return x.transpose(1, 2).reshape(b, h, a * s, d)


class AnchorAttentionState:
    """Shared state of all anchor-attention processors of one UNet: mode, step counter, cache.

    The cache maps ``(layer name, UNet call index)`` to the anchors' keys and values, each of
    shape ``(branches, heads, A*S, d)``: one entry per layer, per diffusion step and (inside
    the tensor) per guidance branch. The call index counts UNet forwards within one pipeline
    call (set by :meth:`begin`), not timestep values, so schedulers that repeat a timestep
    (Heun) stay aligned; the timestep of every call is recorded and checked on replay.

    Modes
    -----
    ``"off"``
        Plain per-frame self-attention (frame-wise InstructPix2Pix).
    ``"record"``
        The batch holds the anchors only; each attends to all anchors; keys/values are cached.
    ``"replay"``
        Each frame attends to its own tokens plus the cached anchors of the same step.
    ``"joint"``
        The first ``num_anchors`` frames of the batch are anchors (recomputed in lock-step,
        nothing cached across steps); the rest attend to their own tokens plus those anchors.
    ``"full"``
        Every frame attends to every frame of the batch (full cross-frame attention; a
        baseline whose cost grows quadratically with the number of frames).

    Attributes
    ----------
    mode : str
    frames_in_call : int
        Frames per guidance branch in the current pipeline call.
    num_anchors : int
        Anchors at the front of the batch in ``"joint"`` mode.
    call_index : int
        Index of the current UNet forward within the pipeline call.
    recorded_timesteps : list of float
        Timestep of every UNet call of the record pass.
    unet_batch_sizes : list of int
        Batch size of every UNet call since the last :meth:`reset` (for resource checks).
    """

    def __init__(self) -> None:
        self.mode: str = "off"
        self.frames_in_call: int = 1
        self.num_anchors: int = 0
        self.call_index: int = -1
        self.cache: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}
        self.recorded_timesteps: list[float] = []
        self.unet_batch_sizes: list[int] = []

    def reset(self) -> None:
        """Drop the cache and the recorded steps; back to ``"off"``."""
        self.mode = "off"
        self.frames_in_call = 1
        self.num_anchors = 0
        self.call_index = -1
        self.cache.clear()
        self.recorded_timesteps = []
        self.unet_batch_sizes = []

    def begin(self, mode: str, frames_in_call: int, num_anchors: int = 0) -> None:
        """Prepare for one pipeline call of ``frames_in_call`` frames in ``mode``."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if frames_in_call < 1:
            raise ValueError(f"frames_in_call must be >= 1, got {frames_in_call}")
        if mode == "replay" and not self.cache:
            raise RuntimeError("replay before record: run the anchor (record) pass first")
        if mode == "joint" and not 1 <= num_anchors <= frames_in_call:
            raise ValueError(
                f"joint mode needs 1 <= num_anchors <= frames_in_call, got {num_anchors}"
            )
        if mode == "record":
            self.cache.clear()
            self.recorded_timesteps = []
        self.mode = mode
        self.frames_in_call = frames_in_call
        self.num_anchors = num_anchors
        self.call_index = -1

    def cache_nbytes(self) -> int:
        """Bytes held by the anchor key/value cache."""
        return sum(
            k.numel() * k.element_size() + v.numel() * v.element_size()
            for k, v in self.cache.values()
        )

    def step_hook(
        self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """UNet forward pre-hook: advance the call index and check the timestep sequence."""
        sample = args[0] if args else kwargs["sample"]
        timestep = args[1] if len(args) > 1 else kwargs["timestep"]
        t = float(torch.as_tensor(timestep).flatten()[0])
        self.call_index += 1
        self.unet_batch_sizes.append(int(sample.shape[0]))
        if self.mode == "record":
            self.recorded_timesteps.append(t)
        elif self.mode == "replay":
            i = self.call_index
            if i >= len(self.recorded_timesteps):
                raise RuntimeError(
                    f"replay makes more UNet calls ({i + 1}) than the record pass "
                    f"({len(self.recorded_timesteps)}): use the same scheduler and "
                    "num_inference_steps for anchors and frames"
                )
            if abs(self.recorded_timesteps[i] - t) > 1e-6 * max(1.0, abs(t)):
                raise RuntimeError(
                    f"timestep mismatch at UNet call {i}: recorded {self.recorded_timesteps[i]}, "
                    f"replaying {t}; anchors and frames must use the same schedule"
                )


class AnchorAttnProcessor:
    """diffusers attention processor for Fairy's anchor-based cross-frame attention.

    Compatible with :class:`diffusers.models.attention_processor.AttnProcessor2_0` (same
    projections, norms, residual and rescaling); only self-attention calls
    (``encoder_hidden_states is None``) are changed, according to ``state.mode``. Install it
    on ``attn1`` layers only, with :func:`anchor_attention` or :func:`install_anchor_attention`.

    Parameters
    ----------
    state : AnchorAttentionState
        Shared by every processor of the UNet.
    name : str
        The layer's key in ``unet.attn_processors`` (part of the cache key).

    Notes
    -----
    The UNet batch is ``branches * frames_in_call``, ordered branch-major as diffusers'
    InstructPix2Pix builds it (``[text+image, image, unconditional]``, each of all frames);
    ``branches = batch // frames_in_call`` and anchors are cached per branch.
    """

    def __init__(self, state: AnchorAttentionState, name: str) -> None:
        if not isinstance(state, AnchorAttentionState):
            raise TypeError(f"state must be an AnchorAttentionState, got {type(state).__name__}")
        self.state = state
        self.name = name

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> torch.Tensor:
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        is_self = encoder_hidden_states is None
        batch_size, sequence_length, _ = (
            hidden_states.shape if is_self else encoder_hidden_states.shape  # type: ignore[union-attr]
        )
        cross_frame = is_self and self.state.mode != "off"
        if attention_mask is not None:
            if cross_frame:
                raise ValueError("anchor attention does not support a self-attention mask")
            attention_mask = attn.prepare_attention_mask(
                attention_mask, sequence_length, batch_size
            )
            attention_mask = attention_mask.view(
                batch_size, attn.heads, -1, attention_mask.shape[-1]
            )
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        inner_dim = key.shape[-1]
        head_dim = inner_dim // attn.heads
        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        if cross_frame:
            out = self._cross_frame(query, key, value, attn.scale)
        else:
            out = F.scaled_dot_product_attention(
                query,
                key,
                value,
                attn_mask=attention_mask,
                dropout_p=0.0,
                is_causal=False,
                scale=attn.scale,
            )
        hidden_states = out.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim)
        hidden_states = hidden_states.to(query.dtype)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(
                batch_size, channel, height, width
            )
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor

    def _cross_frame(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float
    ) -> torch.Tensor:
        st = self.state
        total, h, s, d = query.shape
        n = st.frames_in_call
        if total % n:
            raise RuntimeError(
                f"UNet batch {total} is not a multiple of frames_in_call={n} (layer {self.name})"
            )
        b = total // n
        q5, k5, v5 = (x.reshape(b, n, h, s, d) for x in (query, key, value))
        if st.mode in ("record", "full"):
            ak, av = _frames_to_anchor_tokens(k5), _frames_to_anchor_tokens(v5)
            if st.mode == "record":
                st.cache[(self.name, st.call_index)] = (ak, av)
            out = _anchor_sdpa(q5, k5[..., :0, :], v5[..., :0, :], ak, av, scale=scale)
        elif st.mode == "replay":
            entry = st.cache.get((self.name, st.call_index))
            if entry is None:
                raise RuntimeError(
                    f"no recorded anchors for layer {self.name!r} at UNet call {st.call_index}"
                )
            ak, av = entry
            if ak.shape[0] != b or ak.shape[1] != h or ak.shape[3] != d:
                raise RuntimeError(
                    f"anchor cache of layer {self.name!r} has {ak.shape[0]} guidance branches, "
                    f"the replay batch has {b}: use the same guidance settings for all frames"
                )
            out = _anchor_sdpa(q5, k5, v5, ak.to(q5.dtype), av.to(q5.dtype), scale=scale)
        elif st.mode == "joint":
            a = st.num_anchors
            ak, av = _frames_to_anchor_tokens(k5[:, :a]), _frames_to_anchor_tokens(v5[:, :a])
            out_anchor = _anchor_sdpa(
                q5[:, :a], k5[:, :a, :, :0], v5[:, :a, :, :0], ak, av, scale=scale
            )
            out_rest = _anchor_sdpa(q5[:, a:], k5[:, a:], v5[:, a:], ak, av, scale=scale)
            out = torch.cat([out_anchor, out_rest], dim=1)
        else:  # pragma: no cover - modes are validated in begin()
            raise RuntimeError(f"unknown mode {st.mode!r}")
        return out.reshape(total, h, s, d)


def install_anchor_attention(unet: Any, state: AnchorAttentionState) -> tuple[dict[str, Any], Any]:
    """Replace every ``attn1`` processor of ``unet`` and register the step hook.

    Returns the original processors and the hook handle, for :func:`anchor_attention` to
    undo. Prefer the context manager.
    """
    originals = dict(unet.attn_processors)
    self_attn = [k for k in originals if k.endswith("attn1.processor")]
    if not self_attn:
        raise ValueError("the UNet has no self-attention (attn1) layers to replace")
    procs = {
        k: (AnchorAttnProcessor(state, k) if k.endswith("attn1.processor") else p)
        for k, p in originals.items()
    }
    unet.set_attn_processor(procs)
    handle = unet.register_forward_pre_hook(state.step_hook, with_kwargs=True)
    return originals, handle


@contextmanager
def anchor_attention(
    unet: Any, state: AnchorAttentionState | None = None
) -> Iterator[AnchorAttentionState]:
    """Context manager: anchor attention on every ``attn1`` of ``unet``, restored on exit.

    Parameters
    ----------
    unet : diffusers.UNet2DConditionModel
        Any UNet exposing ``attn_processors`` / ``set_attn_processor``.
    state : AnchorAttentionState, optional
        A fresh one by default.

    Yields
    ------
    AnchorAttentionState
        Set its mode with :meth:`AnchorAttentionState.begin` before each pipeline call.

    Examples
    --------
    >>> with anchor_attention(pipe.unet) as state:  # doctest: +SKIP
    ...     state.begin("record", frames_in_call=3)
    ...     pipe(prompt=[p] * 3, image=anchors, generator=gens)
    """
    state = AnchorAttentionState() if state is None else state
    originals, handle = install_anchor_attention(unet, state)
    try:
        yield state
    finally:
        handle.remove()
        unet.set_attn_processor(originals)
