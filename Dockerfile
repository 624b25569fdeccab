# check=skip=SecretsUsedInArgOrEnv
# listenkeyd container image: a release build on Debian 12, run from distroless.
#
#   docker build -t listenkeyd .
#   docker run -d --name listenkeyd \
#     -v "$PWD/listenkeyd.toml:/etc/listenkeyd/listenkeyd.toml:ro" \
#     -v "$PWD/binance_api_key:/run/secrets/binance_api_key:ro" \
#     -v listenkeyd-state:/var/lib/listenkeyd \
#     listenkeyd
#
# More in deploy/README.md (compose, Kubernetes sidecar).

# --- build -----------------------------------------------------------------
# `cargo build --release --locked`: the ordinary release build, linked against
# Debian 12's glibc, as the Debian package ships it too. The runtime base
# carries that same C library, so the resolver loads the NSS modules it was
# built with.
FROM rust:1-slim-bookworm AS build
WORKDIR /src

# Dependencies first, in their own layer: it is rebuilt only when a manifest or
# Cargo.lock changes, not on every source edit. The placeholder main.rs and
# lib.rs files exist only to let cargo compile the dependency graph. The
# simulator (sim/) is built in: `listenkeyd sim` is part of the installed
# binary (the default `sim` feature). The workspace's other member (tools/:
# the soak and the benchmark, never in the image) is named by its manifest
# alone: cargo must read it, and builds none of it.
COPY Cargo.toml Cargo.lock ./
COPY .cargo/config.toml ./.cargo/
COPY sim/Cargo.toml ./sim/
COPY tools/Cargo.toml ./tools/
RUN mkdir src sim/src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs sim/src/lib.rs \
 && cargo build --release --locked --bin listenkeyd \
 && rm -rf src sim/src

# The real sources. touch: their mtimes come from the build context and may be
# older than the placeholders', which would make cargo keep the placeholder build.
COPY src ./src
COPY sim/src ./sim/src
RUN touch src/main.rs src/lib.rs sim/src/lib.rs \
 && cargo build --release --locked --bin listenkeyd \
 && mkdir -p /out/bin /out/var/lib/listenkeyd /out/etc/listenkeyd \
 && cp target/release/listenkeyd /out/bin/listenkeyd

# --- runtime ---------------------------------------------------------------
# distroless/cc: Debian 12's glibc (the one the build stage linked against),
# libgcc and CA certificates (/etc/ssl/certs, read by rustls-native-certs); no
# shell, no package manager. Its /etc/nsswitch.conf looks hosts up in files,
# then DNS. A glibc security update reaches the image with a rebuild on the
# updated base, as a rustls one does with a rebuild of the daemon.
FROM gcr.io/distroless/cc-debian12:nonroot

COPY --from=build /out/bin/listenkeyd /usr/local/bin/listenkeyd
# The state directory must belong to the runtime user: a named volume mounted
# there starts as a copy of it, ownership included.
COPY --from=build --chown=65532:65532 /out/var/lib/listenkeyd /var/lib/listenkeyd
COPY --from=build /out/etc/listenkeyd /etc/listenkeyd

# Same paths as on a host (README.md): the config is read from
# /etc/listenkeyd/listenkeyd.toml, the state file is written to
# /var/lib/listenkeyd/keys.json, and the API key comes from a secret file
# (docker/compose secrets and Kubernetes Secret volumes mount under /run/secrets).
# LISTENKEYD__BINANCE__API_KEY, when set, takes precedence over the file.
# DL3064 (and BuildKit's SecretsUsedInArgOrEnv check, skipped on the first line)
# flag any ENV whose name contains KEY; this value is a path, not a secret.
# hadolint ignore=DL3064
ENV LISTENKEYD_CONFIG=/etc/listenkeyd/listenkeyd.toml \
    LISTENKEYD__BINANCE__API_KEY_FILE=/run/secrets/binance_api_key
VOLUME ["/etc/listenkeyd", "/var/lib/listenkeyd"]

# distroless's "nonroot" user, numerically so that runAsNonRoot can verify it.
USER 65532:65532

# Healthy when every stream holds an unexpired value; the first publish waits
# for Binance, hence the start period.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["/usr/local/bin/listenkeyd", "health"]

# SIGTERM: the schedulers stop, the state file is written a last time, exit 0.
# Keys are not closed (other processes may share them).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/listenkeyd"]
CMD ["run"]
