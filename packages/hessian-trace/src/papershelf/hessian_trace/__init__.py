"""papershelf.hessian_trace: Flatness (Hessian trace) regularization for deep matrix factorization (Gatmiry et al., NeurIPS 2023)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
