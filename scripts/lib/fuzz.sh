# Sourced by scripts/test: builds the cargo-fuzz targets (libFuzzer, no sanitizer, so that the
# stable toolchain builds them) and runs each for COFFER_FUZZ_SECONDS (default 30) from its
# committed seed corpus; any crash fails the run. cargo-fuzz is installed once under
# $COFFER_TOOLS_DIR; the instrumented build lives in $HOME/.cache/coffer-fuzz-target.

run_fuzzers() {
  local fuzz_bin="$COFFER_TOOLS_DIR/cargo-fuzz/bin"
  if [ ! -x "$fuzz_bin/cargo-fuzz" ]; then
    echo "fuzz: installing cargo-fuzz (once)"
    # A command-line driver of cargo: its own speed does not matter, its build time does.
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_TARGET_DIR="$COFFER_TOOLS_DIR/build" cargo install cargo-fuzz --version 0.13.2 --locked \
      --root "$COFFER_TOOLS_DIR/cargo-fuzz" -q
  fi
  local seconds="${COFFER_FUZZ_SECONDS:-30}" target work status=0
  for target in key_parse presign_verify range_header; do
    # Run on a scratch copy of the corpus so that new inputs do not dirty the checkout.
    work="$(mktemp -d /tmp/coffer-fuzz.XXXXXX)"
    cp -r "fuzz/corpus/$target/." "$work/"
    echo "fuzz: $target for ${seconds}s"
    (set -o pipefail; cd fuzz && PATH="$fuzz_bin:$PATH" CARGO_TARGET_DIR="$HOME/.cache/coffer-fuzz-target" \
      cargo fuzz run -s none "$target" "$work" -- -max_total_time="$seconds" -print_final_stats=1 2>&1 \
      | (grep -E "^(stat::number_of_executed_units|==|SUMMARY|thread|panicked|Done)" || true)) || status=1
    rm -rf "$work"
    [ "$status" = 0 ] || { echo "fuzz: $target failed"; return 1; }
  done
}
