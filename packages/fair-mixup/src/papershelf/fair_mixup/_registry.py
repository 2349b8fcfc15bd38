"""Reproduction entry for ``papershelf reproduce fair-mixup`` (light: no torch import here)."""

from papershelf.core.registry import Reproduction

REPRODUCTION = Reproduction(
    name="fair-mixup",
    distribution="papershelf-fair-mixup",
    title="Fair Mixup: Fairness via Interpolation",
    authors="Ching-Yao Chuang, Youssef Mroueh",
    venue="ICLR 2021",
    url="https://arxiv.org/abs/2103.06503",
    bibtex="""@inproceedings{chuang2021fair,
  title     = {Fair Mixup: Fairness via Interpolation},
  author    = {Chuang, Ching-Yao and Mroueh, Youssef},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2021},
  url       = {https://openreview.net/forum?id=DNl5s5BXeBn}
}""",
    run="papershelf.fair_mixup.reproduce:run",
    default_seeds=3,
    headline=(
        "on UCI Adult (sex), ERM vs GapReg vs fair mixup over a lambda sweep for DP and EO: "
        "test AP at matched test gap, and train vs test gap on a small training set"
    ),
)
