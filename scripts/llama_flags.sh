#!/usr/bin/env bash
# How llama.cpp is compiled here, shared by setup.sh (llama-cpp-python) and
# build_llama_server.sh (llama-server); sourced for the variables, or run with a check:
#
#   . scripts/llama_flags.sh                       # LLAMA_CMAKE_ARGS, CFLAGS, CXXFLAGS, LLAMA_WHEEL_DIR
#   bash scripts/llama_flags.sh --check-python .venv/bin/python   # exit 0 when the build is safe here
#   bash scripts/llama_flags.sh --check-server .venv/bin/llama-server
#
# Why no AMX: GGML_NATIVE=ON compiles for `-march=native`, and a CPU of the Sapphire Rapids
# family advertises AMX (amx_tile/amx_int8/amx_bf16 in /proc/cpuinfo) even inside virtual
# machines that do not enable its register state. ggml then runs `tilezero` on the first matrix
# multiply and the process dies with "Illegal instruction" (seen on the 2-core CI machine,
# 2026-12-01: every real-model test failed). AVX-512 and VNNI stay on; only AMX is turned off
# (explicit -mno-* flags win over -march=native in GCC whatever their order).
NOAMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
export CFLAGS="${CFLAGS:-} $NOAMX"
export CXXFLAGS="${CXXFLAGS:-} $NOAMX"
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_CURL=OFF"
# a native build only runs on CPUs with the same flags: key the kept wheel by them
CPU_KEY=$( (grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || uname -m) | sha1sum | cut -c1-12)
LLAMA_WHEEL_DIR="${ZHINAO_WHEEL_DIR:-$HOME/.cache/zhinao/wheels}/llama-0.3.36-noamx-$CPU_KEY"
# the marker a safe build leaves beside itself (an older AMX build has none)
LLAMA_MARK=noamx-$CPU_KEY

case "${1:-}" in
  --check-python)  # the installed llama_cpp came from our no-AMX wheel for this CPU
    "${2:?python}" - "$LLAMA_MARK" <<'PY'
import pathlib, sys
import llama_cpp
mark = pathlib.Path(llama_cpp.__file__).parent / "BUILD_FLAGS"
sys.exit(0 if mark.is_file() and mark.read_text().strip() == sys.argv[1] else 1)
PY
    ;;
  --check-server)
    [ -f "${2:?binary}.flags" ] && [ "$(cat "$2.flags")" = "$LLAMA_MARK" ]
    ;;
esac
