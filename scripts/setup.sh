#!/usr/bin/env bash
# Installs what slipway needs on a fresh Debian machine; safe to run again (it only does what is missing).
#   - Debian packages: git, lighttpd (Git smart HTTP in tests), openssh-server/-client (Git over SSH in tests),
#     procps (the server tests look for secrets in `ps`), chromium and fonts-dejavu-core (the dashboard's
#     tests drive the system's Chromium through Playwright; Playwright never downloads a browser of its own),
#     docker-registry (an OCI registry for the Helm chart tests), age and gnupg (SOPS: the tests make age and
#     PGP keys; PGP decryption runs gpg)
#   - a Python virtual environment in .venv with slipway and its pinned dependencies
#   - the local control plane's components, built once from the Go module proxy and cached by version
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*" >&2; }

# 1. Debian packages.
packages=(git lighttpd openssh-server openssh-client python3-venv ca-certificates procps chromium fonts-dejavu-core docker-registry
          age gnupg)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  # policy-rc.d keeps the packages' own services (lighttpd on :80, sshd on :22) from starting:
  # the tests start their own, on loopback only.
  tmp_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    tmp_policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$tmp_policy" >/dev/null
    $sudo chmod +x "$tmp_policy"
  fi
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$tmp_policy" ]; then $sudo rm -f "$tmp_policy"; fi
fi

# 2. Go, for the components (the machine's own toolchain; GOTOOLCHAIN=local in every build).
if ! command -v go >/dev/null 2>&1; then
  echo "error: the Go toolchain (go >= 1.26) is not on PATH; it builds the local control plane" >&2
  exit 1
fi

# 3. The virtual environment, reinstalled only when pyproject.toml or constraints.txt change
#    (slipway server's FastAPI, uvicorn, prometheus-client, sse-starlette and Jinja2 come this way too, and
#    Playwright for the dashboard's tests).
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.slipway-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "installing slipway and its pinned dependencies into .venv"
  .venv/bin/python -m pip install -q -c constraints.txt -e '.[dev]'
  echo "$want" >"$stamp"
fi

# 4. kube-apiserver, controller-manager, scheduler, kubectl, etcd, kwok, kustomize (cached by version).
.venv/bin/slipway cluster build
