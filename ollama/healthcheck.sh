#!/usr/bin/env bash
# Healthy only when the server answers AND OLLAMA_MODEL is present (pulled).
# The image has no curl, so this uses the ollama CLI.
set -euo pipefail
if [[ -z "${OLLAMA_MODEL:-}" ]]; then
  exec ollama list >/dev/null
fi
if ! ollama show "$OLLAMA_MODEL" >/dev/null 2>&1; then
  echo "model ${OLLAMA_MODEL} is not present (yet)" >&2
  exit 1
fi
