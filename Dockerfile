# Headroom: build with the Rust toolchain, run on a slim Debian with only CA certificates.
# The image's config listens on 0.0.0.0; mount your own at /etc/headroom/headroom.toml.
FROM rust:1.95-slim-bookworm AS build
# jemalloc (the allocator) is built from C with make.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock clippy.toml ./
COPY src ./src
RUN cargo build --release --locked --bin headroom

FROM debian:bookworm-slim
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/headroom /usr/local/bin/headroom
COPY config/docker.toml /etc/headroom/headroom.toml
USER 65532:65532
EXPOSE 8080 9090
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/headroom"]
CMD ["--config", "/etc/headroom/headroom.toml"]
