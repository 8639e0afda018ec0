#!/usr/bin/env bash
# What CI can check of the container setup without Docker: docker-compose.yml parses and says
# what the README promises, the Dockerfile has the expected shape, and the built binary runs as
# a non-root user with the image's env and a temp data dir, answering /healthz.
#   usage: scripts/check-container.sh [path/to/catalog-chatops]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${1:-${CARGO_TARGET_DIR:-target}/debug/catalog-chatops}"
fail() { echo "check-container: $*" >&2; exit 1; }

python3 -c 'import yaml' 2>/dev/null || python3 -m pip install --quiet PyYAML
python3 - <<'PY'
import sys, yaml
doc = yaml.safe_load(open("docker-compose.yml"))
svc = doc.get("services", {})
def need(cond, msg):
    if not cond:
        sys.exit("docker-compose.yml: " + msg)
need("bot" in svc and "postgres" in svc, "needs services bot and postgres")
need(str(svc["postgres"].get("image", "")).startswith("postgres:16"), "postgres must be postgres:16")
env = svc["bot"].get("environment", {})
need(isinstance(env, dict), "bot.environment must be a mapping")
for k in ["CATALOG_CHATOPS__STORE__URL", "SERVER_TOKEN", "CATALOG_CHATOPS__SERVER__BIND", "PGPASSWORD"]:
    need(k in env, f"bot.environment lacks {k}")
need(str(env["CATALOG_CHATOPS__STORE__URL"]).startswith("postgres://"), "the bot must use Postgres")
need(":" not in str(env["CATALOG_CHATOPS__STORE__URL"]).split("@")[0].split("//")[1], "no password in the store URL")
need("depends_on" in svc["bot"], "bot must wait for postgres")
print("docker-compose.yml: ok")
PY

grep -q '^FROM rust:1.95-bookworm AS builder' Dockerfile || fail "Dockerfile: builder stage must be rust:1.95-bookworm"
grep -q '^FROM debian:bookworm-slim' Dockerfile || fail "Dockerfile: runtime must be debian:bookworm-slim"
grep -q 'ca-certificates git' Dockerfile || fail "Dockerfile: runtime needs ca-certificates and git"
grep -q 'cargo install just --locked' Dockerfile || fail "Dockerfile: just must be built in the builder"
grep -q '^USER chatops' Dockerfile || fail "Dockerfile: must run as the non-root user"
grep -q '^VOLUME \["/data"\]' Dockerfile || fail "Dockerfile: /data must be a volume"
grep -q '^HEALTHCHECK .*' Dockerfile || fail "Dockerfile: needs a HEALTHCHECK"
grep -q 'CATALOG_CHATOPS__STORE__URL=sqlite:///data/catalog-chatops.db' Dockerfile \
  || fail "Dockerfile: the SQLite store must live on /data"
echo "Dockerfile: ok"

[ -x "$BIN" ] || fail "no binary at $BIN (cargo build first)"
work="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
cp "$BIN" "$work/catalog-chatops"
cp config/catalog-chatops.toml "$work/config.toml"
mkdir -p "$work/data"
chmod 755 "$work" "$work/catalog-chatops"
chmod 644 "$work/config.toml"
chown 65534:65534 "$work/data"
port=$(( 20000 + RANDOM % 20000 ))
as_nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
if [ "$(id -u)" != 0 ]; then as_nobody=(); echo "not root: running the binary as $(id -un)"; fi
env -i PATH=/usr/bin:/bin HOME="$work/data" \
  CATALOG_CHATOPS_CONFIG="$work/config.toml" \
  CATALOG_CHATOPS__STORE__URL="sqlite://$work/data/catalog-chatops.db" \
  CATALOG_CHATOPS__SERVER__BIND="0.0.0.0:$port" \
  SERVER_TOKEN="container-check-token-0123456789" \
  "${as_nobody[@]}" "$work/catalog-chatops" --log-format json serve >"$work/out.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  if env -i CATALOG_CHATOPS_CONFIG="$work/config.toml" CATALOG_CHATOPS__SERVER__BIND="0.0.0.0:$port" \
       SERVER_TOKEN="container-check-token-0123456789" \
       CATALOG_CHATOPS__STORE__URL="sqlite://$work/data/catalog-chatops.db" \
       "$work/catalog-chatops" healthcheck >/dev/null 2>&1; then
    owner=$(stat -c %u "$work/data/catalog-chatops.db")
    [ "$(id -u)" != 0 ] || [ "$owner" = 65534 ] || fail "the store was not created by the non-root user"
    kill -TERM "$pid"; wait "$pid" || fail "serve did not exit cleanly on SIGTERM"
    echo "binary as uid 65534: /healthz ok, store on the data dir, clean SIGTERM"
    exit 0
  fi
  sleep 0.1
done
cat "$work/out.log" >&2
fail "the binary did not answer /healthz as a non-root user"
