"""papershelf.moviegen: Movie Gen: a cast of media foundation models (Polyak et al. 2024)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
