# catalog-chatops: a multi-stage build. The builder compiles the bot and `just`; the runtime is
# Debian slim with only what the deploy steps need (git, just, CA certificates), a non-root user
# and the SQLite store on a volume.
#
#   docker build -t catalog-chatops .
#   docker run --rm -p 8080:8080 -e SERVER_TOKEN=… -v chatops-data:/data catalog-chatops serve

FROM rust:1.95-bookworm AS builder
WORKDIR /src
# `just` runs the deploy steps (bump, plan, apply).
RUN cargo install just --locked --root /opt/just
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY migrations ./migrations
# Embedded at compile time: the shipped configs (validation tests) and the sandbox's justfile.
COPY config ./config
COPY sandbox ./sandbox
COPY benches ./benches
RUN cargo build --release --locked --bin catalog-chatops

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates git \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 chatops \
    && useradd --system --uid 10001 --gid chatops --home-dir /data --shell /usr/sbin/nologin chatops \
    && mkdir -p /data /etc/catalog-chatops \
    && chown chatops:chatops /data
COPY --from=builder /opt/just/bin/just /usr/local/bin/just
COPY --from=builder /src/target/release/catalog-chatops /usr/local/bin/catalog-chatops
COPY config/catalog-chatops.toml /etc/catalog-chatops/catalog-chatops.toml

ENV CATALOG_CHATOPS_CONFIG=/etc/catalog-chatops/catalog-chatops.toml \
    CATALOG_CHATOPS__STORE__URL=sqlite:///data/catalog-chatops.db \
    CATALOG_CHATOPS__SERVER__BIND=0.0.0.0:8080
VOLUME ["/data"]
WORKDIR /data
USER chatops:chatops
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["catalog-chatops", "healthcheck"]
ENTRYPOINT ["catalog-chatops", "--log-format", "json"]
CMD ["serve"]
