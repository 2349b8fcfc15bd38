"""papershelf.fairy: Fairy: anchor-based cross-frame attention for fast instruction-guided video editing (Wu et al. 2024)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
