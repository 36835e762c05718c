# Sourced by scripts/test: runs schemathesis (installed once into $COFFER_TOOLS_DIR) against a
# live coffer with a valid token. Every check runs except positive_data_acceptance: the
# document describes shapes, not every rule coffer applies (configured categories, the
# filename rules, tenant ownership), so some schema-valid requests are rightly refused with a
# documented 400/403/404. Any 5xx or any response that violates the document fails the run.

run_schemathesis() {
  local venv="$COFFER_TOOLS_DIR/schemathesis-venv"
  if [ ! -x "$venv/bin/schemathesis" ]; then
    echo "schemathesis: installing into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q schemathesis
  fi
  local dir port pid token status=0
  dir="$(mktemp -d /tmp/coffer-st.XXXXXX)"
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  COFFER_LOG=warn COFFER_DATA_DIR="$dir" "$1" serve --addr "127.0.0.1:$port" > "$dir/serve.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" > /dev/null && break; sleep 0.1; done
  token="$(COFFER_DATA_DIR="$dir" "$1" token --tenant schemathesis)"
  SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH="$PWD/scripts/lib" \
    "$venv/bin/schemathesis" --config-file scripts/lib/schemathesis.toml \
    run "http://127.0.0.1:$port/openapi.json" -H "Authorization: Bearer $token" \
    --checks all --exclude-checks positive_data_acceptance -n "${COFFER_SCHEMATHESIS_EXAMPLES:-100}" \
    --seed "${COFFER_SCHEMATHESIS_SEED:-$RANDOM}" --no-color || status=$?
  kill "$pid" 2>/dev/null
  rm -rf "$dir"
  return $status
}
