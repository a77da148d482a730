# omnisci-handoff container image: `docker build -t omnisci-handoff .`
# Stage 1 compiles the TypeScript; stage 2 holds production dependencies and dist/ only.
FROM node:24-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: the `node` devDependency would fetch a Node binary the image already has.
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
COPY schemas ./schemas
RUN npx tsc -p tsconfig.json

FROM node:24-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /src/dist ./dist
# `z2jh-values` prints the forced-login authenticator from here.
COPY helm/omnisci-handoff/files ./helm/omnisci-handoff/files
# Non-root, matching the chart's runAsUser; the root filesystem can be read-only (only /tmp is written).
USER 65532:65532
EXPOSE 8470 8443
ENTRYPOINT ["node", "dist/src/cli.js"]
CMD ["serve", "--config", "/etc/omnisci-handoff/config.yaml"]
