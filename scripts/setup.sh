#!/usr/bin/env bash
# Install everything Zhinao needs into .venv at the repository root.
# Idempotent: re-running skips what is already in place. Nothing is downloaded at
# run time by the platform itself; this script is the only place that fetches packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
$VPY -m pip install --quiet --upgrade pip "setuptools<81" wheel

# torch: the CPU wheel (2.13.0) lies on this kind of machine; pip takes it from the
# constraint/find-links when present, otherwise from PyPI's CPU index is NOT reachable,
# so we point pip at the local file when it exists.
if ! $VPY -c "import torch" 2>/dev/null; then
  WHEEL=$(ls /opt/wheels/torch-2.13.0+cpu-cp311-*.whl 2>/dev/null | head -n1 || true)
  if [ -n "$WHEEL" ]; then $VPY -m pip install --quiet "$WHEEL"; else $VPY -m pip install --quiet torch==2.13.0; fi
fi

# llama-cpp-python compiles from source (~4 min on 2 cores); CPU build, no curl.
if ! $VPY -c "import llama_cpp, sys; sys.exit(0 if llama_cpp.__version__=='0.3.36' else 1)" 2>/dev/null; then
  CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_CURL=OFF" $VPY -m pip install --quiet llama-cpp-python==0.3.36
fi

EXTRAS=${ZHINAO_EXTRAS:-test}
$VPY -m pip install --quiet -e ".[${EXTRAS}]"

# llama.cpp's own llama-server, from the sources vendored in the same sdist.
bash scripts/build_llama_server.sh
echo "setup: done (.venv ready, zhinao at .venv/bin/zhinao)"
