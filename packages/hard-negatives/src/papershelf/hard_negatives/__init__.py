"""papershelf.hard_negatives: HCL: contrastive learning with hard negative samples (Robinson et al., ICLR 2021)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
