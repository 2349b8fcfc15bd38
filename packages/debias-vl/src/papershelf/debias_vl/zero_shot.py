"""Zero-shot classification with (debiased) class-prompt embeddings, group metrics, and the
controlled synthetic task used by the quick reproduction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from papershelf.debias_vl._backend import ArrayLike, as_work_tensor, check_finite

__all__ = ["SyntheticZeroShot", "group_accuracy", "make_synthetic_zero_shot", "zero_shot_predict"]


def zero_shot_predict(image_embeddings: ArrayLike, text_embeddings: ArrayLike) -> np.ndarray:
    """Predict the class whose prompt embedding has the largest cosine with each image.

    Parameters
    ----------
    image_embeddings : array-like, shape (N, d)
    text_embeddings : array-like, shape (C, d)
        One (possibly debiased) embedding per class. CLIP's temperature does not change argmax.

    Returns
    -------
    numpy.ndarray of int64, shape (N,)
    """
    x, _ = as_work_tensor(image_embeddings, "image_embeddings")
    t, _ = as_work_tensor(text_embeddings, "text_embeddings")
    check_finite(x, "image_embeddings")  # NaN images must not all become class 0
    check_finite(t, "text_embeddings")
    if x.ndim != 2 or t.ndim != 2:
        raise ValueError(
            f"image_embeddings (N, d) and text_embeddings (C, d) must be 2-D, got "
            f"{tuple(x.shape)} and {tuple(t.shape)}"
        )
    if t.shape[0] == 0:
        raise ValueError("text_embeddings must hold at least one class embedding, got C=0")
    if x.shape[1] != t.shape[1]:
        raise ValueError(
            f"dimension mismatch: image_embeddings d={x.shape[1]}, text_embeddings d={t.shape[1]}"
        )
    x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-300)
    t = t.to(x.device)
    t = t / t.norm(dim=1, keepdim=True).clamp_min(1e-300)
    return (x @ t.T).argmax(dim=1).cpu().numpy()


def group_accuracy(predictions: ArrayLike, labels: ArrayLike, groups: ArrayLike) -> dict[str, Any]:
    """Average, worst-group and per-group accuracy.

    Parameters
    ----------
    predictions, labels : array-like of int, shape (N,)
    groups : array-like of int, shape (N,)
        Group id of each sample (e.g. ``2 * label + spurious``).

    Returns
    -------
    dict
        ``avg`` (accuracy over all samples), ``worst`` (min over groups), ``gap``
        (avg - worst), ``per_group`` ({group: accuracy}).
    """
    p, y, g = (np.asarray(a).reshape(-1) for a in (predictions, labels, groups))
    if not (p.shape == y.shape == g.shape):
        raise ValueError(
            f"predictions, labels and groups must have the same length: {p.shape}, {y.shape}, "
            f"{g.shape}"
        )
    if p.size == 0:
        raise ValueError("predictions is empty")
    correct = p == y
    per_group = {int(k): float(correct[g == k].mean()) for k in np.unique(g)}
    avg = float(correct.mean())
    worst = min(per_group.values())
    return {"avg": avg, "worst": worst, "gap": avg - worst, "per_group": per_group}


@dataclass(frozen=True)
class SyntheticZeroShot:
    """A controlled zero-shot task with a known class direction and spurious direction.

    Attributes
    ----------
    images : ndarray, shape (N, d)
        ``a * (+-c) + b * (+-s) + noise``, unit norm.
    labels, spurious, groups : ndarray of int, shape (N,)
        Class y, spurious attribute a, group ``2 * y + a``; groups are balanced.
    class_prompts : ndarray, shape (2, d)
        Embeddings of the class prompts: the class direction plus a leak of the spurious
        direction (class 0 leans to attribute 0) - the prompt bias the method removes.
    spurious_prompts : ndarray, shape (k, d)
        "A photo of <attribute>" embeddings: +-s plus a shared prompt component and noise.
    positive_pairs : ndarray, shape (S, 2, d)
        Class x attribute prompts that differ only in the attribute.
    """

    images: np.ndarray
    labels: np.ndarray
    spurious: np.ndarray
    groups: np.ndarray
    class_prompts: np.ndarray
    spurious_prompts: np.ndarray
    positive_pairs: np.ndarray


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def make_synthetic_zero_shot(
    *,
    d: int = 64,
    n_per_group: int = 500,
    class_strength: float = 1.0,
    spurious_strength: float = 2.0,
    prompt_leak: float = 0.6,
    image_noise: float = 0.7,
    prompt_noise: float = 0.15,
    n_spurious_prompts: int = 6,
    n_pairs: int = 10,
    rng: np.random.Generator | int | None = None,
) -> SyntheticZeroShot:
    """Sample a :class:`SyntheticZeroShot` task.

    Images of class y with attribute a are ``class_strength * c_y + spurious_strength * s_a``
    plus isotropic noise; class prompts are ``c_y + prompt_leak * s_y`` (the text encoder's
    bias: "landbird" lies near "land"), so plain zero-shot fails on the minority groups (y != a).
    All vectors are in R^d with random orthonormal c, s and a shared "a photo of" direction g.

    Parameters
    ----------
    d : int
        Embedding dimension (>= 8).
    n_per_group : int
        Test images per (class, attribute) group.
    rng : numpy Generator or int seed, optional

    Returns
    -------
    SyntheticZeroShot
    """
    if d < 8:
        raise ValueError(f"d must be >= 8, got {d}")
    if n_per_group < 1 or n_spurious_prompts < 1 or n_pairs < 1:
        raise ValueError("n_per_group, n_spurious_prompts and n_pairs must be >= 1")
    rng = np.random.default_rng(rng)
    q, _ = np.linalg.qr(rng.normal(size=(d, 3)))
    c, s, g = q.T  # class, spurious, shared prompt directions, orthonormal
    signs = np.array([-1.0, 1.0])

    y = np.repeat([0, 0, 1, 1], n_per_group)
    a = np.repeat([0, 1, 0, 1], n_per_group)
    images = (
        class_strength * signs[y, None] * c
        + spurious_strength * signs[a, None] * s
        + image_noise * rng.normal(size=(y.size, d))
    )

    def prompt(vec: np.ndarray) -> np.ndarray:
        return _unit(vec + g + prompt_noise * rng.normal(size=vec.shape))

    class_prompts = prompt(np.stack([signs[k] * (c + prompt_leak * s) for k in (0, 1)]))
    attr = signs[np.arange(n_spurious_prompts) % 2]
    spurious_prompts = prompt(attr[:, None] * s[None, :])
    cls = signs[rng.integers(0, 2, size=n_pairs)]
    pairs = np.stack(
        [prompt(cls[:, None] * c + s), prompt(cls[:, None] * c - s)], axis=1
    )  # (S, 2, d)
    return SyntheticZeroShot(
        images=_unit(images),
        labels=y,
        spurious=a,
        groups=2 * y + a,
        class_prompts=class_prompts,
        spurious_prompts=spurious_prompts,
        positive_pairs=pairs,
    )
