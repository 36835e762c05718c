# coffer's container image: `docker build -t coffer .` (the compose file in deploy/ uses it).
# The binary is built (profile `dist`: fat LTO) in a Rust image and copied into a slim Debian
# one; it runs as an unprivileged user with its data dir (embedded default only) under
# /var/lib/coffer.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --locked --profile dist --bin coffer && cp target/dist/coffer /coffer

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/coffer --create-home coffer
COPY --from=build /coffer /usr/local/bin/coffer
USER coffer
WORKDIR /var/lib/coffer
ENV COFFER_ADDR=0.0.0.0:8080 COFFER_DATA_DIR=/var/lib/coffer
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=2s CMD curl -fs http://127.0.0.1:8080/readyz > /dev/null || exit 1
ENTRYPOINT ["coffer"]
CMD ["serve"]
