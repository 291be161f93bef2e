# patchbay's container images.
#
#   docker build -t patchbay .                  # patchbay alone (the default, last stage)
#   docker build --target lb -t patchbay-lb .   # patchbay on the official nginx image
#
# The default image runs as the non-root user "patchbay" (uid 10001): right
# for `patchbay resolver`, `publish` and the other clients. A listener that
# installs files under /etc (owner root, group www-data in the examples) and
# runs reload commands needs root: give it `--user root` (docker-compose.yml
# does, for each listener). The lb image runs as root like nginx's own: its
# listener checks the nginx config with the very nginx that serves it
# (`nginx -t`) and signals that nginx's master (`nginx -s reload`).
#
# The images to build from are arguments, pinned; docker-compose.yml passes
# the same nginx image it runs.
ARG GO_IMAGE=golang:1.26-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim
ARG NGINX_IMAGE=nginx:1.30.4

FROM ${GO_IMAGE} AS build
WORKDIR /src
# Modules first: this layer stays cached until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
        -ldflags "-s -w -X main.version=${VERSION}" \
        -o /out/patchbay ./cmd/patchbay \
    && /out/patchbay version

# patchbay beside nginx, for the listener of a load-balancer node, with
# Debian's HAProxy for checking a rendered haproxy.cfg (`haproxy -c`).
FROM ${NGINX_IMAGE} AS lb
RUN apt-get update \
    && apt-get install -y --no-install-recommends haproxy \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/patchbay /usr/local/bin/patchbay
# nginx's image stops with SIGQUIT; patchbay shuts down cleanly on SIGTERM
# (SIGQUIT would make the Go runtime dump its goroutines and exit 2).
STOPSIGNAL SIGTERM
ENTRYPOINT ["patchbay"]
CMD ["--help"]

# The default image.
FROM ${RUNTIME_IMAGE}
# The CA bundle for Consul and NATS over TLS, from the build stage (Debian's
# ca-certificates), so this stage needs no package manager run.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
RUN groupadd --gid 10001 patchbay \
    && useradd --uid 10001 --gid patchbay --home-dir /var/lib/patchbay \
        --no-create-home --shell /usr/sbin/nologin patchbay \
    && install -d -o patchbay -g patchbay -m 0750 /var/lib/patchbay \
    && install -d -m 0755 /etc/patchbay
COPY --from=build /out/patchbay /usr/local/bin/patchbay
USER 10001:10001
WORKDIR /var/lib/patchbay
STOPSIGNAL SIGTERM
ENTRYPOINT ["patchbay"]
CMD ["--help"]
