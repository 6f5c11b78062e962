#!/usr/bin/env bash
# Healthy only when the server answers AND OLLAMA_MODEL and every agent's model
# (AGENTS_FILE, see models.sh) are present (pulled). The image has no curl, so this uses
# the ollama CLI.
set -euo pipefail
lib="$(dirname "$0")/agent-net-ollama-models"  # its name in the image
[[ -f "$lib" ]] || lib="$(dirname "$0")/models.sh"
# shellcheck source=models.sh
source "$lib"
mapfile -t models < <(wanted_models)
if (( ${#models[@]} == 0 )); then
  exec ollama list >/dev/null
fi
for model in "${models[@]}"; do
  if ! ollama show "$model" >/dev/null 2>&1; then
    echo "model ${model} is not present (yet)" >&2
    exit 1
  fi
done
