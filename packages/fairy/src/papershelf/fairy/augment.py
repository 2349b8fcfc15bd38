r"""Paired affine augmentation for equivariant fine-tuning (Fairy, Sec. 3.3).

For an edit pair :math:`(I, I')` one random affine map :math:`g` is sampled and the editor is
trained on :math:`(g(I), g(I'))`, so that it learns :math:`E(g(I)) = g(E(I))`: edits that
follow the frame when the camera or object moves. Ranges from the paper: rotation < 5°,
translation ±0.05 of the size, scale in [0.95, 1.05], shear ±5° on both axes, then resize to
288 px and a random 256 × 256 crop, all identical for source and target.

Implemented with ``F.affine_grid`` / ``F.grid_sample`` (torchvision is not needed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from papershelf.core.validation import check_choice, check_int, check_real

__all__ = [
    "AffineParams",
    "affine_theta",
    "apply_affine",
    "paired_affine",
    "paired_resized_crop",
    "sample_affine",
]


@dataclass(frozen=True)
class AffineParams:
    """One affine map, applied about the image centre.

    Attributes
    ----------
    angle : float
        Rotation in degrees (counter-clockwise).
    translate : tuple of float
        ``(tx, ty)`` as fractions of the width and height.
    scale : float
        Isotropic scale factor.
    shear : tuple of float
        ``(sx, sy)`` shear angles in degrees along x and y.
    """

    angle: float = 0.0
    translate: tuple[float, float] = (0.0, 0.0)
    scale: float = 1.0
    shear: tuple[float, float] = (0.0, 0.0)


def _check_images(name: str, x: Any) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a tensor of shape (B, C, H, W), got {type(x).__name__}")
    if x.ndim != 4 or x.numel() == 0:
        raise ValueError(
            f"{name} must be a non-empty tensor of shape (B, C, H, W), got {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a float tensor, got {x.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf")


def _uniform(lo: float, hi: float, generator: torch.Generator | None) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=generator))


def sample_affine(
    generator: torch.Generator | None = None,
    *,
    max_rotation: float = 5.0,
    max_translate: float = 0.05,
    scale_range: tuple[float, float] = (0.95, 1.05),
    max_shear: float = 5.0,
) -> AffineParams:
    """Draw one affine map uniformly from the paper's ranges.

    Parameters
    ----------
    generator : torch.Generator, optional
    max_rotation : float, default 5
        Degrees; angle ~ U(-max_rotation, max_rotation).
    max_translate : float, default 0.05
        Fraction of the size; each of tx, ty ~ U(-max_translate, max_translate).
    scale_range : (float, float), default (0.95, 1.05)
    max_shear : float, default 5
        Degrees; each of sx, sy ~ U(-max_shear, max_shear).

    Returns
    -------
    AffineParams

    References
    ----------
    Wu et al., "Fairy", CVPR 2024, Sec. 3.3.
    """
    max_rotation = check_real("max_rotation", max_rotation, low=0.0, high=180.0)
    max_translate = check_real("max_translate", max_translate, low=0.0, high=1.0)
    max_shear = check_real("max_shear", max_shear, low=0.0, high=60.0)
    if not isinstance(scale_range, tuple | list) or len(scale_range) != 2:
        raise TypeError(f"scale_range must be a (low, high) pair, got {scale_range!r}")
    lo = check_real("scale_range[0]", scale_range[0], low=0.0, inclusive=(False, True))
    hi = check_real("scale_range[1]", scale_range[1], low=lo)
    return AffineParams(
        angle=_uniform(-max_rotation, max_rotation, generator),
        translate=(
            _uniform(-max_translate, max_translate, generator),
            _uniform(-max_translate, max_translate, generator),
        ),
        scale=_uniform(lo, hi, generator),
        shear=(
            _uniform(-max_shear, max_shear, generator),
            _uniform(-max_shear, max_shear, generator),
        ),
    )


def affine_theta(params: AffineParams, height: int, width: int) -> torch.Tensor:
    """The ``(2, 3)`` matrix for ``F.affine_grid`` (output -> input, normalised coordinates).

    The forward map in centred pixel coordinates is ``T(t) R(angle) Sh(sx, sy) S(scale)``;
    ``affine_grid`` needs its inverse, expressed in the [-1, 1] coordinates of
    ``align_corners=False`` (which differ per axis on non-square images).
    """
    if not isinstance(params, AffineParams):
        raise TypeError(f"params must be an AffineParams, got {type(params).__name__}")
    check_real("params.angle", params.angle)
    check_real("params.scale", params.scale, low=0.0, inclusive=(False, True))
    for i in range(2):
        check_real(f"params.translate[{i}]", params.translate[i])
        check_real(f"params.shear[{i}]", params.shear[i], low=-89.0, high=89.0)
    a = math.radians(params.angle)
    sx, sy = (math.tan(math.radians(s)) for s in params.shear)
    rot = torch.tensor(
        [[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]],
        dtype=torch.float64,
    )
    shear = torch.tensor([[1, sx, 0], [sy, 1, 0], [0, 0, 1]], dtype=torch.float64)
    scale = torch.diag(torch.tensor([params.scale, params.scale, 1.0], dtype=torch.float64))
    shift = torch.eye(3, dtype=torch.float64)
    shift[0, 2] = params.translate[0] * width
    shift[1, 2] = params.translate[1] * height
    fwd = shift @ rot @ shear @ scale
    to_norm = torch.diag(torch.tensor([2.0 / width, 2.0 / height, 1.0], dtype=torch.float64))
    theta = to_norm @ torch.linalg.inv(fwd) @ torch.linalg.inv(to_norm)
    return theta[:2].float()


def apply_affine(
    images: torch.Tensor,
    params: AffineParams,
    *,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
) -> torch.Tensor:
    """Warp a batch of images with one affine map.

    Parameters
    ----------
    images : Tensor, shape (B, C, H, W)
    params : AffineParams
    mode : {"bilinear", "nearest"}
    padding_mode : {"zeros", "border", "reflection"}
        Fill for pixels that come from outside the image (zeros, as torchvision does).

    Returns
    -------
    Tensor, shape (B, C, H, W)
    """
    _check_images("images", images)
    check_choice("mode", mode, ("bilinear", "nearest"))
    check_choice("padding_mode", padding_mode, ("zeros", "border", "reflection"))
    b, _, h, w = images.shape
    theta = affine_theta(params, h, w).to(images.device, images.dtype).expand(b, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode=mode, padding_mode=padding_mode, align_corners=False)


def paired_affine(
    source: torch.Tensor, target: torch.Tensor, params: AffineParams, **kwargs: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the same affine map to the source and the edited image.

    Parameters
    ----------
    source, target : Tensor, shape (B, C, H, W)
        Same spatial size.
    params : AffineParams
    **kwargs
        ``mode`` / ``padding_mode`` of :func:`apply_affine`.

    Returns
    -------
    (Tensor, Tensor)
        ``g(source), g(target)``.
    """
    _check_images("source", source)
    _check_images("target", target)
    if source.shape[-2:] != target.shape[-2:]:
        raise ValueError(
            f"source and target must have the same size, got {tuple(source.shape[-2:])} "
            f"and {tuple(target.shape[-2:])}"
        )
    return apply_affine(source, params, **kwargs), apply_affine(target, params, **kwargs)


