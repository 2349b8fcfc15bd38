"""Registry entry for ``papershelf reproduce moviegen`` (light: no torch import)."""

from papershelf.core.registry import Reproduction

REPRODUCTION = Reproduction(
    name="moviegen",
    distribution="papershelf-moviegen",
    title="Movie Gen: A Cast of Media Foundation Models",
    authors="Polyak, Zohar, Brown, Tjandra, et al. (The Movie Gen team, Meta)",
    venue="arXiv 2024",
    url="https://arxiv.org/abs/2410.13720",
    bibtex="""@misc{polyak2024moviegen,
  title         = {Movie Gen: A Cast of Media Foundation Models},
  author        = {Polyak, Adam and Zohar, Amit and Brown, Andrew and Tjandra, Andros and others},
  year          = {2024},
  eprint        = {2410.13720},
  archivePrefix = {arXiv},
  primaryClass  = {cs.CV}
}""",
    run="papershelf.moviegen.reproduce:run",
    default_seeds=2,
    headline="tiny TAE + flow-matching transformer trained on synthetic moving shapes on CPU: "
    "samples follow the prompt's direction, shape and colour (intervals over seeds)",
)
