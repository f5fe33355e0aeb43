#!/usr/bin/env bash
# The whole test suite of d4-rs: formatting, lints, every test of the workspace, the
# sensor build's size, and a build check of the fuzz targets. CI runs exactly this (.ci/run); so should you.
#
# Needs: the Rust toolchain, ../shared beside the repository (test vectors), and
# redis-server, postgresql, python3, chromium and chromium-driver (installed here with apt-get when
# missing and we are root).
set -euo pipefail
cd "$(dirname "$0")"

say() { printf '\n==> %s\n' "$*"; }

shared="${D4_SHARED_DIR:-../shared}"
if [ ! -f "$shared/vectors/manifest.json" ]; then
    echo "error: test vectors not found at $shared/vectors/manifest.json" >&2
    echo "       clone the repository with ../shared beside it, or set D4_SHARED_DIR" >&2
    exit 1
fi

apt_updated=0
install_pkg() { # install_pkg WHAT PACKAGE: apt-get as root, else a clear error
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing $2 (for $1)"
        if [ "$apt_updated" = 0 ]; then apt-get update -qq; apt_updated=1; fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
    else
        echo "error: $1 is missing: install the $2 package" >&2
        exit 1
    fi
}
need_pkg() { # need_pkg COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 || install_pkg "$1" "$2"
}
# A header file of a C library (-dev package) some crates build against.
need_file() { # need_file PATH PACKAGE
    [ -e "$1" ] || install_pkg "$1" "$2"
}
# `d4 tls -i` (feature live-capture) links libpcap; the tests build with it.
need_file /usr/include/pcap.h libpcap-dev
# The TLS test captures hold real OpenSSL handshakes (TLS 1.0-1.3; d4-testkit).
need_file /usr/include/openssl/ssl.h libssl-dev
need_pkg pkg-config pkg-config
# d4-keys links the system's GMP (big integers of the weak-key checks and the batch GCD).
[ -n "$(ls /usr/include/gmp.h /usr/include/*/gmp.h 2>/dev/null)" ] || install_pkg "GMP headers (gmp.h)" libgmp-dev
# Redis-backed tests start their own redis-server on a free loopback port
# (d4-testkit), unless D4_TEST_REDIS_URL names one.
need_pkg redis-server redis-server
# The PostgreSQL store's tests (d4-pssl) start their own server on a free loopback port from
# Debian's binaries (/usr/lib/postgresql/*/bin: initdb, postgres; run as the `postgres` user
# when we are root), unless D4_TEST_POSTGRES_URL names one.
if [ -z "${D4_TEST_POSTGRES_URL:-}" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    install_pkg "PostgreSQL server binaries (initdb)" postgresql
fi
# Python analyzers' stand-ins in the tests (d4-core compatibility) use python3.
need_pkg python3 python3
# The SNI test (server_fixes) sends an IP address as SNI with `openssl s_client`.
need_pkg openssl openssl
# The browser tests (crates/d4/tests/it/web_browser.rs) drive Debian's chromium through its
# chromedriver; nothing is downloaded at test time.
need_pkg /usr/bin/chromium chromium
need_pkg /usr/bin/chromedriver chromium-driver
# The Redis tests' d4-core analyzer needs PyPI `redis`: a venv under target/ when missing.
python3 -c 'import redis' 2>/dev/null || python3 -m venv --help >/dev/null 2>&1 || need_pkg python3-venv-module python3-venv

say "cargo fmt --check"
cargo fmt --all --check

# Everything is built with `live-capture` (libpcap) so `d4 tls -i` is tested; the default
# build (no libpcap) is linted too.
say "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --features d4/live-capture -- -D warnings
cargo clippy --quiet -p d4 -- -D warnings

say "cargo test"
cargo test --workspace --features d4/live-capture

# The weak-key acceptance corpus: 10,000 RSA-1024 moduli with planted shared primes (pairs,
# groups of three, both primes shared, duplicates) reported exactly; release build (≈ 20 s).
say "batch GCD acceptance corpus (10,000 RSA-1024 moduli, release)"
cargo test --release -p d4-keys --test batchgcd -- --ignored

say "sensor build (client + inspect only): lints, release build, size < 5 MB"
cargo clippy --quiet -p d4 --no-default-features --features sensor -- -D warnings
cargo build --quiet --release -p d4 --no-default-features --features sensor
sensor_bin="${CARGO_TARGET_DIR:-target}/release/d4"
sensor_size=$(stat -c %s "$sensor_bin")
echo "sensor build: $sensor_bin is $sensor_size bytes"
if [ "$sensor_size" -ge 5000000 ]; then
    echo "error: the sensor build is $sensor_size bytes, not under 5 MB (docs/client.md)" >&2
    exit 1
fi
"$sensor_bin" client --help >/dev/null
if "$sensor_bin" server --help >/dev/null 2>&1; then
    echo "error: the sensor build holds \`d4 server\`" >&2
    exit 1
fi

if [ -f fuzz/Cargo.toml ]; then
    say "fuzz targets build (cargo check)"
    cargo check --quiet --manifest-path fuzz/Cargo.toml --bins
fi

say "all checks passed"
