"""papershelf.tmd: Tree Mover's Distance for graphs (Chuang & Jegelka, NeurIPS 2022)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
