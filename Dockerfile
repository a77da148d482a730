# omnisci-handoff container image. Build from the repository root:
#   docker build -t omnisci-handoff .        (or: podman build -t omnisci-handoff .)
# BASE names the Node 24 image both stages start from: node:24-slim unless `--build-arg BASE=...`
# (the test suite passes a local stand-in, see scripts/images/build-base.sh).
# .dockerignore is an allowlist: the context holds only what the stages COPY.
# Stage 1 compiles the TypeScript; stage 2 holds production dependencies and dist/ only.
ARG BASE=node:24-slim

FROM ${BASE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: the `node` devDependency would fetch a Node binary the image already has.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npx tsc -p tsconfig.json

FROM ${BASE}
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# Before any source is copied: a source change rebuilds from here on, reusing both npm ci layers.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist ./dist
# Memory: the heap may take half of the container's limit (its cgroup), the young generation stays
# small and malloc keeps two arenas, so RSS stays flat however many users hand off (npm run bench,
# memory section). Without a limit, half of the machine's memory. Override NODE_OPTIONS to change it.
ENV NODE_OPTIONS="--max-old-space-size-percentage=50 --max-semi-space-size=4" MALLOC_ARENA_MAX=2
# `z2jh-values` prints the forced-login authenticator from here.
COPY helm/omnisci-handoff/files ./helm/omnisci-handoff/files
# Non-root, matching the chart's runAsUser; the root filesystem can be read-only (only /tmp is written).
USER 65532:65532
# Handoff (listen.port), internal listener: probes and metrics (listen.internal.port), webhook.
EXPOSE 8470 8471 8443
ENTRYPOINT ["node", "dist/src/cli.js"]
CMD ["serve", "--config", "/etc/omnisci-handoff/config.yaml"]
