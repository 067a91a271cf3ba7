#!/usr/bin/env bash
# The ablation of benchmarks/RESULTS.md (the paper's Table 3 / Sec. 5.4 at small scale), end to end.
#
# Equal budget: three models trained from the same config (configs/cro-from-scratch.yaml: same data, model,
# seed, batch, learning-rate schedule), each stopped after BUDGET steps of that schedule
# (train.stop_at), differing only in the objective:
#   EraDiff     objective cro        — runs/ablation-cro (== the first BUDGET steps of the default run)
#   w/o CRO     objective standard   — Eq. 3 on x_ori, the SD2-Inpaint baseline
#   w/o mix-up  objective cro-const  — CRO with a constant λ
# "w/o SRA" is the EraDiff model sampled with plain self-attention. The shipped default model
# (the full 6000-step cro run, eradiff/weights/default.safetensors) is evaluated next to them.
# Every model runs at strength 1.0 and 0.6 (the paper's stress test: the sampler starts from the
# noised input, object included), against the classical baselines, on TRIPLES triples synthesized
# from the held-out (val) photos and stamps.
#
#   bash benchmarks/ablation.sh                         # trains what is missing (resumes), evaluates
#   BUDGET=6000 TRIPLES=100 bash benchmarks/ablation.sh # the full-budget version (about 4 h of CPU)
#
# The CRO entry is bit-identical to the default run's first BUDGET steps: copy
# runs/default/ckpt-<BUDGET> into runs/ablation-cro/ to skip retraining it.
# Needs the Debian data (python -m eradiff.train.datasets.debian --cache data/debian) and the eval
# extra. Wall times on this project's 2-core CPU are in benchmarks/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=PASSIVE   # torch's OpenMP threads must not spin on a shared small CPU

BUDGET="${BUDGET:-1000}"
TRIPLES="${TRIPLES:-60}"
OUT="${OUT:-benchmarks/results/ablation}"
SHIPPED="${SHIPPED:-eradiff/weights/default.safetensors}"

train() {  # train KIND RUN
  local kind="$1" run="$2"
  if [ -f "${run}/model.safetensors" ]; then echo "ablation: ${run} already trained"; return; fi
  local resume=()
  if compgen -G "${run}/ckpt-*" > /dev/null; then resume=(--resume latest); fi
  eradiff train --config configs/cro-from-scratch.yaml --output "${run}" --set train.stop_at="${BUDGET}" \
    --set objective.kind="${kind}" --set log.progress=false --set log.sample_every=0 "${resume[@]}"
}

train cro runs/ablation-cro
train standard runs/ablation-standard
train cro-const runs/ablation-cro-const

E=runs/ablation-cro/model.safetensors
S=runs/ablation-standard/model.safetensors
C=runs/ablation-cro-const/model.safetensors
D="${SHIPPED}"
# Table 1: the ablation at the equal budget; Table 2: the shipped model (same triples: same seed).
eradiff eval --manifest data/debian/manifest.json --split val --count "${TRIPLES}" --seed 0 \
  -m "EraDiff=${E}" -m "w/o SRA=${E}:sra=false" -m "w/o CRO=${S}" -m "w/o mix-up=${C}" \
  -m "EraDiff s0.6=${E}:strength=0.6" -m "w/o SRA s0.6=${E}:strength=0.6,sra=false" \
  -m "w/o CRO s0.6=${S}:strength=0.6" -m "w/o mix-up s0.6=${C}:strength=0.6" \
  -m telea -m ns -m biharmonic -m patchmatch \
  --out "${OUT}" --examples 3
eradiff eval --manifest data/debian/manifest.json --split val --count "${TRIPLES}" --seed 0 \
  -m "shipped=${D}" -m "shipped w/o SRA=${D}:sra=false" -m "shipped s0.6=${D}:strength=0.6" \
  -m telea -m patchmatch \
  --out "${OUT}-shipped" --examples 3
