# A small image of the engine: build with the locked SDK versions, ship the stripped binary on Debian slim
# (glibc 2.36) with CA certificates, as a non-root user.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY tests ./tests
COPY fixtures ./fixtures
RUN cargo build --locked --profile dist --bin s3-backfill

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 backfill
COPY --from=build /src/target/dist/s3-backfill /usr/local/bin/s3-backfill
USER backfill
# Default checkpoints go to .s3-backfill/ under the working directory: mount a volume here.
WORKDIR /state
ENTRYPOINT ["s3-backfill"]
CMD ["--help"]
