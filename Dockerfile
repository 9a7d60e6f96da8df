# syntax=docker/dockerfile:1
#
# One image for every SocketBridge process. The entry point is chosen per Deployment: the chart and
# the manifests pass it as `args` (which keeps tini as PID 1), e.g.
#   args: ["node", "services/state/dist/main.js"]
#   state      services/state/dist/main.js       port 7777
#   broker     services/broker/dist/main.js      port 8888
#   worker     services/worker/dist/main.js      port 8000 (the default CMD)
#   publisher  services/publisher/dist/main.js   port 3000
#   operator   operator/dist/main.js
#   helm test  scripts/dist/deploy/helm-test-client.js
#
#   docker build -t socketbridge:dev .
#   docker run --rm -p 8000:8000 -e SOCKETBRIDGE_AUTH_KEY=... socketbridge:dev

ARG NODE_IMAGE=node:22-bookworm-slim

# ---- package manifests only, so the dependency layers below are rebuilt only when they change ----
FROM ${NODE_IMAGE} AS manifests
WORKDIR /src
COPY . .
# Keep package.json and package-lock.json files (every workspace, present and future), drop the rest.
RUN find . -type f ! -name package.json ! -name package-lock.json -delete \
 && find . -mindepth 1 -type d -empty -delete

# ---- build: every workspace, with dev dependencies ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
ENV NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false
COPY --from=manifests /src/ ./
RUN --mount=type=cache,target=/root/.npm npm ci
COPY tsconfig.base.json tsconfig.json ./
COPY types/ types/
COPY services/ services/
COPY operator/ operator/
COPY scripts/ scripts/
RUN npm run build

# ---- dev: what `tilt up` runs; sources, dev dependencies and tsc, so live updates can rebuild in place ----
FROM build AS dev
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 && install -m 0755 scripts/src/deploy/dev-entrypoint.sh /usr/local/bin/socketbridge-dev-entrypoint \
 && chown 1000:1000 /app \
 && chown -R 1000:1000 /app/services /app/operator /app/scripts /app/types
USER 1000:1000
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/socketbridge-dev-entrypoint"]
CMD ["node", "services/worker/dist/main.js"]

# ---- production dependencies of the deployed workspaces only (no devkit, subscriber or scripts deps) ----
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
ENV NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false
COPY --from=manifests /src/ ./
# npm nests a package under a workspace (services/publisher/node_modules/ajv) when the root holds
# another version of it, so /deps gathers every node_modules folder npm wrote, not just the root's.
# Type declarations and source maps are never loaded at run time: dropped (about 55 MB).
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev \
      --workspace=services/common \
      --workspace=services/state \
      --workspace=services/broker \
      --workspace=services/worker \
      --workspace=services/publisher \
      --workspace=operator \
 && find . -path '*/node_modules/*' -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \) -delete \
 && mkdir /deps \
 && cp -a package.json package-lock.json /deps/ \
 && find . -type d -name node_modules -prune -exec cp -a --parents {} /deps/ \;

# ---- runtime ----
FROM ${NODE_IMAGE} AS runtime
# tini is PID 1: it forwards SIGTERM to node (which drains) and reaps zombies.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
ENV NODE_ENV=production
WORKDIR /app
# Owned by root and read-only to the process: the pods run with readOnlyRootFilesystem.
# Every node_modules folder of the deployed workspaces: the root's and those npm nested under a workspace.
COPY --from=deps /deps/ ./
COPY --from=build /app/services/common/package.json services/common/
COPY --from=build /app/services/common/dist/ services/common/dist/
COPY --from=build /app/services/state/package.json services/state/
COPY --from=build /app/services/state/dist/ services/state/dist/
COPY --from=build /app/services/broker/package.json services/broker/
COPY --from=build /app/services/broker/dist/ services/broker/dist/
COPY --from=build /app/services/worker/package.json services/worker/
COPY --from=build /app/services/worker/dist/ services/worker/dist/
COPY --from=build /app/services/publisher/package.json services/publisher/
COPY --from=build /app/services/publisher/dist/ services/publisher/dist/
# The web console's Vite build (pages and hashed assets; the client library is bundled in): the publisher serves it at /console.
COPY --from=build /app/services/publisher/console/dist/ services/publisher/console/dist/
COPY --from=build /app/operator/package.json operator/
COPY --from=build /app/operator/dist/ operator/dist/
# The helm test client and the HEALTHCHECK script; scripts/package.json makes them ES modules.
COPY --from=build /app/scripts/package.json scripts/
COPY --from=build /app/scripts/dist/deploy/ scripts/dist/deploy/

# The node image's unprivileged user, by number so Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 7777 8888 8000 3000
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "services/worker/dist/main.js"]
# Kubernetes ignores HEALTHCHECK (the chart has probes); for `docker run` and compose it asks the
# running service's /healthz on its port (found from PID 1's command line and the service's port variable).
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "scripts/dist/deploy/healthcheck.js"]
