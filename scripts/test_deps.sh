#!/usr/bin/env bash
# What the test suite needs beyond .venv: Debian chromium (driven by Playwright), CJK fonts,
# and the default model pack (real-model tests in Chinese use it; they skip, saying so, without it).
# Quiet like setup.sh: one line per step, the rest in build/logs/test_deps.log.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
log_init test_deps 2

need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
fc-list 2>/dev/null | grep -qi "noto sans cjk" || need+=(fonts-noto-cjk)
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}"
}
if [ ${#need[@]} -eq 0 ]; then
  skip "chromium and CJK fonts" "$(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
elif [ "$(id -u)" = "0" ]; then
  step "chromium and CJK fonts (apt-get ${need[*]})" apt_install
else
  skip "chromium and CJK fonts" "missing ${need[*]}: install them with apt-get (needs root)"
fi
# the module entry point: installs the pack without creating a store in the default home
if ! (step "model pack qwen2.5-coder-0.5b" .venv/bin/python -m zhinao.runtime.packs qwen2.5-coder-0.5b); then
  echo "test_deps: could not install the qwen2.5-coder-0.5b pack (see $SETUP_LOG); its tests will skip" >&2
fi
