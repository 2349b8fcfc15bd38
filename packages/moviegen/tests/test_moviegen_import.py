"""The package imports and works without its optional extras."""

import subprocess
import sys

CODE = """
import sys
for m in ("transformers", "diffusers", "matplotlib", "imageio", "accelerate"):
    sys.modules[m] = None  # importing any of them now fails
import torch
import papershelf.moviegen as mg
tae = mg.TemporalAutoencoder(mg.tae_preset("tiny"))
z = tae.encode(torch.zeros(1, 3, 8, 32, 32)).mode()
model = mg.MovieGenTransformer(mg.preset("tiny", text_dims={"w": 4}))
text = mg.TextContext({"w": torch.zeros(1, 2, 4)}, {"w": torch.ones(1, 2, dtype=torch.bool)})
assert model(z, torch.rand(1), text).shape == z.shape
print("ok", sorted(mg.__all__) == sorted(set(mg.__all__)))
"""


def test_imports_and_runs_without_optional_extras():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok True"
