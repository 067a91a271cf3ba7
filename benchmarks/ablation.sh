#!/usr/bin/env bash
# The ablation of benchmarks/RESULTS.md (the paper's Table 3 / Sec. 5.4 at small scale), end to end.
#
# Three models with an equal budget (configs/default.yaml: same data, model, 6000 steps, seed):
#   EraDiff     objective cro        — the shipped default model (runs/default)
#   w/o CRO     objective standard   — Eq. 3 on x_ori, the SD2-Inpaint baseline
#   w/o mix-up  objective cro-const  — CRO with a constant λ
# "w/o SRA" is the EraDiff model sampled with plain self-attention. Every model is run at strength
# 1.0 and 0.6 (the paper's stress test: the sampler starts from the noised input, object included),
# against the classical baselines, on 100 synthesized triples from the held-out photos.
#
#   bash benchmarks/ablation.sh                 # trains what is missing (resumes), then evaluates
#   STEPS=6000 TRIPLES=100 bash benchmarks/ablation.sh
#
# Needs the Debian data (python -m eradiff.train.datasets.debian --cache data/debian) and the eval
# extra. Wall times on this project's 2-core CPU are in benchmarks/default_model/ and RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=PASSIVE   # torch's OpenMP threads must not spin on a shared small CPU

STEPS="${STEPS:-6000}"
TRIPLES="${TRIPLES:-100}"
OUT="${OUT:-benchmarks/results/ablation}"

train() {  # train KIND RUN
  local kind="$1" run="$2"
  if [ -f "${run}/model.safetensors" ]; then echo "ablation: ${run} already trained"; return; fi
  local resume=()
  if compgen -G "${run}/ckpt-*" > /dev/null; then resume=(--resume latest); fi
  eradiff train --config configs/default.yaml --output "${run}" --max-steps "${STEPS}" \
    --set objective.kind="${kind}" --set log.progress=false "${resume[@]}"
}

train cro runs/default
train standard runs/ablation-standard
train cro-const runs/ablation-cro-const

E=runs/default/model.safetensors
S=runs/ablation-standard/model.safetensors
C=runs/ablation-cro-const/model.safetensors
eradiff eval --manifest data/debian/manifest.json --split val --count "${TRIPLES}" --seed 0 \
  -m "EraDiff=${E}" -m "w/o SRA=${E}:sra=false" -m "w/o CRO=${S}" -m "w/o mix-up=${C}" \
  -m "EraDiff s0.6=${E}:strength=0.6" -m "w/o SRA s0.6=${E}:strength=0.6,sra=false" \
  -m "w/o CRO s0.6=${S}:strength=0.6" -m "w/o mix-up s0.6=${C}:strength=0.6" \
  -m telea -m ns -m biharmonic -m patchmatch \
  --out "${OUT}" --examples 3
