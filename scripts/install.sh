#!/usr/bin/env bash
# Installs everything agentfs needs on a fresh Debian machine with Node 20:
# apt packages, pnpm 10, workspace dependencies (native builds included),
# then builds every package. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# libfuse3-dev (+ pkg-config): @agentfs/native builds its FUSE binding against libfuse 3; fuse3: fusermount3. Never the `fuse` package (it removes fuse3).
# fuse-overlayfs, fio, rsync: baselines and workloads of `pnpm bench:mount`.
for pkg in build-essential pkg-config python3 sqlite3 attr libfuse3-dev fuse3 xfsprogs fuse-overlayfs fio rsync; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

want_pnpm="$(node -p "require('./package.json').packageManager.split('@')[1]")"
if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version)" != "$want_pnpm" ]; then
  echo "==> npm install -g pnpm@$want_pnpm"
  npm install -g "pnpm@$want_pnpm" >/dev/null
fi

echo "==> pnpm install"
if [ "${CI:-}" = "true" ]; then pnpm install --frozen-lockfile; else pnpm install; fi
echo "==> build"
pnpm run build
