#!/usr/bin/env bash
# Agent-Net health probe for operators: POST /gpu-check, print the response, and exit 0
# only when it answers HTTP 200 with "status": "success".
#
#   scripts/probe.sh                          # the worker on WORKER_BIND:WORKER_PORT
#   scripts/probe.sh --url http://host:9876   # another worker
#   scripts/probe.sh --orchestrator https://127.0.0.1:8935 [--capability agent-net]
#       # through an orchestrator, as a gateway would: POST <orch>/process/request/gpu-check
#       # with the base64 JSON `Livepeer` header (self-signed TLS accepted unless --cacert)
#
# WORKER_BIND, WORKER_PORT, WORKER_TOKEN and CAPABILITY_NAME come from the environment,
# else from the .env docker compose reads (next to docker-compose.yml; --env-file FILE).
# Options: --route R (default gpu-check), --agent-id ID (default probe), --token T
# (WORKER_TOKEN, direct mode), --timeout S (default 10), --cacert FILE, --quiet (one
# line: the verdict and each reason, for cron and monitoring).
# Exit: 0 success; 1 degraded, error or unreachable; 2 usage.
set -euo pipefail

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
env_file="$(dirname "$here")/.env"
url=""
orch=""
capability=""
route="gpu-check"
agent_id="probe"
token=""
token_from=""
timeout=10
cacert=""
quiet=""

while (( $# )); do
  case "$1" in
    --url) url="${2:?--url needs a value}"; shift 2 ;;
    --orchestrator|--orch) orch="${2:?--orchestrator needs a value}"; shift 2 ;;
    --capability) capability="${2:?--capability needs a value}"; shift 2 ;;
    --route) route="${2:?--route needs a value}"; shift 2 ;;
    --agent-id) agent_id="${2:?--agent-id needs a value}"; shift 2 ;;
    --token) token="${2:?--token needs a value}"; token_from="--token"; shift 2 ;;
    --env-file) env_file="${2:?--env-file needs a value}"; shift 2 ;;
    --timeout) timeout="${2:?--timeout needs a value}"; shift 2 ;;
    --cacert) cacert="${2:?--cacert needs a value}"; shift 2 ;;
    --quiet|-q) quiet=1; shift ;;
    -h|--help) usage ;;
    *) echo "probe: unknown argument: $1" >&2; usage ;;
  esac
done

for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "probe: $tool is required" >&2; exit 1; }
done

# Shell variables win over .env, as in docker compose.
if ! settings="$(python3 "$here/compose_env.py" "$env_file" \
    WORKER_BIND WORKER_PORT WORKER_TOKEN CAPABILITY_NAME 2>&1)"; then
  if [[ -n "$quiet" ]]; then
    echo "probe: FAILED: fix $env_file (docker compose would refuse it too): $settings" >&2
  else
    printf '%s\n' "$settings" >&2
    echo "probe: fix $env_file (docker compose would refuse it too)" >&2
  fi
  exit 1
fi
eval "$settings"
from_file=()
for name in WORKER_BIND WORKER_PORT WORKER_TOKEN CAPABILITY_NAME; do
  source_var="cfg_from_$name"
  if [[ "${!source_var:-environment}" != "environment" ]]; then from_file+=("$name"); fi
