#!/usr/bin/env bash
# Builds .venv at the repo root with Seesaw's pinned stack.
#   scripts/setup_venv.sh        CPU machine: fbgemm-gpu-cpu (the default; laptops, CI)
#   scripts/setup_venv.sh gpu    CUDA node:   fbgemm-gpu (CUDA build of torch from PyPI)
# torchrec goes in with --no-deps: its wheel requires the CUDA fbgemm-gpu, which cannot load on
# a CPU machine (libtorch_cuda.so missing).
set -euo pipefail
cd "$(dirname "$0")/.."
variant="${1:-cpu}"
case "$variant" in cpu|gpu) ;; *) echo "usage: $0 [cpu|gpu]" >&2; exit 2 ;; esac
TORCHREC_VERSION=1.8.0
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[${variant},dev]"
.venv/bin/python -m pip install --quiet --no-deps "torchrec==${TORCHREC_VERSION}"
.venv/bin/python -c "import torchrec, fbgemm_gpu, ray, torch; print('seesaw venv ready: torch', torch.__version__, '| ray', ray.__version__)"
