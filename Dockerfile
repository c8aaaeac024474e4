# syntax=docker/dockerfile:1
# The connector as a container image: a build stage compiles the TypeScript with the dev
# dependencies; the runtime stage holds only dist/, public/ and the production dependencies, runs as
# the unprivileged `node` user, and starts node directly (PID 1), so SIGTERM from `docker stop`
# reaches the service and open answers drain for up to 10 s.
#
#   docker build -t llm-connector .
#   docker run --rm -p 8000:8000 -e ANTHROPIC_API_KEY=… -e SERVICE_API_KEYS=app:… llm-connector
#
# npm's download cache is a BuildKit cache mount: shared between builds, never in a layer.
ARG NODE_VERSION=24

FROM node:${NODE_VERSION}-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# No scripts yet: `prepare` would compile before the sources are copied (next step).
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:${NODE_VERSION}-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev
COPY --from=build /app/dist ./dist
COPY public ./public
# Inside a container the service must listen beyond loopback; it then refuses to start without
# client keys (SERVICE_API_KEYS or SERVICE_API_KEYS_FILE) unless ALLOW_UNAUTHENTICATED=true.
ENV HOST=0.0.0.0 PORT=8000
USER node
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.PORT}/healthz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "--max-semi-space-size=4", "dist/server.js"]
