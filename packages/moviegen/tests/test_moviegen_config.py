"""Parameter counts and configuration validation."""

import pytest
import torch

from papershelf.moviegen import (
    MovieGenTransformer,
    TAEConfig,
    TransformerConfig,
    param_count,
    preset,
    tae_preset,
)


def _meta_count(cfg: TransformerConfig) -> int:
    with torch.device("meta"):
        model = MovieGenTransformer(cfg)
    return sum(p.numel() for p in model.parameters())


def test_30b_preset_counts_between_29_and_30_5_billion():
    cfg = preset("30b")
    n = _meta_count(cfg)
    assert n == param_count(cfg)
    assert 29.0e9 <= n <= 30.5e9
    # Blocks alone: 48 (8 d^2 + 3 d f) = 28.99B.
    assert 48 * (8 * 6144**2 + 3 * 6144 * 16384) == pytest.approx(28.99e9, rel=1e-3)


def test_per_layer_adaln_is_about_40b_and_inconsistent_with_30b():
    cfg = preset("30b", adaln="per_layer")
    n = _meta_count(cfg)
    assert n == param_count(cfg)
    assert n == pytest.approx(40.0e9, rel=0.01)


@pytest.mark.parametrize(("name", "expected", "rel"), [("5b", 4.94e9, 0.02), ("1b", 0.94e9, 0.02)])
def test_smaller_presets(name, expected, rel):
    cfg = preset(name)
    n = _meta_count(cfg)
    assert n == param_count(cfg)
    assert n == pytest.approx(expected, rel=rel)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(qk_norm=True),
        dict(cross_attn_norm=False),
        dict(extra_in_channels=8),
        dict(patch=(2, 2, 2)),
    ],
)
def test_closed_form_count_matches_variants(overrides):
    cfg = preset("tiny", **overrides)
    assert param_count(cfg) == sum(p.numel() for p in MovieGenTransformer(cfg).parameters())


def test_paper_tae_compression():
    cfg = tae_preset("paper")
    assert cfg.spatial_factor == 8 and cfg.temporal_factor == 8 and cfg.latent_channels == 16
    # value compression: 8 * 8 * 8 * 3 / 16 = 96
    assert cfg.spatial_factor**2 * cfg.temporal_factor * 3 / cfg.latent_channels == 96


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(adaln="both"), "adaln"),
        (dict(dim=130), "divisible"),
        (dict(num_layers=0), "num_layers"),
        (dict(patch=(1, 2)), "patch"),
        (dict(text_dims={}), "text_dims"),
    ],
)
def test_bad_transformer_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TransformerConfig(**kwargs)


def test_bad_preset_and_tae_config():
    with pytest.raises(ValueError, match="name"):
        preset("100b")
    with pytest.raises(ValueError, match="one entry per level"):
        TAEConfig(channels=(8, 8), spatial_down=(True,), temporal_down=(True, False), norm_groups=4)
