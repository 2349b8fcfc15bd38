"""TAE temporal tiling: peak memory and time of tiled vs untiled decode as the video grows.

    uv run --no-sync python packages/moviegen/benchmarks/bench_tae_tiling.py

Each (mode, length) runs in a fresh subprocess so its peak RSS is its own. Tiling uses
the paper's 4 latent frames per tile with an overlap of 2.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

CHILD = """
import json, resource, sys, time, torch
torch.set_num_threads(1)
from papershelf.moviegen import TAEConfig, TemporalAutoencoder, temporal_tiled_decode
mode, T = sys.argv[1], int(sys.argv[2])
torch.manual_seed(0)
cfg = TAEConfig(latent_channels=16, channels=(32, 32, 64, 64), num_res_blocks=1, norm_groups=8)
tae = TemporalAutoencoder(cfg).eval()
z = torch.randn(1, 16, T, 8, 8)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with torch.no_grad():
    t0 = time.perf_counter()
    x = tae.decode(z).sample if mode == "untiled" else temporal_tiled_decode(tae, z, 4, 2)
    dt = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"mode": mode, "latent_frames": T, "pixel_frames": x.shape[2],
                  "seconds": dt, "peak_extra_MiB": (peak - base) / 1024,
                  "output_MiB": x.numel() * 4 / 2**20}))
"""


def main() -> None:
    rows = []
    for T in (4, 8, 16, 32):
        for mode in ("untiled", "tiled"):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, mode, str(T)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            rows.append(json.loads(out))
            r = rows[-1]
            print(
                f"{mode:8s} latent T={T:3d} ({r['pixel_frames']:4d} frames, 64x64 px): "
                f"{r['seconds']:7.2f} s, peak +{r['peak_extra_MiB']:7.1f} MiB "
                f"(output itself {r['output_MiB']:.1f} MiB)",
                flush=True,
            )
    print(json.dumps(rows))


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - t0:.1f} s")
