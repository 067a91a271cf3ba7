#!/usr/bin/env bash
# The ablation of benchmarks/RESULTS.md (the paper's Table 3 / Fig. 7 at small scale), end to end:
# three models trained with an equal budget on the same data (CRO, standard ε/v objective, CRO with
# constant λ), each erased with and without SRA and at strength 1.0 and 0.6, against the classical
# baselines and the shipped default model, on 100 held-out synthesized triples.
#
#   bash benchmarks/ablation.sh            # train (skips runs that finished) and evaluate
#   STEPS=2000 TRIPLES=100 bash benchmarks/ablation.sh
#
# Needs the Debian data (python -m eradiff.train.datasets.debian --cache data/debian) and the
# eval extra. On the 2-core CPU of this project each training run took the wall time recorded in
# runs/ablation-*/metrics.jsonl and the evaluation about an hour.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=PASSIVE   # torch's OpenMP threads must not spin on a shared 2-core CPU

STEPS="${STEPS:-2000}"
TRIPLES="${TRIPLES:-100}"
OUT="${OUT:-benchmarks/results/ablation}"

for kind in cro standard cro-const; do
  run="runs/ablation-${kind}"
  if [ -f "${run}/model.safetensors" ]; then
    echo "ablation: ${run} already trained"
    continue
  fi
  resume=()
  if compgen -G "${run}/ckpt-*" > /dev/null; then resume=(--resume latest); fi
  eradiff train --config configs/default.yaml --output "${run}" --max-steps "${STEPS}" \
    --set objective.kind="${kind}" --set log.progress=false --set log.sample_every=0 "${resume[@]}"
done

methods=()
for kind in cro standard cro-const; do
  case "${kind}" in
    cro) name="EraDiff (CRO+SRA)";;
    standard) name="w/o CRO";;
    cro-const) name="w/o mix-up";;
  esac
  m="runs/ablation-${kind}/model.safetensors"
  methods+=(-m "${name}=${m}" -m "${name} s0.6=${m}:strength=0.6")
  if [ "${kind}" = cro ]; then
    methods+=(-m "w/o SRA=${m}:sra=false" -m "w/o SRA s0.6=${m}:strength=0.6,sra=false")
  fi
done
methods+=(-m "default model=default" -m "default model s0.6=default:strength=0.6")
methods+=(-m telea -m ns -m biharmonic -m patchmatch)

eradiff eval --manifest data/debian/manifest.json --split val --count "${TRIPLES}" --seed 0 \
  "${methods[@]}" --out "${OUT}" --examples 3
