"""papershelf.debias_vl: Debiasing vision-language models via biased prompts (Chuang et al., 2023)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
