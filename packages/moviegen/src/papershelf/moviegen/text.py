"""Text conditioning: the context container, a pluggable encoder protocol, three-encoder conditioner.

Movie Gen conditions on three frozen text encoders (UL2 for reasoning, long-prompt
MetaCLIP for visually aligned text, ByT5 for the quoted "visual text"); each output
is projected to the model width (inside the transformer, see ``text_dims``) and the
sequences are concatenated along the sequence axis (Polyak et al. 2024, Sec. 3.1.4).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import diffusers
import torch
from torch import Tensor, nn

# diffusers' bases, typed as Any: their dynamic attributes defeat a static checker
ModelMixin: Any = diffusers.ModelMixin
ConfigMixin: Any = diffusers.ConfigMixin


__all__ = [
    "HFTextEncoder",
    "MultiTextConditioner",
    "TextContext",
    "TextEncoder",
    "WordEncoder",
    "extend_clip_positions",
    "quoted_text",
    "tiny_text_encoders",
]


@dataclass
class TextContext:
    """Raw text-encoder outputs, one entry per encoder name.

    Attributes
    ----------
    states : dict of str to Tensor, each shape (B, L_k, D_k)
        Hidden states of encoder ``k``.
    masks : dict of str to Tensor, each shape (B, L_k), bool
        True where the token is real, False on padding.
    """

    states: dict[str, Tensor]
    masks: dict[str, Tensor]

    def __post_init__(self) -> None:
        if set(self.states) != set(self.masks):
            raise ValueError(
                "states and masks must name the same encoders, got "
                f"{sorted(self.states)} and {sorted(self.masks)}"
            )
        for k, s in self.states.items():
            m = self.masks[k]
            if s.ndim != 3 or m.shape != s.shape[:2]:
                raise ValueError(
                    f"states[{k!r}] must be (B, L, D) with masks[{k!r}] (B, L); "
                    f"got {tuple(s.shape)} and {tuple(m.shape)}"
                )

    @property
    def batch_size(self) -> int:
        """Number of prompts B."""
        return next(iter(self.states.values())).shape[0]

    @property
    def length(self) -> int:
        """Total context length: the sum of the encoders' sequence lengths."""
        return sum(s.shape[1] for s in self.states.values())

    def to(self, *args: Any, **kwargs: Any) -> TextContext:
        """Move states (dtype and device) and masks (device only)."""
        states = {k: v.to(*args, **kwargs) for k, v in self.states.items()}
        device = next(iter(states.values())).device
        return TextContext(states, {k: v.to(device) for k, v in self.masks.items()})

    def null(self) -> TextContext:
        """The unconditional ("null") context: zero states, all positions kept.

        Zero states become the projection's bias after the Linear + LayerNorm, so the
        null context is a fixed learned-through-bias embedding; training with
        classifier-free-guidance dropout (:func:`~papershelf.moviegen.drop_text`) uses
        the same null, which is what makes guidance work at sampling time.
        """
        return TextContext(
            {k: torch.zeros_like(v) for k, v in self.states.items()},
            {k: torch.ones_like(v) for k, v in self.masks.items()},
        )

    def index(self, idx: Tensor | slice) -> TextContext:
        """Select a subset of the batch."""
        return TextContext(
            {k: v[idx] for k, v in self.states.items()}, {k: v[idx] for k, v in self.masks.items()}
        )

    @staticmethod
    def cat(contexts: Sequence[TextContext]) -> TextContext:
        """Concatenate contexts along the batch axis (same encoders and lengths)."""
        keys = list(contexts[0].states)
        return TextContext(
            {k: torch.cat([c.states[k] for c in contexts]) for k in keys},
            {k: torch.cat([c.masks[k] for c in contexts]) for k in keys},
        )


@runtime_checkable
class TextEncoder(Protocol):
    """What :class:`MultiTextConditioner` needs from an encoder.

    ``dim`` is the output width; calling it with B prompts returns hidden states
    (B, L, dim) and a bool mask (B, L).
    """

    dim: int

    def __call__(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]: ...


