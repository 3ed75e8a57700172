#!/usr/bin/env bash
# A raw streamable-HTTP session with curl: initialize, list the tools, run a command in a fresh sandbox and
# destroy it. Exits non-zero on the first mismatch.
#
#   examples/curl-session.sh [http://127.0.0.1:8787/mcp]      (MCP_TOKEN=... adds a bearer token)
set -euo pipefail

URL="${1:-${MCP_URL:-http://127.0.0.1:8787/mcp}}"
AUTH=()
if [[ -n "${MCP_TOKEN:-}" ]]; then AUTH=(-H "Authorization: Bearer ${MCP_TOKEN}"); fi

# Posts one JSON-RPC message; the answer may be JSON or an SSE stream, so only the data lines are kept.
rpc() {
  curl -sS --fail-with-body -X POST "$URL" "${AUTH[@]}" \
    -H "Content-Type: application/json" \
    -H "Accept: application/json, text/event-stream" \
    -H "MCP-Protocol-Version: 2025-11-25" \
    -d "$1" | sed -n 's/^data: //p; /^{/p'
}

expect() {
  if grep -q -- "$2" <<<"$1"; then echo "✓ $3"; else echo "✗ $3: got $1" >&2; exit 1; fi
}

init=$(rpc '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1.0.0"}}}')
expect "$init" '"name":"sandbox-mcp"' "initialize names the server"

status=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$URL" "${AUTH[@]}" \
  -H "Content-Type: application/json" -H "Accept: application/json, text/event-stream" \
  -H "MCP-Protocol-Version: 2025-11-25" -d '{"jsonrpc":"2.0","method":"notifications/initialized"}')
expect "$status" '202' "notifications/initialized is accepted"

tools=$(rpc '{"jsonrpc":"2.0","id":2,"method":"tools/list"}')
expect "$tools" '"name":"run_commands"' "tools/list has run_commands"

created=$(rpc '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"create_session","arguments":{}}}')
session=$(grep -o '"sessionId":"[a-z0-9]*"' <<<"$created" | head -1 | cut -d'"' -f4)
expect "$session" '^[a-z0-9]\{8,\}$' "create_session returns a session id"

ran=$(rpc '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"run_commands","arguments":{"sessionId":"'"$session"'","commands":["echo hello from curl"]}}}')
expect "$ran" '"exitCode":0' "the command exits 0"
expect "$ran" 'hello from curl' "its output comes back"

gone=$(rpc '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"destroy_session","arguments":{"sessionId":"'"$session"'"}}}')
expect "$gone" '"destroyed":true' "destroy_session destroys it"

rebound=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$URL" -H "Host: evil.example.com" \
  -H "Content-Type: application/json" -d '{}')
expect "$rebound" '403' "a foreign Host (DNS rebinding) gets 403"
