# Sourced by scripts/test: installs (once, under $COFFER_TOOLS_DIR) tuspy, the Python tus
# client the interoperability test drives, and exports the Python that has it.

TUSPY_VERSION=1.1.0

ensure_tuspy() {
  local venv="$COFFER_TOOLS_DIR/tuspy-venv-$TUSPY_VERSION"
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import tusclient' 2>/dev/null; then
    echo "tus: installing tuspy $TUSPY_VERSION into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "tuspy==$TUSPY_VERSION"
  fi
  export COFFER_TEST_TUSPY_PYTHON="$venv/bin/python"
}
