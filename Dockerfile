# Build stage: the release binary.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin neolight

# Runtime stage: the binary alone, state on a volume at /data.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/neolight /usr/local/bin/neolight
ENV NEOLIGHT_DATA_DIR=/data \
    NEOLIGHT_BIND=0.0.0.0 \
    PORT=8080 \
    TRADING_MODE=PAPER_TRADING_MODE
VOLUME /data
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/neolight"]
CMD ["run"]
