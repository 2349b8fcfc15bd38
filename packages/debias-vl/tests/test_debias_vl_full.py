"""The ``--full`` path end to end: a tiny random CLIP saved with ``save_pretrained`` and tiny fake
Waterbirds / CelebA copies, run through the same runner ``papershelf reproduce debias-vl --full``
uses (no downloads: everything is built here)."""

from __future__ import annotations

import json
import math
import string
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

from papershelf.core.records import read_results
from papershelf.core.reproduce import run_reproduction
from papershelf.debias_vl import CELEBA, Debiaser, clip_text_features
from papershelf.debias_vl._registry import REPRODUCTION
from papershelf.debias_vl.evaluation import load_clip, load_group_split
from papershelf.debias_vl.reproduce import FULL_ENV, resolve_full_inputs

# --- builders (also used by hand: see the CHANGELOG entry for the CLI run) --------------------


def make_tiny_clip(folder: Path) -> Path:
    """Save a random 2-layer CLIPModel and a CLIPProcessor (a character-level BPE tokenizer with
    a made-up vocabulary and merges, 32x32 images) into ``folder``."""
    chars = list(string.ascii_lowercase) + list(".,'-")
    vocab: dict[str, int] = {}
    for token in chars + [c + "</w>" for c in chars]:
        vocab.setdefault(token, len(vocab))
    merges = [("t", "h"), ("th", "e</w>"), ("o", "f</w>"), ("i", "s</w>")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    tokenizer = transformers.CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
    image_processor = transformers.CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    transformers.CLIPProcessor(
        image_processor=image_processor, tokenizer=tokenizer
    ).save_pretrained(folder)
    cfg = transformers.CLIPConfig(
        text_config=dict(
            vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=dict(
            image_size=32, patch_size=8, hidden_size=32, intermediate_size=37,
            num_hidden_layers=2, num_attention_heads=4,
        ),
        projection_dim=16,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.CLIPModel(cfg).save_pretrained(folder)
    return folder


def _image(rng: np.random.Generator, path: Path, size: tuple[int, int]) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, size=(*size, 3), dtype=np.uint8)).save(path)


def make_fake_waterbirds(root: Path, n: int = 24, seed: int = 0) -> Path:
    """``root/waterbird_complete95_forest2water2/`` with metadata.csv and ``n`` small images;
    two thirds in the test split, every (y, place) group present there."""
    rng = np.random.default_rng(seed)
    folder = root / "waterbird_complete95_forest2water2"
    rows = ["img_id,img_filename,y,split,place,place_filename"]
    for i in range(n):
        y, place, split = i % 2, (i // 2) % 2, 2 if i % 3 else i % 2
        name = f"{(1 + y):03d}.Bird/bird_{i:04d}.jpg"
        _image(rng, folder / name, (40, 36))
        rows.append(f"{i},{name},{y},{split},{place},/x/{i}.jpg")
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n")
    return root


ATTRS = ["5_o_Clock_Shadow", "Bald", "Blond_Hair", "Eyeglasses", "Male", "Smiling"]


def make_fake_celeba(root: Path, n: int = 24, seed: int = 1, kaggle_csv: bool = False) -> Path:
    """``root`` with img_align_celeba/ (``n`` small images) and the attribute and partition
    files, in the original whitespace layout or the Kaggle CSV layout."""
    rng = np.random.default_rng(seed)
    attr_rows, part_rows = [], []
    for i in range(n):
        name = f"{i + 1:06d}.jpg"
        _image(rng, root / "img_align_celeba" / name, (44, 36))
        vals = ["1" if v else "-1" for v in rng.integers(0, 2, size=len(ATTRS))]
        vals[ATTRS.index("Blond_Hair")] = "1" if i % 2 else "-1"
        vals[ATTRS.index("Male")] = "1" if (i // 2) % 2 else "-1"
        attr_rows.append([name, *vals])
        part_rows.append([name, "2" if i % 3 else str(i % 2)])
    if kaggle_csv:
        (root / "list_attr_celeba.csv").write_text(
            "\n".join(",".join(r) for r in [["image_id", *ATTRS], *attr_rows]) + "\n"
        )
        (root / "list_eval_partition.csv").write_text(
            "\n".join(",".join(r) for r in [["image_id", "partition"], *part_rows]) + "\n"
        )
    else:
        lines = [str(n), " ".join(ATTRS)] + ["  ".join(r) for r in attr_rows]
        (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
        (root / "list_eval_partition.txt").write_text("\n".join(map(" ".join, part_rows)) + "\n")
    return root


# --- tests ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def full_inputs(tmp_path_factory):
    base = tmp_path_factory.mktemp("full")
    return {
        "model": make_tiny_clip(base / "tiny-clip"),
        "waterbirds": make_fake_waterbirds(base / "waterbirds"),
        "celeba": make_fake_celeba(base / "celeba"),
    }


def _fake_minilm(model_dir):
    # The MiniLM text experiment has its own tests; here it only has to be cheap.
    rng = np.random.default_rng(0)
    table: dict[str, np.ndarray] = {}

    def encode(texts):
        x = np.stack([table.setdefault(t, rng.normal(size=24)) for t in texts])
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    return encode, "toy encoder"


def test_full_run_end_to_end_through_the_cli_runner(full_inputs, tmp_path, monkeypatch):
    from papershelf.debias_vl import reproduce

    monkeypatch.setattr(reproduce, "_minilm_encoder", _fake_minilm)
    for key, var in FULL_ENV.items():
        monkeypatch.setenv(var, str(full_inputs[key]))
    outcome = run_reproduction(
        REPRODUCTION, tmp_path, full=True, seeds=(0,), show_progress=False,
        command="papershelf reproduce debias-vl --full",
    )  # fmt: skip
    assert outcome.ok, outcome.error
    out = tmp_path / "debias-vl"
    assert {"debias_vl_quick.png", "debias_vl_full.png"} <= {p.name for p in out.iterdir()}
    records = read_results(out / "results.json")
    full = [r for r in records if "zero-shot CLIP (tiny-clip)" in r.experiment]
    # 3 methods x (worst, avg, adj_avg) on Waterbirds + 3 x (worst, avg) on CelebA
    assert len(full) == 15
    assert {r.experiment for r in full} == {
        "Waterbirds zero-shot CLIP (tiny-clip)",
        "CelebA zero-shot CLIP (tiny-clip)",
    }
    for r in full:
        assert len(r.values) == 1 and math.isfinite(r.values[0]) and 0 <= r.values[0] <= 100
    claims = [r for r in full if r.claim is not None]
    assert len(claims) == 2 and all(r.status in ("holds", "not shown") for r in claims)
    for name in ("waterbirds", "celeba"):
        groups = json.loads((out / f"{name}_tiny-clip_group_accuracy.json").read_text())
        assert set(groups) == {"zero-shot", "Orth-Proj", "Orth-Cali"}
        for acc in groups.values():
            assert set(acc["per_group"]) == {"0", "1", "2", "3"}
            assert all(math.isfinite(v) for v in acc["per_group"].values())
    paper = [r for r in records if "the paper's table" in r.experiment]
    assert len(paper) == 1 and paper[0].values == [] and "not quoted" in paper[0].paper_note


def test_full_run_without_inputs_fails_fast_saying_what_to_provide(tmp_path, monkeypatch):
    for var in FULL_ENV.values():
        monkeypatch.delenv(var, raising=False)
    outcome = run_reproduction(REPRODUCTION, tmp_path, full=True, seeds=(0,), show_progress=False)
    assert not outcome.ok
    for needed in ("PAPERSHELF_CLIP_MODEL", "PAPERSHELF_WATERBIRDS_DIR", "metadata.csv"):
        assert needed in outcome.error
    assert outcome.runtime_s < 5  # checked before the quick part runs


def test_full_inputs_errors_name_the_missing_piece(full_inputs, tmp_path):
    model, birds, celeba = (str(full_inputs[k]) for k in ("model", "waterbirds", "celeba"))
    env = {FULL_ENV["model"]: model, FULL_ENV["waterbirds"]: birds}
    models, datasets = resolve_full_inputs(env)
    assert models == [Path(model)] and datasets == {"waterbirds": Path(birds)}
    with pytest.raises(RuntimeError, match="PAPERSHELF_CLIP_MODEL"):
        resolve_full_inputs({FULL_ENV["celeba"]: celeba})
    with pytest.raises(RuntimeError, match="PAPERSHELF_CELEBA_DIR"):
        resolve_full_inputs({FULL_ENV["model"]: model})
    with pytest.raises(FileNotFoundError, match=r"PAPERSHELF_CLIP_MODEL: no config\.json"):
        resolve_full_inputs({FULL_ENV["model"]: str(tmp_path), FULL_ENV["celeba"]: celeba})
    with pytest.raises(FileNotFoundError, match=r"PAPERSHELF_WATERBIRDS_DIR: no metadata\.csv"):
        resolve_full_inputs({FULL_ENV["model"]: model, FULL_ENV["waterbirds"]: str(tmp_path)})
    with pytest.raises(FileNotFoundError, match=r"PAPERSHELF_CELEBA_DIR: .*does not exist"):
        resolve_full_inputs({FULL_ENV["model"]: model, FULL_ENV["celeba"]: str(tmp_path / "x")})
    # a half-copied dataset: annotation files there, one test image missing
    broken = make_fake_celeba(tmp_path / "broken", n=6)
    (broken / "img_align_celeba" / "000002.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="1 of 4 celeba test images are missing"):
        resolve_full_inputs({FULL_ENV["model"]: model, FULL_ENV["celeba"]: str(broken)})
    # a model folder without the processor files
    (tmp_path / "weights-only").mkdir()
    (tmp_path / "weights-only" / "config.json").write_text(
        (Path(model) / "config.json").read_text()
    )
    with pytest.raises(FileNotFoundError, match="tokenizer"):
        load_clip(tmp_path / "weights-only")


def test_celeba_layouts_and_waterbirds_folder_agree(full_inputs, tmp_path):
    txt = load_group_split(full_inputs["celeba"], "celeba")
    csv = load_group_split(make_fake_celeba(tmp_path, kaggle_csv=True), "celeba")
    assert [p.name for p in txt[0]] == [p.name for p in csv[0]] and len(txt[0]) == 16
    np.testing.assert_array_equal(txt[1], csv[1])
    np.testing.assert_array_equal(txt[2], csv[2])
    assert set(2 * txt[1] + txt[2]) == {0, 1, 2, 3}
    parent = load_group_split(full_inputs["waterbirds"], "waterbirds")
    inner = load_group_split(
        full_inputs["waterbirds"] / "waterbird_complete95_forest2water2", "waterbirds"
    )
    assert parent[0] == inner[0] and len(parent[0]) == 16
    with pytest.raises(ValueError, match="dataset"):
        load_group_split(tmp_path, "imagenet")


def test_load_clip_from_a_cached_hub_id_offline(tmp_path):
    """A hub id already in the local Hugging Face cache loads with local_files_only=True."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--tiny-clip"
    make_tiny_clip(repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    model, tok, _ = load_clip("someone/tiny-clip", cache_dir=tmp_path / "hub")
    direct, _, _ = load_clip(repo / "snapshots" / commit)
    feats = clip_text_features(model, tok, ["a photo of a bird"])
    assert torch.equal(feats, clip_text_features(direct, tok, ["a photo of a bird"]))
    model, _, _ = load_clip("someone/tiny-clip", cache_dir=tmp_path / "hub", revision=commit)
    with pytest.raises(FileNotFoundError, match="local Hugging Face cache"):
        load_clip("someone/not-cached", cache_dir=tmp_path / "hub")


def test_open_clip_rn_model_through_the_adapter(tmp_path, monkeypatch):
    """The paper's RN50 family through open_clip: a tiny ModifiedResNet CLIP built in code."""
    import open_clip
    from PIL import Image

    from papershelf.debias_vl.evaluation import clip_image_features

    cfg = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 8, "patch_size": None},
        "text_cfg": {
            "context_length": 77,
            "vocab_size": 49408,
            "width": 16,
            "heads": 2,
            "layers": 1,
        },
    }
    monkeypatch.setitem(open_clip.factory._MODEL_CONFIGS, "tiny-RN", cfg)
    torch.manual_seed(0)
    model, tok, proc = load_clip("open_clip:tiny-RN")
    ckpt = tmp_path / "tiny-rn.pt"
    torch.save(model.model.state_dict(), ckpt)
    torch.manual_seed(1)  # other random init: the checkpoint must win
    loaded, _, _ = load_clip("open_clip:tiny-RN", pretrained=ckpt)
    texts = ["A photo of a male.", "A photo of a female doctor."]
    feats = clip_text_features(loaded, tok, texts)
    assert feats.shape == (2, 16)
    with torch.no_grad():
        ref = model.model.encode_text(open_clip.get_tokenizer("tiny-RN")(texts))
    assert torch.allclose(feats, torch.nn.functional.normalize(ref, dim=-1), atol=1e-6)
    # the debiaser works on its embeddings as on a transformers CLIP's
    deb = Debiaser(lam=100.0).fit_texts(
        lambda t: clip_text_features(loaded, tok, t),
        CELEBA.spurious_prompts,
        CELEBA.candidate_prompts,
        CELEBA.index_pairs,
    )
    assert deb.transform(feats).shape == (2, 16)
    paths = []
    for i in range(3):
        path = tmp_path / f"im{i}.png"
        Image.fromarray(np.full((40, 48, 3), 60 * i, np.uint8)).save(path)
        paths.append(path)
    images = clip_image_features(loaded, proc, paths)
    assert images.shape == (3, 16) and torch.allclose(images.norm(dim=1), torch.ones(3))
    with pytest.raises(FileNotFoundError, match="local_files_only"):
        load_clip("open_clip:tiny-RN", pretrained="openai")
    with pytest.raises(ValueError, match="unknown open_clip architecture"):
        load_clip("open_clip:no-such-model")
