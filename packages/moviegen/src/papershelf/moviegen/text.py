"""Text conditioning: the context container, a pluggable encoder protocol, three-encoder conditioner.

Movie Gen conditions on three frozen text encoders (UL2 for reasoning, long-prompt
MetaCLIP for visually aligned text, ByT5 for the quoted "visual text"); each output
is projected to the model width (inside the transformer, see ``text_dims``) and the
sequences are concatenated along the sequence axis (Polyak et al. 2024, Sec. 3.1.4).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

__all__ = [
    "HFTextEncoder",
    "MultiTextConditioner",
    "TextContext",
    "TextEncoder",
    "WordEncoder",
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
        cls, name_or_path: str, max_length: int, quoted_only: bool = False, **kwargs: Any
    ) -> HFTextEncoder:
        """Load weights a user already has (``transformers`` is an optional extra: ``[text]``)."""
        from transformers import AutoConfig, AutoModel, AutoTokenizer, T5EncoderModel

        config = AutoConfig.from_pretrained(name_or_path, **kwargs)
        tok = AutoTokenizer.from_pretrained(name_or_path, **kwargs)
        if getattr(config, "model_type", "") in ("t5", "umt5", "mt5"):
            model = T5EncoderModel.from_pretrained(name_or_path, **kwargs)
        else:
            model = AutoModel.from_pretrained(name_or_path, **kwargs)
            model = getattr(model, "text_model", model)
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


class MultiTextConditioner(nn.Module):
    """Run several frozen text encoders on the same prompts and collect a :class:`TextContext`.

    Parameters
    ----------
    encoders : mapping of str to TextEncoder
        Names must match the transformer's ``text_dims`` keys; widths must match its values.

    Examples
    --------
    >>> cond = MultiTextConditioner(tiny_text_encoders())
    >>> ctx = cond(["a red square moving left"])
    >>> ctx.length == sum(e.max_length for e in cond.encoders.values())
    True
    """

    def __init__(self, encoders: Mapping[str, TextEncoder]) -> None:
        super().__init__()
        if not encoders:
            raise ValueError("encoders must name at least one text encoder")
        self.encoders = nn.ModuleDict(dict(encoders))  # type: ignore[arg-type]

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


def tiny_text_encoders(seed: int = 0) -> dict[str, HFTextEncoder]:
    """The paper's three encoder roles as tiny random ``transformers`` models (no downloads).

    UL2 -> a 2-layer ``T5EncoderModel`` (width 32), MetaCLIP -> a 2-layer ``CLIPTextModel``
    (width 32), ByT5 -> a 1-layer ``T5EncoderModel`` (width 24) on quoted text. All use the
    file-free byte-level ``ByT5Tokenizer``.
    """
    from transformers import ByT5Tokenizer, CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    tok = ByT5Tokenizer()
    torch.manual_seed(seed)  # transformers initialises from the global generator
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
            max_position_embeddings=32,
            bos_token_id=1,
            eos_token_id=1,
            pad_token_id=0,
        )
    )
    return {
        "ul2": HFTextEncoder(t5(32, 2), tok, max_length=24),
        "metaclip": HFTextEncoder(clip, tok, max_length=32),
        "byt5": HFTextEncoder(t5(24, 1), tok, max_length=8, quoted_only=True),
    }
