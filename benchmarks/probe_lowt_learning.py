"""How fast does a fresh copy of the default UNet learn low-noise denoising? (diagnostic)

Trains a freshly initialised UNet of the shipped architecture (conv_out zeroed, as the residual
model starts) for 300 AdamW steps (lr 5e-4, batch 4, 128 px, 1 thread) on the easiest part of the
task: the known region, where z_0 = 0 and the true v is √ᾱ·ε. Prints the loss and the correlation
of v̂ with ε at τ = 20 every 50 steps. ``t20`` trains at τ = 20 only; ``uniform`` draws
τ ~ U{0..999} as training does.

    python benchmarks/probe_lowt_learning.py [t20|uniform] [WIDTHS]

WIDTHS (e.g. ``96,128,192,224``) replaces ``block_out_channels`` to try a wider UNet.
"""

from __future__ import annotations

import sys
import time

import torch

import eradiff.core as core
from eradiff.models.loading import load_model


def main(mode: str = "t20", widths: str | None = None, steps: int = 300, batch: int = 4) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = load_model(None)  # the shipped config: only its conditioning and schedule are used
    unet_config = dict(model.unet.config)
    if widths:
        unet_config["block_out_channels"] = [int(w) for w in widths.split(",")]
    unet = type(model.unet).from_config(unet_config).float()
    n_params = sum(p.numel() for p in unet.parameters()) / 1e6
    print(f"block_out_channels {list(unet.config.block_out_channels)}: {n_params:.1f} M parameters")
    torch.nn.init.zeros_(unet.conv_out.weight)
    torch.nn.init.zeros_(unet.conv_out.bias)
    alpha_bar = model.schedule.alpha_bar().float()
    opt = torch.optim.AdamW(unet.parameters(), lr=5e-4, weight_decay=0)
    x = torch.rand(batch, 3, 128, 128) * 2 - 1
    M = torch.zeros(batch, 128, 128, dtype=torch.bool)
    M[:, 40:88, 40:88] = True
    cond = model.condition(x, M)
    channels = cond.channels.float()
    known = ~cond.mask[:, None].bool().expand(batch, 48, 32, 32)
    t0 = time.time()
    for step in range(steps + 1):
        tau = torch.full((batch,), 20) if mode == "t20" else torch.randint(0, 1000, (batch,))
        a = alpha_bar[tau]
        eps = torch.randn(batch, 48, 32, 32)
        z_0 = torch.zeros_like(eps)  # the known region, in residual space
        out = unet(torch.cat([core.q_sample(z_0, eps, a), channels], 1), tau).sample
        loss = ((out - core.velocity(z_0, eps, a)) ** 2)[known].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0:
            with torch.no_grad():
                tau = torch.full((batch,), 20)
                eps = torch.randn(batch, 48, 32, 32)
                z_t = core.q_sample(torch.zeros_like(eps), eps, alpha_bar[tau])
                out = unet(torch.cat([z_t, channels], 1), tau).sample
                corr = float(torch.corrcoef(torch.stack([out[known], eps[known]]))[0, 1])
            print(f"{mode} step {step:4d}  loss {loss.item():.3f}  corr(v̂, ε) at τ=20 {corr:.3f}  "
                  f"std v̂ {out[known].std().item():.3f}  {time.time() - t0:.0f} s", flush=True)  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "t20", sys.argv[2] if len(sys.argv) > 2 else None)
