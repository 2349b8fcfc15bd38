"""The shelf entry for kV-Margin (light: stdlib and papershelf.core only)."""

from papershelf.core.registry import Reproduction

REPRODUCTION = Reproduction(
    name="kv-margin",
    distribution="papershelf-kv-margin",
    title="Measuring Generalization with Optimal Transport",
    authors="Ching-Yao Chuang, Youssef Mroueh, Kristjan Greenewald, Antonio Torralba, "
    "Stefanie Jegelka",
    venue="NeurIPS 2021",
    url="https://arxiv.org/abs/2106.03314",
    bibtex="""@inproceedings{chuang2021measuring,
  title     = {Measuring Generalization with Optimal Transport},
  author    = {Chuang, Ching-Yao and Mroueh, Youssef and Greenewald, Kristjan and
               Torralba, Antonio and Jegelka, Stefanie},
  booktitle = {Advances in Neural Information Processing Systems},
  year      = {2021},
  eprint    = {2106.03314},
  archivePrefix = {arXiv}
}""",
    run="papershelf.kv_margin.reproduce:run",
    default_seeds=3,
    headline="Kendall tau of kV-Margin / kV-GN-Margin vs the raw margin on a sweep of digits MLPs "
    "trained to interpolation",
)
