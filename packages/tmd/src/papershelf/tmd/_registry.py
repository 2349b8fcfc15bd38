"""Reproduce-registry entry for papershelf-tmd (stdlib and papershelf.core only: no torch here)."""

from papershelf.core.registry import Reproduction

REPRODUCTION = Reproduction(
    name="tmd",
    distribution="papershelf-tmd",
    title="Tree Mover's Distance: Bridging Graph Metrics and Stability of Graph Neural Networks",
    authors="Ching-Yao Chuang, Stefanie Jegelka",
    venue="NeurIPS 2022",
    url="https://arxiv.org/abs/2210.01906",
    bibtex="""@inproceedings{chuang2022tree,
  title     = {Tree Mover's Distance: Bridging Graph Metrics and Stability of Graph Neural Networks},
  author    = {Chuang, Ching-Yao and Jegelka, Stefanie},
  booktitle = {Advances in Neural Information Processing Systems},
  volume    = {35},
  year      = {2022}
}""",
    run="papershelf.tmd.reproduce:run",
    default_seeds=5,
    headline=(
        "TMD-SVM on synthetic molecule-like graphs (deeper trees beat plain node-feature OT), "
        "TMD vs GNN accuracy drop under shift, and the GIN stability bound on every pair"
    ),
)
