# Sourced by scripts/test: makes sure a PostgreSQL server answers and exports
# COFFER_TEST_PG_URL. Uses the one on 127.0.0.1:5432 when it answers; otherwise installs
# PostgreSQL from the distribution when missing and starts a throwaway cluster (stopped on exit).

pg_answers() {
  python3 - "$1" <<'PY'
import socket, sys
from urllib.parse import urlparse
u = urlparse(sys.argv[1])
s = socket.socket()
s.settimeout(2)
try:
    s.connect((u.hostname, u.port or 5432))
    # SSLRequest: any server answers with one byte, 'S' or 'N'
    s.sendall(bytes([0, 0, 0, 8, 4, 210, 22, 47]))
    sys.exit(0 if s.recv(1) in (b"S", b"N") else 1)
except OSError:
    sys.exit(1)
PY
}

ensure_postgres() {
  export COFFER_TEST_PG_URL="${COFFER_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
  if pg_answers "$COFFER_TEST_PG_URL"; then
    echo "postgres: using $COFFER_TEST_PG_URL"
    return
  fi
  local bindir
  bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  if [ -z "$bindir" ]; then
    echo "postgres: none answers; installing it from the distribution"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql > /dev/null
    bindir="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  fi
  local dir port=55432
  dir="$(mktemp -d /tmp/coffer-pg.XXXXXX)"
  local run=()
  if [ "$(id -u)" = 0 ]; then
    id postgres > /dev/null 2>&1 || useradd --system postgres
    chown postgres "$dir"
    run=(runuser -u postgres --)
  fi
  "${run[@]}" "$bindir/initdb" -D "$dir/data" -U postgres -A trust > /dev/null
  "${run[@]}" "$bindir/pg_ctl" -D "$dir/data" -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300" \
    -l "$dir/log" -w start > /dev/null
  export COFFER_TEST_PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
  PG_STOP=("${run[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate stop)
  echo "postgres: started a throwaway server at $COFFER_TEST_PG_URL"
}

stop_postgres() {
  if [ -n "${PG_STOP[*]:-}" ]; then "${PG_STOP[@]}" > /dev/null 2>&1 || true; fi
}
