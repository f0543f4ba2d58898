#!/usr/bin/env bash
# Installs the Debian packages the local cluster needs, only those missing (idempotent).
set -euo pipefail

packages=(
  containerd runc containernetworking-plugins   # container runtime + CNI bridge/host-local
  iptables iproute2 conntrack                    # kube-proxy (iptables mode), bridge set-up
  debootstrap                                    # the bookworm / python3.11 images
  gcc libc6-dev                                  # the static pause binary
  util-linux mount                               # mount/umount for clean-up
  nginx-light                                    # the seed gateway: interop test and benchmark
  git fcgiwrap                                   # the git server builds clone from (git http-backend)
  skopeo                                         # pushes the buildpacks run image to the registry
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "==> Debian packages: all ${#packages[@]} present"
else
  echo "==> Debian packages: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# containerd is run by the launcher with its own config and socket; the packaged service is
# not needed and its default socket is not used.
if ! command -v go >/dev/null 2>&1; then
  echo "error: Go (>= 1.24) is needed to build the cluster binaries and is not on PATH" >&2
  exit 1
fi