_QUOTE = re.compile(r"[\"“”']([^\"“”']+)[\"“”']")


def quoted_text(prompt: str) -> str:
    """The quoted "visual text" of a prompt, which is all the ByT5 encoder sees.

    >>> quoted_text('a sign that reads "OPEN" at night')
    'OPEN'
    """
    return " ".join(_QUOTE.findall(prompt))


class WordEncoder(nn.Module):
    """A frozen random word-embedding encoder for closed-vocabulary synthetic prompts.

    Parameters
    ----------
    vocab : sequence of str
        Known words; anything else maps to an unknown token.
    dim : int
        Output width.
    max_length : int
        Prompts are padded / truncated to this many tokens.
    seed : int
        Seed of the fixed random embedding table.
    """

    def __init__(
        self, vocab: Sequence[str], dim: int = 32, max_length: int = 4, seed: int = 0
    ) -> None:
        super().__init__()
        self.vocab = {w: i + 1 for i, w in enumerate(vocab)}
        self.dim = dim
        self.max_length = max_length
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("table", torch.randn(len(vocab) + 1, dim, generator=g))

    @torch.no_grad()
    def forward(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        ids = torch.zeros(len(prompts), self.max_length, dtype=torch.long)
        mask = torch.zeros(len(prompts), self.max_length, dtype=torch.bool)
        for b, p in enumerate(prompts):
            words = p.lower().split()[: self.max_length]
            for i, w in enumerate(words):
                ids[b, i] = self.vocab.get(w, 0)
                mask[b, i] = True
            if not words:
                mask[b, 0] = True  # keep one token so attention never sees an empty row
        table: Tensor = self.table  # type: ignore[assignment]
        ids = ids.to(table.device)
        return table[ids], mask.to(table.device)


class HFTextEncoder(nn.Module):
    """A frozen Hugging Face ``transformers`` text encoder (UL2 / T5, CLIP text, ByT5).

    Parameters
    ----------
    model : transformers.PreTrainedModel
        An encoder whose output has ``last_hidden_state`` (e.g. ``T5EncoderModel``,
        ``CLIPTextModel``).
    tokenizer : transformers tokenizer
    max_length : int
        Padding / truncation length (paper-scale community values: UL2 512, MetaCLIP 256,
        ByT5 100).
    quoted_only : bool
        Feed only the quoted visual text of each prompt (the ByT5 role).
    """

    def __init__(
        self, model: nn.Module, tokenizer: Any, max_length: int, quoted_only: bool = False
    ) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.quoted_only = quoted_only
        cfg: Any = model.config
        self.dim = int(getattr(cfg, "d_model", None) or cfg.hidden_size)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str],
        max_length: int,
        quoted_only: bool = False,
        *,
        local_files_only: bool = False,
        revision: str | None = None,
        max_position_embeddings: int | None = None,
        **kwargs: Any,
    ) -> HFTextEncoder:
        """Load an encoder and its tokenizer with ``transformers`` (extra ``[text]``).

        Parameters
        ----------
        name_or_path : str or path
            A hub id or a local folder.
        max_length : int
            Padding / truncation length.
        quoted_only : bool
            The ByT5 role: encode only the quoted text.
        local_files_only : bool
            Never touch the network (the folder or the local cache must hold everything).
        revision : str, optional
            A hub branch, tag or commit hash to pin.
        max_position_embeddings : int, optional
            For CLIP text models: stretch the learned position table to this many
            positions (the long-prompt MetaCLIP role, 77 -> 256), see
            :func:`extend_clip_positions`.
        **kwargs
            Passed to every ``from_pretrained`` (``cache_dir``, ``token``, ...).
        """
        try:
            from transformers import AutoConfig, AutoModel, AutoTokenizer, T5EncoderModel
        except ImportError as e:  # pragma: no cover - exercised without the extra
            raise ImportError(
                'HFTextEncoder needs transformers: pip install "papershelf-moviegen[text]"'
            ) from e

        kw = dict(kwargs, local_files_only=local_files_only, revision=revision)
        config = AutoConfig.from_pretrained(name_or_path, **kw)
        tok = AutoTokenizer.from_pretrained(name_or_path, **kw)
        if getattr(config, "model_type", "") in ("t5", "umt5", "mt5"):
            model = T5EncoderModel.from_pretrained(name_or_path, **kw)
        else:
            model = AutoModel.from_pretrained(name_or_path, **kw)
            model = getattr(model, "text_model", model)
        if max_position_embeddings is not None:
            extend_clip_positions(model, max_position_embeddings)
        return cls(model, tok, max_length, quoted_only)

    @torch.no_grad()
    def forward(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        texts = [quoted_text(p) if self.quoted_only else p for p in prompts]
        enc = self.tokenizer(
            texts,
            padding="max_length",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        device = next(self.model.parameters()).device
        ids = enc["input_ids"].to(device)
        mask = enc["attention_mask"].to(device).bool()
        mask[:, 0] = True  # an empty quoted text still leaves its end-of-sequence token
        out = self.model(input_ids=ids, attention_mask=mask.long())
        return out.last_hidden_state, mask


def extend_clip_positions(model: nn.Module, length: int) -> nn.Module:
    """Stretch a CLIP text model's learned positions to ``length`` by linear interpolation.

    Movie Gen's long-prompt MetaCLIP reads 256 tokens where CLIP was trained on 77
    (Polyak et al. 2024, Sec. 3.1.4). The learned position table (P, d) is resampled
    to (length, d) by linear interpolation along the position axis (the first and the
    last rows are kept), the position-id buffer and the config follow. Fine-tuning
    after the stretch is what the paper does; this gives the starting point.

    Parameters
    ----------
    model : CLIPTextModel or CLIPTextTransformer
        Modified in place.
    length : int
        New number of positions (>= the current one).

    Returns
    -------
    The same model.
    """
    tm = getattr(model, "text_model", model)
    emb = getattr(tm, "embeddings", None)
    if emb is None or not hasattr(emb, "position_embedding"):
        raise TypeError(
            "model must be a transformers CLIP text model (embeddings.position_embedding)"
        )
    old = emb.position_embedding.weight.data
    P, d = old.shape
    if isinstance(length, bool) or not isinstance(length, int) or length < P:
        raise ValueError(f"length must be an int >= the current {P} positions, got {length!r}")
    if length == P:
        return model
    new = torch.nn.functional.interpolate(
        old.T[None].float(), size=length, mode="linear", align_corners=True
    )[0].T.to(old.dtype)
    table = nn.Embedding(length, d, device=old.device, dtype=old.dtype)
    table.weight.data.copy_(new)
    emb.position_embedding = table
    emb.register_buffer(
        "position_ids", torch.arange(length, device=old.device)[None], persistent=False
    )
    for cfg in {
        id(c): c
        for c in (getattr(model, "config", None), getattr(tm, "config", None))
        if c is not None
    }.values():
        cfg.max_position_embeddings = length
    return model


def _encoder_spec(enc: nn.Module) -> dict[str, Any]:
    """A JSON description of an encoder from which :func:`_build_encoder` rebuilds it."""
    if isinstance(enc, WordEncoder):
        vocab = sorted(enc.vocab, key=enc.vocab.__getitem__)
        return {"kind": "words", "vocab": vocab, "dim": enc.dim, "max_length": enc.max_length}
    if isinstance(enc, HFTextEncoder):
        return {
            "kind": "hf",
            "model_class": type(enc.model).__name__,
            "model_config": getattr(enc.model, "config").to_dict(),  # noqa: B009
            "tokenizer_class": type(enc.tokenizer).__name__,
            "max_length": enc.max_length,
            "quoted_only": enc.quoted_only,
        }
    raise TypeError(f"only WordEncoder and HFTextEncoder can be saved, got {type(enc).__name__}")


def _build_encoder(spec: Mapping[str, Any]) -> nn.Module:
    """Rebuild an encoder (random weights) from :func:`_encoder_spec`; weights load after."""
    if spec["kind"] == "words":
        return WordEncoder(spec["vocab"], spec["dim"], spec["max_length"])
    if spec["kind"] != "hf":
        raise ValueError(f"unknown encoder kind {spec['kind']!r}")
    import transformers

    cls = getattr(transformers, spec["model_class"])
    cfg_cls = cls.config_class
    model = cls(cfg_cls.from_dict(dict(spec["model_config"])))
    tok = None
    if spec["tokenizer_class"] == "ByT5Tokenizer":  # file-free
        tok = transformers.ByT5Tokenizer()
    return HFTextEncoder(model, tok, spec["max_length"], spec["quoted_only"])


class MultiTextConditioner(ModelMixin, ConfigMixin):
    """Run several frozen text encoders on the same prompts and collect a :class:`TextContext`.

    A diffusers ``ModelMixin`` + ``ConfigMixin`` so a :class:`~papershelf.moviegen.
    MovieGenPipeline` saves and loads it with its other components: the config holds
    each encoder's description (the ``transformers`` config for :class:`HFTextEncoder`,
    the vocabulary for :class:`WordEncoder`), the weights go to safetensors and
    tokenizers that need files to their own sub-folders.

    Parameters
    ----------
    encoders : mapping of str to TextEncoder
        Names must match the transformer's ``text_dims`` keys; widths must match its values.
    encoder_specs : dict, optional
        How ``from_config`` rebuilds the encoders (written by ``save_pretrained``); only
        without ``encoders``.

    Examples
    --------
    >>> cond = MultiTextConditioner(tiny_text_encoders())
    >>> ctx = cond(["a red square moving left"])
    >>> ctx.length == sum(e.max_length for e in cond.encoders.values())
    True
    """

    def __init__(
        self,
        encoders: Mapping[str, TextEncoder] | None = None,
        *,
        encoder_specs: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        if encoders is None:
            if not encoder_specs:
                raise ValueError("encoders must name at least one text encoder")
            encoders = {k: _build_encoder(v) for k, v in encoder_specs.items()}  # type: ignore[misc]
        if not encoders:
            raise ValueError("encoders must name at least one text encoder")
        self.encoders = nn.ModuleDict(dict(encoders))  # type: ignore[arg-type]
        specs: dict[str, Any] = {}
        for k, e in self.encoders.items():
            try:
                specs[k] = _encoder_spec(e)
            except TypeError:
                specs[k] = {"kind": "custom", "class": type(e).__name__}
        if hasattr(self, "register_to_config"):
            self.register_to_config(encoder_specs=specs)

    def state_dict(self, *args: Any, **kwargs: Any) -> Any:
        """The weights, with tied tensors (T5's shared embedding) copied so safetensors can save them."""
        sd = super().state_dict(*args, **kwargs)
        seen: set[tuple[int, int]] = set()
        for k, v in sd.items():
            if v.device.type == "meta":
                continue
            key = (v.untyped_storage().data_ptr(), v.storage_offset())
            if key in seen:
                sd[k] = v.clone()
            seen.add(key)
        return sd

    def save_pretrained(self, save_directory: str | os.PathLike[str], **kwargs: Any) -> None:
        """Save config, weights (safetensors) and file-based tokenizers under ``save_directory``."""
        bad = [k for k, v in self.config.encoder_specs.items() if v["kind"] == "custom"]
        if bad:
            raise TypeError(
                f"encoders {bad} are not WordEncoder / HFTextEncoder and cannot be saved"
            )
        super().save_pretrained(save_directory, **kwargs)
        for name, enc in self.encoders.items():
            if isinstance(enc, HFTextEncoder) and enc.tokenizer is not None:
                enc.tokenizer.save_pretrained(Path(save_directory) / f"tokenizer_{name}")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, **kwargs: Any) -> Any:
        """Load what :meth:`save_pretrained` wrote (tokenizers from their sub-folders)."""
        model = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        root = Path(pretrained_model_name_or_path)
        if kwargs.get("subfolder"):
            root = root / kwargs["subfolder"]
        for name, enc in model.encoders.items():
            tok_dir = root / f"tokenizer_{name}"
            if isinstance(enc, HFTextEncoder) and tok_dir.is_dir():
                from transformers import AutoTokenizer

                enc.tokenizer = AutoTokenizer.from_pretrained(tok_dir, local_files_only=True)
        return model

    @property
    def text_dims(self) -> dict[str, int]:
        """Encoder widths, for :class:`~papershelf.moviegen.TransformerConfig` ``text_dims``."""
        return {k: int(e.dim) for k, e in self.encoders.items()}  # type: ignore[arg-type]

    def forward(self, prompts: Sequence[str]) -> TextContext:
        if isinstance(prompts, str):
            raise TypeError("prompts must be a sequence of str, not a single str")
        prompts = list(prompts)
        if not prompts or any(not isinstance(p, str) or not p.strip() for p in prompts):
            raise ValueError("prompts must be a non-empty list of non-empty strings")
        states, masks = {}, {}
        for name, enc in self.encoders.items():
            states[name], masks[name] = enc(prompts)
        return TextContext(states, masks)


def tiny_text_encoders(seed: int = 0, long_prompt: bool = False) -> dict[str, HFTextEncoder]:
    """The paper's three encoder roles as tiny random ``transformers`` models (no downloads).

    UL2 -> a 2-layer ``T5EncoderModel`` (width 32), MetaCLIP -> a 2-layer ``CLIPTextModel``
    (width 32), ByT5 -> a 1-layer ``T5EncoderModel`` (width 24) on quoted text. All use the
    file-free byte-level ``ByT5Tokenizer``. The global random state is left untouched
    (weights are drawn inside ``torch.random.fork_rng``).

    Parameters
    ----------
    seed : int
        Seed of the random weights.
    long_prompt : bool
        Give the MetaCLIP role the paper's long-prompt shape: a 77-position CLIP whose
        positions are stretched to 256 by :func:`extend_clip_positions`, reading 256 tokens.
    """
    try:
        from transformers import (
            ByT5Tokenizer,
            CLIPTextConfig,
            CLIPTextModel,
            T5Config,
            T5EncoderModel,
        )
    except ImportError as e:  # pragma: no cover - exercised without the extra
        raise ImportError(
            'tiny_text_encoders needs transformers: pip install "papershelf-moviegen[text]"'
        ) from e

    with torch.random.fork_rng(devices=[]):  # transformers initialises from the global RNG
        torch.manual_seed(seed)
        return _tiny_text_encoders(
            ByT5Tokenizer, CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel, long_prompt
        )


def _tiny_text_encoders(
    ByT5Tokenizer: Any,
    CLIPTextConfig: Any,
    CLIPTextModel: Any,
    T5Config: Any,
    T5EncoderModel: Any,
    long_prompt: bool,
) -> dict[str, HFTextEncoder]:
    tok = ByT5Tokenizer()
    vocab = len(tok)

    def t5(d: int, layers: int) -> T5EncoderModel:
        return T5EncoderModel(
            T5Config(
                vocab_size=vocab, d_model=d, d_kv=8, d_ff=2 * d, num_layers=layers, num_heads=2
            )
        )

    clip = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=77 if long_prompt else 32,
            bos_token_id=1,
            eos_token_id=1,
            pad_token_id=0,
        )
    )
    if long_prompt:
        extend_clip_positions(clip, 256)
    return {
        "ul2": HFTextEncoder(t5(32, 2), tok, max_length=24),
        "metaclip": HFTextEncoder(clip, tok, max_length=256 if long_prompt else 32),
        "byt5": HFTextEncoder(t5(24, 1), tok, max_length=8, quoted_only=True),
    }
