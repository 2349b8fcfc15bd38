"""papershelf.fair_mixup: Fair Mixup: fairness via interpolation (Chuang & Mroueh, ICLR 2021)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
