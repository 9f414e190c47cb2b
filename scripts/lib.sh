#!/usr/bin/env bash
# Quiet steps for the setup scripts: one progress line per step on the terminal, the full
# output of every command in one log file. Sourced by setup.sh and test_deps.sh.
#
#   log_init NAME TOTAL     # log file build/logs/NAME.log (emptied), TOTAL steps
#   step "label" CMD ARGS…  # prints "[n/TOTAL] label … ok (2 min)"; on failure prints the
#                           # last lines of the log and where the rest is, and exits
#   skip "label" "why"      # prints "[n/TOTAL] label … already done (why)"
#
# A compiler build prints ~15,000 lines (831 of them warnings): they belong in the log, not
# between the one-time admin password and the prompt.

ZHINAO_LOG_DIR=${ZHINAO_LOG_DIR:-build/logs}
_STEP=0
_TOTAL=0
SETUP_LOG=""

log_init() {
  mkdir -p "$ZHINAO_LOG_DIR"
  SETUP_LOG="$ZHINAO_LOG_DIR/$1.log"
  _TOTAL=$2
  _STEP=0
  : >"$SETUP_LOG"
  echo "# $1 $(date -u +%Y-%m-%dT%H:%M:%SZ) in $(pwd)" >>"$SETUP_LOG"
}

# "12 s", "2 min"
_elapsed() {
  local s=$1
  if [ "$s" -lt 90 ]; then echo "${s} s"; else echo "$(((s + 30) / 60)) min"; fi
}

step() {
  local label=$1
  shift
  _STEP=$((_STEP + 1))
  printf '[%d/%d] %s … ' "$_STEP" "$_TOTAL" "$label"
  {
    echo
    echo "=== [$_STEP/$_TOTAL] $label: $*"
  } >>"$SETUP_LOG"
  local t0 rc=0
  t0=$(date +%s)
  "$@" >>"$SETUP_LOG" 2>&1 </dev/null || rc=$?
  local dt=$(($(date +%s) - t0))
  if [ "$rc" -eq 0 ]; then
    echo "ok ($(_elapsed "$dt"))"
  else
    echo "FAILED after $(_elapsed "$dt") (exit $rc)"
    echo "--- last lines of $SETUP_LOG:" >&2
    tail -n 25 "$SETUP_LOG" | sed 's/^/    /' >&2
    echo "--- full log: $SETUP_LOG" >&2
    exit "$rc"
  fi
}

skip() {
  _STEP=$((_STEP + 1))
  printf '[%d/%d] %s … already done (%s)\n' "$_STEP" "$_TOTAL" "$1" "$2"
  echo "=== [$_STEP/$_TOTAL] $1: skipped ($2)" >>"$SETUP_LOG"
}