def paired_resized_crop(
    source: torch.Tensor,
    target: torch.Tensor,
    *,
    resize: int = 288,
    crop: int = 256,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resize the shorter side to ``resize``, then take one random ``crop`` square from both.

    Parameters
    ----------
    source, target : Tensor, shape (B, C, H, W)
    resize : int, default 288
    crop : int, default 256
        ``crop <= resize``.
    generator : torch.Generator, optional

    Returns
    -------
    (Tensor, Tensor), each of shape (B, C, crop, crop)
    """
    resize = check_int("resize", resize, low=1)
    crop = check_int("crop", crop, low=1, high=resize)
    _check_images("source", source)
    _check_images("target", target)
    if source.shape[-2:] != target.shape[-2:]:
        raise ValueError("source and target must have the same size")
    h, w = source.shape[-2:]
    f = resize / min(h, w)
    nh, nw = max(crop, round(h * f)), max(crop, round(w * f))

    def rs(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)

    s, t = rs(source), rs(target)
    y0 = int(torch.randint(0, nh - crop + 1, (1,), generator=generator))
    x0 = int(torch.randint(0, nw - crop + 1, (1,), generator=generator))
    return s[..., y0 : y0 + crop, x0 : x0 + crop], t[..., y0 : y0 + crop, x0 : x0 + crop]
