#!/usr/bin/env bash
# Build llama.cpp's `llama-server` from the llama.cpp sources vendored inside the
# llama-cpp-python sdist on PyPI, and install it as .venv/bin/llama-server.
# Prints everything (cmake, ~800 compiler warnings): setup.sh sends it to build/logs/setup.log.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=0.3.36
TARGET=.venv/bin/llama-server
. scripts/llama_flags.sh  # CFLAGS/CXXFLAGS without AMX (why: in that file), LLAMA_MARK
if [ -x "$TARGET" ] && "$TARGET" --version >/dev/null 2>&1 && bash scripts/llama_flags.sh --check-server "$TARGET"; then
  echo "llama-server: already built"; exit 0
fi
WORK=build/llama-server
mkdir -p "$WORK"
if [ ! -d "$WORK/llama_cpp_python-$VERSION" ]; then
  .venv/bin/python -m pip download --no-binary :all: --no-deps -d "$WORK" "llama-cpp-python==$VERSION"
  tar -xzf "$WORK/llama_cpp_python-$VERSION.tar.gz" -C "$WORK"
fi
SRC="$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp"
# a build folder configured with other flags (CMake caches them) starts over
if [ -f "$SRC/build/CMakeCache.txt" ] && [ "$(cat "$SRC/build/.flags" 2>/dev/null)" != "$LLAMA_MARK" ]; then
  rm -rf "$SRC/build"
fi
mkdir -p "$SRC/build" && echo "$LLAMA_MARK" > "$SRC/build/.flags"
cmake -S "$SRC" -B "$SRC/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DGGML_NATIVE=ON \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DBUILD_SHARED_LIBS=OFF
cmake --build "$SRC/build" --target llama-server -j"$(nproc)"
cp "$SRC/build/bin/llama-server" "$TARGET"
echo "$LLAMA_MARK" > "$TARGET.flags"
echo "llama-server: built at $TARGET"
