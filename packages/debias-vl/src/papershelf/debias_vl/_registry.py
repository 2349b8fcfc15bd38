"""Reproduction entry for ``papershelf reproduce debias-vl`` (light: no torch import here)."""

from papershelf.core.registry import Reproduction

REPRODUCTION = Reproduction(
    name="debias-vl",
    distribution="papershelf-debias-vl",
    title="Debiasing Vision-Language Models via Biased Prompts",
    authors="Ching-Yao Chuang, Varun Jampani, Yuanzhen Li, Antonio Torralba, Stefanie Jegelka",
    venue="arXiv preprint 2302.00070, 2023",
    url="https://arxiv.org/abs/2302.00070",
    bibtex="""@article{chuang2023debiasing,
  title   = {Debiasing Vision-Language Models via Biased Prompts},
  author  = {Chuang, Ching-Yao and Jampani, Varun and Li, Yuanzhen and Torralba, Antonio and Jegelka, Stefanie},
  journal = {arXiv preprint arXiv:2302.00070},
  year    = {2023}
}""",
    run="papershelf.debias_vl.reproduce:run",
    default_seeds=5,
    headline=(
        "P0 and P* remove the gender direction from real MiniLM profession prompts and raise "
        "worst-group zero-shot accuracy on a controlled synthetic task"
    ),
)
