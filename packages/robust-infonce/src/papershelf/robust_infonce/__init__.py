"""papershelf.robust_infonce: RINCE: robust contrastive learning against noisy views (Chuang et al., CVPR 2022)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
