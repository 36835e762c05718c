# The coffer binary the benchmarks measure, built with the `dist` profile — what the container
# image ships (fat LTO, one codegen unit: a smaller binary, less resident code) — unless
# COFFER_PROFILE names another (`release` builds in a third of the time after a change).
# Prints its path.
bench_binary() {
  local profile="${COFFER_PROFILE:-dist}"
  cargo build --profile "$profile" --locked -q --bin coffer || return
  echo "$CARGO_TARGET_DIR/$profile/coffer"
}
