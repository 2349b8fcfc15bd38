"""papershelf.infoot: InfoOT: information maximizing optimal transport (Chuang, Jegelka, Alvarez-Melis, ICML 2023)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
