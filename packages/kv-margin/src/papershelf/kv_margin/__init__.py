"""papershelf.kv_margin: k-variance margins: measuring generalization with optimal transport (Chuang et al., NeurIPS 2021)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
