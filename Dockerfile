# syntax=docker/dockerfile:1
# Production image for the Tidings gateway. docs/OPERATIONS.md describes how to run it;
# test/deployment.test.ts checks this file (stages, copied paths, user, health check, command).
#
# Stage 1 installs the runtime dependencies only (`npm ci --omit=dev`), exactly as the lockfile
# pins them. Stage 2 compiles src/ to dist/ with every dependency (`npm run build`: tsc with
# tsconfig.build.json). Stage 3 is the runtime: stage 1's node_modules, stage 2's dist/ and
# package.json, and nothing else, run with the same command as `npm start`.
#
# Node 22: some runtime dependencies (@whatwg-node/*, under graphql-yoga) declare node >=22.15.

ARG NODE_IMAGE=node:22-bookworm-slim

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
# The root package.json declares the `client` workspace, and package-lock.json records it; its
# package.json is copied too so the lockfile matches the tree npm ci sees. Only the root's
# production dependencies are needed by the gateway: the workspace link is removed afterwards
# (it would point at /app/client, which the runtime image does not contain).
COPY package.json package-lock.json ./
COPY client/package.json ./client/
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --no-audit --no-fund \
 && rm -f node_modules/@tidings/client

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY client/package.json ./client/
RUN --mount=type=cache,target=/root/.npm \
    npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
# Everything is owned by root and only readable by the `node` user that runs the gateway.
COPY --from=deps /app/node_modules ./node_modules
# package.json carries "type": "module" (dist/ is ES modules) and the version /stats reports.
COPY package.json ./
COPY --from=build /app/dist ./dist
USER node
# 4000: clients (GraphQL, WebSocket, SSE, /health, /ready). 9464: /metrics and /stats, bound to
# loopback unless METRICS_HOST=0.0.0.0 (set it where Prometheus scrapes the container).
EXPOSE 4000 9464
# Liveness only (/health): a Redis outage makes /ready fail, which must not get a container
# replaced. Node's fetch, because the slim image has neither curl nor wget.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||4000)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Exec form: node is PID 1 and receives SIGTERM itself (graceful shutdown, src/main.ts).
CMD ["node", "--enable-source-maps", "dist/main.js"]
