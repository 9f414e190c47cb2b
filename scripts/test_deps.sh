#!/usr/bin/env bash
# System packages the test suite needs: Debian chromium (driven by Playwright) and CJK fonts.
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
