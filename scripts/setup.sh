#!/usr/bin/env bash
# Installs what Reef needs on a fresh Debian machine, and nothing when it is already there:
# the Debian build dependencies (apt-get, only the missing ones) and the Python venv that
# provides libtorch (from the pinned `torch` wheel) and the test-only reference libraries.
# Idempotent: a second run checks and returns in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git clang-format
  libyaml-cpp-dev nlohmann-json3-dev libcpp-httplib-dev libcli11-dev libfmt-dev libspdlog-dev
  libpcre2-dev libsentencepiece-dev libicu-dev libxxhash-dev zlib1g-dev libzstd-dev libgtest-dev libgmock-dev
  libbenchmark-dev libgloo-dev
  fortunes fortune-mod
)
missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The venv lives outside the clone so that fresh clones (CI) reuse it; REEF_VENV overrides.
VENV="${REEF_VENV:-$HOME/.cache/reef/venv}"
REQ=python/requirements-test.txt
stamp="$VENV/.reef-requirements.sha256"
want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating venv $VENV"
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV" || {
    echo "setup: python3 -m venv failed; installing python3-venv"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q python3-venv
    python3 -m venv "$VENV"
  }
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing Python packages from $REQ into $VENV (tests and libtorch only)"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ"
  echo "$want" > "$stamp"
fi
echo "setup: ok (venv $VENV)"
