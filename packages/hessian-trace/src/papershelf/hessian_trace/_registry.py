"""The shelf entry of papershelf-hessian-trace (light: no torch import)."""

from papershelf.core.registry import Reproduction

REPRODUCTION = Reproduction(
    name="hessian-trace",
    distribution="papershelf-hessian-trace",
    title="What is the Inductive Bias of Flatness Regularization? A Study of Deep Matrix "
    "Factorization Models",
    authors="Gatmiry, Li, Ma, Reddi, Jegelka, Chuang",
    venue="NeurIPS 2023",
    url="https://arxiv.org/abs/2306.13239",
    bibtex="""@inproceedings{gatmiry2023flatness,
  title     = {What is the Inductive Bias of Flatness Regularization? A Study of Deep Matrix Factorization Models},
  author    = {Gatmiry, Khashayar and Li, Zhiyuan and Ma, Tengyu and Reddi, Sashank and
               Jegelka, Stefanie and Chuang, Ching-Yao},
  booktitle = {Advances in Neural Information Processing Systems},
  volume    = {36},
  year      = {2023},
  eprint    = {2306.13239},
  archivePrefix = {arXiv}
}""",
    run="papershelf.hessian_trace.reproduce:run",
    default_seeds=3,
    headline="low-rank matrix sensing: trace-regularized deep linear nets find the minimum "
    "nuclear-norm solution at every depth",
)