done
if [[ -z "$quiet" && ${#from_file[@]} -gt 0 ]]; then
  echo "probe: ${from_file[*]} from $env_file" >&2
fi
if [[ -z "$url" ]]; then
  host="${cfg_WORKER_BIND:-127.0.0.1}"
  case "$host" in
    0.0.0.0|"") host=127.0.0.1 ;;  # published on every address: loopback is one
    ::|"[::]") host="[::1]" ;;
    *:*) [[ "$host" == \[* ]] || host="[$host]" ;;  # an IPv6 address
  esac
  url="http://${host}:${cfg_WORKER_PORT:-9876}"
fi
if [[ -z "$capability" ]]; then
  capability="${cfg_CAPABILITY_NAME:-agent-net}"
  capability="${capability%%,*}"
  capability="${capability:-agent-net}"
fi
if [[ -z "$token_from" && -n "${cfg_WORKER_TOKEN:-}" ]]; then
  token="$cfg_WORKER_TOKEN"
  token_from="WORKER_TOKEN in ${cfg_from_WORKER_TOKEN/#environment/the environment}"
fi

body="$(python3 -c 'import json, sys; print(json.dumps({"agent_id": sys.argv[1]}))' "$agent_id")"
curl_args=(--silent --max-time "$timeout" -X POST
           -H "Content-Type: application/json" --data "$body"
           --output - --write-out '\n%{http_code}')
# With --quiet curl's own error message stays out: the probe's one line says it.
if [[ -z "$quiet" ]]; then curl_args+=(--show-error); fi

if [[ -n "$orch" ]]; then
  target="${orch%/}/process/request/${route}"
  header="$(python3 - "$capability" "$body" "$timeout" <<'PY'
import base64, json, sys, uuid
capability, body, timeout = sys.argv[1], sys.argv[2], int(float(sys.argv[3]))
job = {"id": str(uuid.uuid4()), "request": body, "parameters": "{}",
       "capability": capability, "sender": "", "sig": "", "timeout_seconds": timeout}
print(base64.b64encode(json.dumps(job).encode()).decode())
PY
)"
  curl_args+=(-H "Livepeer: ${header}" -H "Livepeer-Capability: ${capability}")
  if [[ -n "$cacert" ]]; then curl_args+=(--cacert "$cacert"); else curl_args+=(--insecure); fi
else
  target="${url%/}/${route}"
  if [[ -n "$token" ]]; then curl_args+=(-H "Authorization: Bearer ${token}"); fi
  if [[ -n "$cacert" ]]; then curl_args+=(--cacert "$cacert"); fi
fi

if ! out="$(curl "${curl_args[@]}" "$target")"; then
  echo "probe: FAILED: no answer from $target" >&2
  exit 1
fi
code="${out##*$'\n'}"
response="${out%$'\n'*}"

verdict="$(PROBE_RESPONSE="$response" python3 - <<'PY'
import json, os
try:
    doc = json.loads(os.environ["PROBE_RESPONSE"])
except ValueError:
    doc = None
if not isinstance(doc, dict):
    print("not-json")
    raise SystemExit
print(doc.get("status", "none"))
# The document's reasons name each source that is not ok, once; an error answer has
# none: then say what its sources and its error say.
reasons = [str(r) for r in doc.get("reasons") or []]
if not reasons:
    for name, src in (doc.get("sources") or {}).items():
        if isinstance(src, dict) and src.get("status") not in (None, "ok"):
            detail = src.get("reason") or src.get("error") or ""
            reasons.append(f"{name}: {src.get('status')} {detail}".strip())
    if doc.get("error"):
        reasons.append(f"{doc['error']}: {doc.get('detail') or ''}".rstrip(": "))
for reason in reasons:
    print(reason)
PY
)"
status="${verdict%%$'\n'*}"
reasons=()
if [[ "$verdict" == *$'\n'* ]]; then mapfile -t reasons <<<"${verdict#*$'\n'}"; fi
if [[ "$code" == "401" && -z "$orch" ]]; then
  if [[ -z "$token_from" ]]; then
    reasons+=("the worker requires a token: set WORKER_TOKEN (in $env_file or in the environment) to the worker's WORKER_TOKEN, or pass --token")
  else
    reasons+=("the worker refused the token from $token_from: it must equal the worker's WORKER_TOKEN (a changed .env takes effect with docker compose up -d)")
  fi
fi

ok=""
if [[ "$code" == "200" && "$status" == "success" ]]; then ok=1; fi
if [[ -n "$ok" ]]; then
  verdict_line="probe: OK: $target answered status=success"
else
  verdict_line="probe: FAILED: $target answered HTTP $code, status=$status"
fi
if [[ -n "$quiet" ]]; then
  # One line: the verdict, then each reason once.
  joined="$(printf '%s; ' "${reasons[@]}")"
  echo "${verdict_line}${reasons[*]:+: ${joined%; }}" >&2
else
  printf '%s\n' "$response" | python3 -m json.tool 2>/dev/null || printf '%s\n' "$response"
  echo "$verdict_line" >&2
  if (( ${#reasons[@]} )); then printf '  %s\n' "${reasons[@]}" >&2; fi
fi
[[ -n "$ok" ]]
