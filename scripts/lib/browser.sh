# Sourced by scripts/test: makes sure Node.js, Debian's Chromium and playwright-core (from npm,
# pinned in tests/e2e/package-lock.json) are there for the console's end-to-end test.

ensure_browser() {
  local missing=()
  command -v node > /dev/null || missing+=(nodejs npm)
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "browser: installing ${missing[*]} from the distribution"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" > /dev/null
  fi
  if [ ! -d tests/e2e/node_modules/playwright-core ]; then
    echo "browser: installing playwright-core"
    (cd tests/e2e && npm ci --no-audit --no-fund --silent)
  fi
}
