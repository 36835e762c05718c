# Sourced by scripts/test: makes sure Node.js, Debian's Chromium and the end-to-end tests' npm
# packages (playwright-core, tus-js-client, uppy; pinned in tests/e2e/package-lock.json) are there.

ensure_browser() {
  local missing=()
  command -v node > /dev/null || missing+=(nodejs npm)
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "browser: installing ${missing[*]} from the distribution"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" > /dev/null
  fi
  if [ ! -d tests/e2e/node_modules/playwright-core ] || [ ! -d tests/e2e/node_modules/tus-js-client ] \
    || [ ! -d tests/e2e/node_modules/uppy ]; then
    echo "browser: installing the end-to-end tests' npm packages"
    (cd tests/e2e && npm ci --no-audit --no-fund --silent)
  fi
}
