#!/usr/bin/env bash
# The whole test suite: `npm test` (README), also run by .ci/run.
# Installs the Debian packages the tests' real peers need when missing (as root),
# fails loudly when it cannot, type-checks, lints, checks the dependency direction of
# src/ (scripts/check-deps.mjs), builds, runs every tap test,
# and ends with one line: `N passed, N failed`.
set -uo pipefail
cd "$(dirname "$0")/.."

say() { printf '%s\n' "$*" >&2; }
fail_setup() { say "test setup FAILED: $*"; echo "0 passed, 1 failed"; exit 1; }

# --- real peers (test/fixtures start them): Debian packages ---
PACKAGES=(mosquitto mosquitto-clients socat python3-pymodbus openssl systemd faketime nftables iproute2 swtpm swtpm-tools tpm2-tools strace bsdutils)
missing=()
command -v mosquitto >/dev/null || missing+=(mosquitto)
command -v mosquitto_sub >/dev/null || missing+=(mosquitto-clients)
command -v socat >/dev/null || missing+=(socat)
command -v openssl >/dev/null || missing+=(openssl)
command -v nft >/dev/null || [ -x /usr/sbin/nft ] || missing+=(nftables)
command -v ip >/dev/null || [ -x /usr/sbin/ip ] || missing+=(iproute2)
command -v swtpm >/dev/null || missing+=(swtpm)
command -v swtpm_setup >/dev/null || missing+=(swtpm-tools)
command -v tpm2_createprimary >/dev/null || missing+=(tpm2-tools)
command -v strace >/dev/null || missing+=(strace)
command -v script >/dev/null || missing+=(bsdutils) # script: the logger tests' real pseudo-terminal
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || [ -e /usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1 ] || missing+=(faketime)
command -v systemd-notify >/dev/null && command -v systemd-analyze >/dev/null || missing+=(systemd)
/usr/bin/python3 -c 'import pymodbus' 2>/dev/null || missing+=(python3-pymodbus)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages for the test peers: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    fail_setup "missing ${missing[*]} and not root; run: sudo apt-get install -y ${PACKAGES[*]}"
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || fail_setup "apt-get update failed"
  apt-get install -y -qq "${PACKAGES[@]}" >&2 || fail_setup "apt-get install ${PACKAGES[*]} failed"
  command -v mosquitto >/dev/null && command -v socat >/dev/null && /usr/bin/python3 -c 'import pymodbus' && { command -v nft >/dev/null || [ -x /usr/sbin/nft ]; } && command -v swtpm >/dev/null && command -v tpm2_createprimary >/dev/null && command -v strace >/dev/null \
    || fail_setup "packages installed but the peers are still missing"
fi

# --- node dependencies and build ---
if [ ! -x node_modules/.bin/tap ]; then
  say "installing npm dependencies"
  npm ci >&2 || npm install >&2 || fail_setup "npm install failed"
fi

failed_steps=0
step() {
  local name=$1; shift
  say "== $name"
  if "$@" >&2; then say "   $name: ok"; else say "   $name: FAILED"; failed_steps=$((failed_steps + 1)); fi
}
step "typecheck (tsc --noEmit)" npx tsc --noEmit -p .
step "lint (eslint, type-checked rules)" npx eslint src test bench
step "dependency direction (scripts/check-deps.mjs)" node scripts/check-deps.mjs
step "build (dist/ for the CLI)" npm run --silent build

# --- the tap suite ---
report=$(mktemp)
trap 'rm -f "$report"' EXIT
say "== tests (node-tap)"
npx tap --reporter=tap "$@" 2>&1 | tee "$report"
tap_status=${PIPESTATUS[0]}

summary=$(grep -E '^# \{ total: [0-9]+' "$report" | tail -1)
total=$(sed -nE 's/.*total: ([0-9]+).*/\1/p' <<<"$summary")
pass=$(sed -nE 's/.*pass: ([0-9]+).*/\1/p' <<<"$summary")
fail=$(sed -nE 's/.*fail: ([0-9]+).*/\1/p' <<<"$summary")
: "${total:=0}" "${pass:=0}" "${fail:=0}"
if [ "$total" -eq 0 ]; then fail=$((fail + 1)); say "no test ran"; fi
if [ "$tap_status" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
fail=$((fail + failed_steps))
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
