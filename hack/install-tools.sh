#!/usr/bin/env bash
# The Debian packages the tests use, checked before anything is built (`make tools`, the first
# step of `make test`): redis-server and haproxy (the workload and e2e tiers start their own, on
# loopback), chromium (the demo page test), node and npm (the official socket.io-client), buildah,
# podman and mmdebstrap (the images: built, then run as the pod runs them), gcc, pkg-config and
# libseccomp-dev (runc, built with seccomp), containernetworking-plugins and iptables (the
# dev cluster's real nodes), and the package lists that `make promtool` reads
# Debian's prometheus package from.
# As root the missing ones are installed with apt-get; otherwise it stops at once with the one
# command to run.
set -euo pipefail

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
for tool in buildah podman mmdebstrap; do
  command -v $tool >/dev/null || [ -x /usr/sbin/$tool ] || missing+=($tool)
done
# runc is built with seccomp (cgo): a C compiler, pkg-config and libseccomp's headers.
command -v gcc >/dev/null || missing+=(gcc)
command -v pkg-config >/dev/null || missing+=(pkg-config)
[ -f /usr/include/seccomp.h ] || missing+=(libseccomp-dev)
# the real nodes: Debian's CNI plugins (bridge, host-local, portmap), iptables and ip6tables
[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
command -v iptables >/dev/null || [ -x /usr/sbin/iptables ] || missing+=(iptables)

# promtool is extracted from Debian's prometheus package (make promtool); without it on PATH or in
# the cache, the package lists must name a candidate.
needs_lists=0
if ! command -v promtool >/dev/null && ! ls "$HOME"/.cache/wsfleet/promtool/*/promtool >/dev/null 2>&1; then
  policy="$(apt-cache policy prometheus 2>/dev/null || true)"
  [[ "$policy" == *"Candidate: "[0-9]* ]] || needs_lists=1
fi

if [ ${#missing[@]} -eq 0 ] && [ $needs_lists -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  if [ ${#missing[@]} -gt 0 ]; then
    echo "missing Debian packages: ${missing[*]}. Run, then make test again:"
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}"
  else
    echo "the apt package lists have no prometheus package (promtool comes from it). Run, then make test again:"
    echo "  sudo apt-get update"
  fi
  exit 1
fi
echo ">> apt-get update"
apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
  echo ">> apt-get install ${missing[*]} (first run: a minute or two)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
