# syntax=docker/dockerfile:1
#
# Breakwater's container image: the compiled proxy and its production dependencies on the
# official Node.js 24 image, run as a non-root user, able to run on a read-only root filesystem.
#
#   docker build -t breakwater:0.1.0 .
#   docker run --rm --read-only -v "$PWD/config:/etc/breakwater:ro" \
#     -e BREAKWATER_CONFIG=/etc/breakwater/breakwater.yaml breakwater:0.1.0
#
# test/integration/package.test.ts does what this file does, without a Docker engine: it packs
# the package, installs it with production dependencies only into an empty folder, and runs it.

# The same Node.js version that package.json pins for development.
ARG NODE_VERSION=24.21.0

# --- build: every dependency, Breakwater bundled into dist/, the package packed as npm would
# publish it, so the image holds exactly what package.json's `files` list ships.
FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /build
COPY package.json package-lock.json ./
# --ignore-scripts: the `node` npm package would download a second Node.js; the image has one.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json README.md ./
COPY scripts/build.ts ./scripts/
COPY bin ./bin
COPY config ./config
COPY src ./src
RUN npm run build \
 && npm pack --pack-destination /tmp \
 && mkdir /app \
 && tar -xzf /tmp/breakwater-*.tgz --strip-components=1 -C /app \
 && cp package-lock.json /app/

# --- production dependencies only, at the versions package-lock.json pins.
FROM node:${NODE_VERSION}-bookworm-slim AS production-dependencies
WORKDIR /app
COPY --from=build /app ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && rm package-lock.json

# --- runtime: the packed files and their production dependencies, nothing else.
FROM node:${NODE_VERSION}-bookworm-slim
# MALLOC_ARENA_MAX: at most two malloc arenas, so that the threads of V8 and libuv do not each
# keep an arena of their own; the two thresholds fixed, so that large blocks freed go back to
# the system instead of raising the threshold (scripts/node-runtime.ts,
# docs/decisions/0014-memory-budget.md).
ENV NODE_ENV=production \
    BREAKWATER_CONFIG=/etc/breakwater/breakwater.yaml \
    MALLOC_ARENA_MAX=2 \
    MALLOC_MMAP_THRESHOLD_=131072 \
    MALLOC_TRIM_THRESHOLD_=131072
WORKDIR /app
# Owned by root and not writable by the user the proxy runs as.
COPY --from=production-dependencies /app ./
# The `node` user of the official image, by number so that Kubernetes can check runAsNonRoot.
USER 1000:1000
# Inbound listener and telemetry (/metrics, /healthz, /readyz). The outbound listener
# (15001) and the admin port (15000) listen on loopback, for the pod only.
EXPOSE 15006 15020
# Exec form: node is PID 1 and receives SIGTERM itself, so it drains before the pod stops.
# V8's generations bounded for a sidecar (scripts/node-runtime.ts says why; docs/performance.md
# has the figures): a young generation of 2 MiB per semi-space instead of one sized from the
# machine's memory, and the old generation collected once it has grown by 30%.
ENTRYPOINT ["node", "--max-semi-space-size=2", "--heap-growing-percent=30", "/app/bin/breakwater.js"]
CMD ["run"]
