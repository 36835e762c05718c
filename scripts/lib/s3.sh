# Sourced by scripts/test: installs (once, under $COFFER_TOOLS_DIR) and starts the two
# S3-compatible test servers, and exports their endpoints:
# - s3s-fs (Rust): verifies SigV4 and presigned URLs — the data path;
# - moto's server (Python): bucket configuration, lifecycle, archive classes, restore.
# Both listen on 127.0.0.1 only and are stopped on exit.

S3S_FS_VERSION=0.14.1
S3_ACCESS_KEY=coffer-test-access
S3_SECRET_KEY=coffer-test-secret-key

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
  for _ in $(seq 100); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $1), 1)" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "s3: nothing listens on port $1" >&2
  return 1
}

ensure_s3_servers() {
  local s3s="$COFFER_TOOLS_DIR/s3s-fs-$S3S_FS_VERSION/bin/s3s-fs"
  if [ ! -x "$s3s" ]; then
    echo "s3: installing s3s-fs $S3S_FS_VERSION (a few minutes, once)"
    CARGO_TARGET_DIR="$COFFER_TOOLS_DIR/build" cargo install s3s-fs --version "$S3S_FS_VERSION" \
      --features binary --locked --root "$COFFER_TOOLS_DIR/s3s-fs-$S3S_FS_VERSION" -q
  fi
  local venv="$COFFER_TOOLS_DIR/moto-venv"
  if [ ! -x "$venv/bin/moto_server" ]; then
    echo "s3: installing moto[server] into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q 'moto[server]'
  fi

  S3_WORK="$(mktemp -d /tmp/coffer-s3.XXXXXX)"
  mkdir -p "$S3_WORK/s3s-root"
  local port
  port="$(free_port)"
  "$s3s" --host 127.0.0.1 --port "$port" --access-key "$S3_ACCESS_KEY" --secret-key "$S3_SECRET_KEY" \
    "$S3_WORK/s3s-root" > "$S3_WORK/s3s.log" 2>&1 &
  S3S_PID=$!
  wait_port "$port"
  export COFFER_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
  # Where s3s-fs keeps its state (it has no ListMultipartUploads; tests look here instead).
  export COFFER_TEST_S3_ROOT="$S3_WORK/s3s-root"

  port="$(free_port)"
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" > "$S3_WORK/moto.log" 2>&1 &
  MOTO_PID=$!
  wait_port "$port"
  export COFFER_TEST_MOTO_ENDPOINT="http://127.0.0.1:$port"
  # moto's venv has the `cryptography` package: the independent decryptor's test runs on it.
  export COFFER_TEST_PYTHON="$venv/bin/python"
  echo "s3: s3s-fs at $COFFER_TEST_S3_ENDPOINT, moto at $COFFER_TEST_MOTO_ENDPOINT"
}

stop_s3_servers() {
  [ -n "${S3S_PID:-}" ] && kill "$S3S_PID" 2>/dev/null
  [ -n "${MOTO_PID:-}" ] && kill "$MOTO_PID" 2>/dev/null
  [ -n "${S3_WORK:-}" ] && rm -rf "$S3_WORK"
  return 0
}
