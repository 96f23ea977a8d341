#!/usr/bin/env bash
# Install everything gridmap needs on Debian 12, idempotently:
#   system packages (PostgreSQL 15, PostGIS 3, pgRouting) and a Python virtualenv in .venv with gridmap.
# usage: scripts/setup.sh            # packages + venv
#        scripts/setup.sh --demo     # ... then database, migrations, sample street, API in the background
set -euo pipefail
cd "$(dirname "$0")/.."

# libatomic1: the Node.js driver inside the playwright wheel needs it (minimal Debian lacks it)
APT_PACKAGES=(postgresql-15 postgresql-15-postgis-3 postgresql-15-pgrouting chromium fonts-noto-cjk libatomic1)
VENV=.venv
PY=${PYTHON:-python3}

say() { printf '\033[1m== %s\033[0m\n' "$*"; }

# -- system packages --------------------------------------------------------------------------------
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing system packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "need root (or sudo) to apt-get install ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
  # Debian starts a default cluster on 5432; gridmap runs its own, so the packaged one is not needed.
  if command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q '^15 *main'; then
    $SUDO pg_ctlcluster 15 main stop 2>/dev/null || true
  fi
fi

# -- python -----------------------------------------------------------------------------------------
stamp="$VENV/.gridmap-install"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ]; then
  say "creating the virtualenv $VENV"
  "$PY" -m venv "$VENV"
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "installing gridmap and its Python dependencies into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # .[dev] = the runtime dependencies + the extras test and notebook + lint and type tools (pyproject.toml):
  # everything `make demo`, `make test` and the notebooks need
  "$VENV/bin/python" -m pip install -q -e ".[dev]"
  echo "$want" > "$stamp"
fi

if [ "${1:-}" = "--demo" ]; then
  say "database, migrations and the sample street"
  "$VENV/bin/gridmap" setup
  say "starting the API in the background"
  "$VENV/bin/python" scripts/serve_background.py start
  say "starting the live simulator: a living street (teams patrol, events arrive and are settled)"
  "$VENV/bin/python" scripts/simulate_background.py start
fi
