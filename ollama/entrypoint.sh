#!/usr/bin/env bash
# Agent-Net Ollama entrypoint: start `ollama serve`, wait until it answers, pull
# OLLAMA_MODEL and every agent's model (AGENTS_FILE, see models.sh) only when missing
# (first start; later starts find them in the ollama_data volume), then stay on the server. SIGTERM/SIGINT are forwarded to the
# server. A failed pull exits non-zero with the reason, so the service never turns
# healthy (the health check also requires the model to be present).
set -euo pipefail
shopt -s extglob

MODEL=""  # the model being pulled, for the progress lines
START_TIMEOUT="${OLLAMA_START_TIMEOUT_SECONDS:-120}"

lib="$(dirname "$0")/agent-net-ollama-models"  # its name in the image
[[ -f "$lib" ]] || lib="$(dirname "$0")/models.sh"
# shellcheck source=models.sh
source "$lib"

log() { printf '%s agent-net-ollama: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }

server_pid=""
pull_pid=""
stopping=""

forward() {
  stopping=1
  log "received SIG$1; stopping ollama serve"
  if [[ -n "$server_pid" ]]; then kill -"$1" "$server_pid" 2>/dev/null || true; fi
}
trap 'forward TERM' TERM
trap 'forward INT' INT

# Wait for a child; a trapped signal interrupts `wait`, so wait again until it is gone.
wait_for() {
  local pid="$1" rc=0
  while :; do
    rc=0
    wait "$pid" || rc=$?
    if ! kill -0 "$pid" 2>/dev/null; then return "$rc"; fi
  done
}

finish() {
  local rc=0
  wait_for "$server_pid" || rc=$?
  log "ollama serve exited with status $rc"
  exit "$rc"
}

# The CLI redraws a progress bar (ANSI escapes, carriage returns, ~10 frames/s). Turn it
# into plain log lines: every status change, and each layer's progress per 10 %.
declare -A shown=()
last_status=""
report_progress() {
  local line esc=$'\e'
  local -a frames
  while IFS= read -r line || [[ -n "$line" ]]; do
    IFS=$'\r' read -r -a frames <<<"$line" || true
    for line in "${frames[@]}"; do
      report_frame "${line//${esc}\[*([0-9;?])[A-Za-z]/}"
    done
  done
}

report_frame() {
  local line="${1%%+([[:space:]])}" key pct
  line="${line##+([[:space:]])}"
  [[ -z "$line" ]] && return 0
  if [[ "$line" =~ ^(pulling[[:space:]]+[0-9a-f]+):[[:space:]]+([0-9]+)% ]]; then
    key="${BASH_REMATCH[1]}"
    pct=$(( BASH_REMATCH[2] / 10 * 10 ))
    if [[ "${shown[$key]:-}" != "$pct" ]]; then
      shown[$key]="$pct"
      log "pull $MODEL: ${line//+([[:space:]])/ }"
    fi
  elif [[ "$line" != "$last_status" ]]; then
    last_status="$line"
    log "pull $MODEL: $line"
  fi
}

pull_model() {
  ollama pull "$MODEL" 2>&1 | report_progress
}

log "starting ollama serve (OLLAMA_HOST=${OLLAMA_HOST:-127.0.0.1:11434})"
ollama serve "$@" &
server_pid=$!

deadline=$(( SECONDS + START_TIMEOUT ))
until ollama list >/dev/null 2>&1; do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    rc=0; wait "$server_pid" || rc=$?
    log "ERROR: ollama serve exited with status $rc before it answered"
    exit "$(( rc == 0 ? 1 : rc ))"
  fi
  if [[ -n "$stopping" ]]; then finish; fi
  if (( SECONDS >= deadline )); then
    log "ERROR: ollama serve did not answer within ${START_TIMEOUT}s"
    kill -TERM "$server_pid" 2>/dev/null || true
    wait_for "$server_pid" || true
    exit 1
  fi
  sleep 0.5
done
log "ollama serve answers"

if [[ -n "${AGENTS_FILE:-}" && ! -r "$AGENTS_FILE" ]]; then
  log "WARNING: AGENTS_FILE=$AGENTS_FILE cannot be read; pulling OLLAMA_MODEL only"
fi
mapfile -t models < <(wanted_models)
if (( ${#models[@]} == 0 )); then
  log "OLLAMA_MODEL is empty and no agent names a model: serving without pulling a model"
fi
for MODEL in "${models[@]}"; do
  if ollama show "$MODEL" >/dev/null 2>&1; then
    log "model $MODEL already present in ${OLLAMA_MODELS:-the model store}; not pulling"
    continue
  fi
  log "model $MODEL is missing: pulling it now (first start; codellama:34b-instruct-q4_k_m is about 20 GB)"
  pull_model &
  pull_pid=$!
  rc=0
  wait_for "$pull_pid" || rc=$?
  if [[ -n "$stopping" ]]; then finish; fi
  if (( rc != 0 )) || ! ollama show "$MODEL" >/dev/null 2>&1; then
    log "ERROR: pulling model $MODEL failed (status $rc); see the lines above for the reason." \
      "Check the model name (OLLAMA_MODEL or the agents file), network access to the Ollama" \
      "registry and free disk space in the ollama_data volume. Exiting so the service stays unhealthy."
    kill -TERM "$server_pid" 2>/dev/null || true
    wait_for "$server_pid" || true
    exit 1
  fi
  log "model $MODEL pulled"
done

log "ready: serving ${models[*]:-no model}"
finish
