"""Issue 17, "done when": every cast video model starts from a saved T2V checkpoint.

The T2V transformer is written with ``save_pretrained`` and read back with
``from_pretrained``; PT2V, Edit and the spatial upsampler built by ``from_t2v`` hold every
tensor of the checkpoint file (compared with the safetensors file itself) and compute the
T2V velocity at initialisation.
"""

from __future__ import annotations

import torch
from safetensors.torch import load_file

from papershelf.moviegen.cast import EditModel, PersonalizedVideoModel, SpatialUpsampler
from papershelf.moviegen.config import preset
from papershelf.moviegen.text import TextContext
from papershelf.moviegen.transformer import MovieGenTransformer


def test_each_cast_video_model_starts_from_a_saved_t2v_checkpoint(tmp_path):
    g = torch.Generator().manual_seed(0)
    t2v = MovieGenTransformer(preset("tiny", in_channels=12, max_pos=(4, 4, 4), text_dims={"w": 9}))
    with torch.no_grad():  # random everywhere: a zero-initialised head would hide a lost tensor
        for p in t2v.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    t2v.save_pretrained(tmp_path)
    ckpt = load_file(tmp_path / "diffusion_pytorch_model.safetensors")
    loaded = MovieGenTransformer.from_pretrained(tmp_path).eval()
    models = {
        "pt2v": PersonalizedVideoModel.from_t2v(loaded).eval(),
        "edit": EditModel.from_t2v(loaded, n_tasks=3).eval(),
        "upsampler": SpatialUpsampler.from_t2v(loaded, window=4, overlap=2).eval(),
    }
    for name, model in models.items():
        state = model.transformer.state_dict()
        assert set(state) == set(ckpt), name  # every checkpoint key, no other trunk key
        for k, v in ckpt.items():
            if k == "patchify.weight" and state[k].shape != v.shape:  # + conditioning channels
                assert torch.equal(state[k][:, : v.shape[1]], v), name
                assert not bool(state[k][:, v.shape[1] :].any()), name
            else:
                assert torch.equal(state[k], v), (name, k)
    x, t = torch.randn(2, 12, 2, 4, 4, generator=g), torch.rand(2, generator=g)
    words = torch.randn(2, 3, 9, generator=g)
    text = TextContext({"w": words}, {"w": torch.ones(2, 3, dtype=torch.bool)})
    ref = loaded(x, t, text)
    other = torch.randn(x.shape, generator=g)
    assert torch.equal(models["pt2v"](x, t, words, None), ref)  # no reference image
    task = torch.tensor([1, 2])
    assert torch.equal(models["edit"](x, t, other, words, task, task_tokens=False), ref)
    assert torch.equal(models["upsampler"](x, t, other, text), ref)  # any low-res latent
