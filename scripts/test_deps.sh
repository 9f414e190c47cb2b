#!/usr/bin/env bash
# What the test suite needs beyond .venv: Debian chromium (driven by Playwright), CJK fonts,
# and the default model pack (real-model tests in Chinese use it; they skip, saying so, without it).
set -euo pipefail
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
fc-list 2>/dev/null | grep -qi "noto sans cjk" || need+=(fonts-noto-cjk)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "test_deps: missing ${need[*]}; install them with apt-get (needs root)" >&2
  fi
fi
echo "test_deps: chromium $( /usr/bin/chromium --version 2>/dev/null || echo missing )"
cd "$(dirname "$0")/.."
if ! .venv/bin/zhinao models install qwen2.5-coder-0.5b >/tmp/zhinao-test-pack.log 2>&1; then
  echo "test_deps: could not install the qwen2.5-coder-0.5b pack (see /tmp/zhinao-test-pack.log); its tests will skip" >&2
fi
