"""Can the built-in architecture learn low-noise denoising *inside the hole*? (diagnostic, train split)

Issue 12's acceptance probe: fine-tune a model on background-chain states at low noise only
(τ ~ U{0..τ_max}) with the standard v-loss restricted to the hole, and report the hole v-loss
relative to v̂ = 0 (1.0 = no denoising; a good denoiser reaches a small fraction) at τ = 20, 50, 100
on held pairs. ``head`` adds a small full-resolution convolutional head on the pixel-shuffled
output (zero-initialised, so it starts as the plain model) to test whether the 4× unshuffle is
the bottleneck.

    python benchmarks/probe_hole_denoising.py MODEL.safetensors [plain|head] [STEPS]
"""

from __future__ import annotations

import json
import sys
import time

import torch
import torch.nn.functional as F

import eradiff.core as core
from eradiff.models.loading import load_model
from eradiff.train.data import PairDataset
from eradiff.train.sources import CutoutSource
from eradiff.train.synthesis import SynthesisConfig


class FullResHead(torch.nn.Module):
    """v̂ ← v̂ + g([z, v̂, mask, fill, ln σ]) at full resolution; g's last conv starts at zero."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(11, width, 3, padding=1), torch.nn.SiLU(),
            torch.nn.Conv2d(width, width, 3, padding=1), torch.nn.SiLU(),
            torch.nn.Conv2d(width, width, 3, padding=1), torch.nn.SiLU(),
            torch.nn.Conv2d(width, 3, 3, padding=1),
        )  # fmt: skip
        torch.nn.init.zeros_(self.net[-1].weight)
        torch.nn.init.zeros_(self.net[-1].bias)

    def forward(self, z, v, mask, fill, log_sigma):
        b, _, h, w = z.shape
        s = log_sigma.view(b, 1, 1, 1).expand(b, 1, h, w)
        return v + self.net(torch.cat([z, v, mask, fill, s], 1))


def main(path: str, variant: str = "plain", steps: int = 150, batch: int = 8, tau_max: int = 150) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = load_model(path)
    model.unet.float().train().requires_grad_(True)
    f = model.factor
    ab = model.schedule.alpha_bar().float()
    source = CutoutSource.from_manifest("data/debian/manifest.json", split="train")
    ds = PairDataset(source, SynthesisConfig(crop_size=128, short_side_range=(160, 448), scale_range=(0.2, 0.55)),
                     seed=7, length=batch * 8 + 16, fill=model.fill)  # fmt: skip
    items = [ds[i] for i in range(len(ds))]

    def stack(sel):
        x = torch.stack([items[i]["x_ori"] for i in sel])
        M = torch.stack([items[i]["mask"][0] > 0.5 for i in sel])
        fill = torch.stack([items[i]["fill"] for i in sel])
        cond = model.condition(x, M, fill=fill)
        return model.encode(x, cond), cond, M, fill

    train_sel, held = list(range(batch * 8)), list(range(batch * 8, len(items)))
    z_held, cond_held, M_held, fill_held = stack(held)
    head = FullResHead() if variant == "head" else None
    params = list(model.unet.parameters()) + (list(head.parameters()) if head else [])
    opt = torch.optim.AdamW(params, lr=3e-4, weight_decay=0)

    def predict(z_t, tau, cond, M, fill):
        v = model.unet(torch.cat([z_t, cond.channels], 1), tau).sample
        if head is None:
            return v
        sig = 0.5 * torch.log((1 - ab[tau]) / ab[tau])
        vf = head(F.pixel_shuffle(z_t, f), F.pixel_shuffle(v, f), M[:, None].float(), fill, sig)
        return F.pixel_unshuffle(vf, f)

    def hole(M):  # the pixel-level hole at the unshuffled grid, one flag per state value
        return F.pixel_unshuffle(M[:, None].repeat(1, 3, 1, 1).float(), f) > 0.5

    def hole_loss(out, target, m):
        return ((out - target) ** 2)[m].mean()

    m_held = hole(M_held)
    rows = []
    g = torch.Generator().manual_seed(1)
    t0 = time.time()
    for step in range(steps + 1):
        if step % 25 == 0:
            with torch.no_grad():
                row = {"step": step, "seconds": round(time.time() - t0, 1)}
                for tau_v in (20, 50, 100):
                    gh = torch.Generator().manual_seed(100 + tau_v)
                    eps = torch.randn(z_held.shape, generator=gh)
                    tau = torch.full((len(held),), tau_v)
                    z_t = core.q_sample(z_held, eps, ab[tau])
                    v = core.velocity(z_held, eps, ab[tau])
                    out = predict(z_t, tau, cond_held, M_held, fill_held)
                    row[f"ratio_t{tau_v}"] = round(float(hole_loss(out, v, m_held) / hole_loss(0 * v, v, m_held)), 4)
                rows.append(row)
                print(json.dumps(row), flush=True)
        if step == steps:
            break
        sel = torch.randperm(len(train_sel), generator=g)[:batch].tolist()
        z0, cond, M, fill = stack(sel)
        tau = torch.randint(0, tau_max, (batch,), generator=g)
        eps = torch.randn(z0.shape, generator=g)
        out = predict(core.q_sample(z0, eps, ab[tau]), tau, cond, M, fill)
        loss = hole_loss(out, core.velocity(z0, eps, ab[tau]), hole(M))
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(json.dumps({"variant": variant, "model": path, "rows": rows}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "plain", int(sys.argv[3]) if len(sys.argv) > 3 else 150)
