#!/usr/bin/env bash
# Build the repository's Dockerfile with podman on a machine without an image registry:
# the stand-in base image (scripts/image/base-image.sh, cached), then the app image.
#
#   scripts/image/build.sh                 # -> localhost/socketbridge:test (the runtime stage)
#   SOCKETBRIDGE_IMAGE=localhost/socketbridge:dev TARGET=dev scripts/image/build.sh
#
# podman here needs runc (crun refuses this machine's cgroup layout), raised ulimits and the
# host network. Proxy variables (HTTPS_PROXY, ...) are passed on as build arguments when set.
set -euo pipefail
cd "$(dirname "$0")/../.."

BASE="${SOCKETBRIDGE_BASE_IMAGE:-localhost/socketbridge-node:22}"
IMAGE="${SOCKETBRIDGE_IMAGE:-localhost/socketbridge:test}"
TARGET="${TARGET:-runtime}"
# The build context: the repository (CI's clean clone), or e.g. an export of one commit.
CONTEXT="${CONTEXT:-.}"

SOCKETBRIDGE_BASE_IMAGE="$BASE" scripts/image/base-image.sh

proxy_args=()
for name in HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy; do
  if [ -n "${!name:-}" ]; then proxy_args+=(--build-arg "$name=${!name}"); fi
done

started=$SECONDS
podman --runtime runc build \
  --network=host \
  --ulimit nofile=20000:20000 --ulimit nproc=4096:4096 \
  --build-arg "NODE_IMAGE=$BASE" \
  "${proxy_args[@]}" \
  --target "$TARGET" \
  --tag "$IMAGE" \
  --file "$CONTEXT/Dockerfile" \
  "$CONTEXT"
echo "build: $IMAGE ($TARGET) in $((SECONDS - started)) s, $(podman image inspect --format '{{.Size}}' "$IMAGE") bytes"
