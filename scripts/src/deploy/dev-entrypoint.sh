#!/bin/sh
# Entry point of the Dockerfile's `dev` stage (Tilt): runs the service under `node --watch`, so a
# live update (source sync + `npm run build` in the container) restarts it with the new build.
set -e
if [ "$1" = "node" ]; then
  shift
  exec node --watch --watch-preserve-output "$@"
fi
exec "$@"
