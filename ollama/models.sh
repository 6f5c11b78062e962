# shellcheck shell=bash
# Sourced by the Agent-Net Ollama entrypoint and health check: the models this host needs.
# wanted_models prints OLLAMA_MODEL, then the model of every agent in AGENTS_FILE (the
# worker's agents TOML file, mounted read-only here too), each once, in file order. It
# reads each line of the form `model = "name"` (or 'name'), as agents.example.toml has
# them; the worker itself validates the file fully with a TOML parser.
wanted_models() {
  local line model re
  local -A seen=()
  re='^[[:space:]]*model[[:space:]]*=[[:space:]]*["'\'']([^"'\'']+)["'\'']'
  if [[ -n "${OLLAMA_MODEL:-}" ]]; then
    seen["$OLLAMA_MODEL"]=1
    printf '%s\n' "$OLLAMA_MODEL"
  fi
  [[ -n "${AGENTS_FILE:-}" && -r "$AGENTS_FILE" ]] || return 0
  while IFS= read -r line || [[ -n "$line" ]]; do
    if [[ "$line" =~ $re ]]; then
      model="${BASH_REMATCH[1]}"
      if [[ -z "${seen[$model]:-}" ]]; then
        seen["$model"]=1
        printf '%s\n' "$model"
      fi
    fi
  done <"$AGENTS_FILE"
}
