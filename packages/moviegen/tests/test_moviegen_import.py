"""The package imports lazily and works without its optional extras."""

import subprocess
import sys

LAZY = """
import sys
import papershelf.moviegen as mg
heavy = [m for m in ("torch", "diffusers", "transformers", "numpy") if m in sys.modules]
print("lazy", heavy, mg.__version__)
"""

CODE = """
import sys
for m in ("transformers", "matplotlib", "imageio", "accelerate"):
    sys.modules[m] = None  # importing any of them now fails
import torch
import papershelf.moviegen as mg
tae = mg.TemporalAutoencoder(mg.tae_preset("tiny"))
z = tae.encode(torch.zeros(1, 3, 8, 32, 32)).latent_dist.mode()
model = mg.MovieGenTransformer(mg.preset("tiny", text_dims={"w": 4}))
text = mg.TextContext({"w": torch.zeros(1, 2, 4)}, {"w": torch.ones(1, 2, dtype=torch.bool)})
assert model(z, torch.rand(1), text).shape == z.shape
assert mg.outlier_penalty_loss is mg.tae.outlier_penalty_loss  # old names stay reachable
try:
    mg.tiny_text_encoders()
except ImportError as e:
    assert "papershelf-moviegen[text]" in str(e), e
else:
    raise AssertionError("no ImportError without transformers")
print("ok", sorted(mg.__all__) == sorted(set(mg.__all__)), len(mg.__all__) <= 12)
"""


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_import_is_lazy():
    from papershelf.moviegen import __version__

    assert _run(LAZY) == f"lazy [] {__version__}"


def test_imports_and_runs_without_optional_extras():
    assert _run(CODE) == "ok True True"
