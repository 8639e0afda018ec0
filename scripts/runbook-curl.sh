#!/usr/bin/env bash
# The pre-deploy runbook as a maintainer does it by hand, with curl and jq, one check after the
# other: the GitHub release exists and is published, its image tag is on the registry (with the
# ghcr.io bearer-token dance), and no DAG run is running or queued in Airflow (every page read).
# It is the peer the bot's `!deploy check` is measured against (benches/peer.rs); it checks for
# real: every check is reported, and the exit code is 1 when any of them fails.
#
# Usage: scripts/runbook-curl.sh <version>
#
# Environment (defaults are the real Openverse services):
#   GITHUB_API=https://api.github.com   REPO=WordPress/openverse-catalog   RELEASE_TAG=<version>
#   GITHUB_TOKEN                         (optional)
#   REGISTRY=https://ghcr.io            IMAGE=wordpress/openverse-catalog  IMAGE_TAG=<version>
#   REGISTRY_USERNAME, REGISTRY_PASSWORD (optional; anonymous pull otherwise)
#   AIRFLOW=https://airflow.openverse.org  AIRFLOW_API=v2 (or v1)  AIRFLOW_USER=chatops
#   AIRFLOW_PASSWORD                     (required)
#   IGNORE_DAGS="dag_a dag_b"            DAG ids whose runs never block
#
# Exit: 0 all checks passed, 1 a check failed or could not be answered, 2 usage.

set -uo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 <version>" >&2
    exit 2
fi
for tool in curl jq; do
    command -v "$tool" >/dev/null || { echo "$0: $tool is required" >&2; exit 2; }
done

version=$1
GITHUB_API=${GITHUB_API:-https://api.github.com}
REPO=${REPO:-WordPress/openverse-catalog}
RELEASE_TAG=${RELEASE_TAG:-$version}
REGISTRY=${REGISTRY:-https://ghcr.io}
IMAGE=${IMAGE:-wordpress/openverse-catalog}
IMAGE_TAG=${IMAGE_TAG:-$version}
AIRFLOW=${AIRFLOW:-https://airflow.openverse.org}
AIRFLOW_API=${AIRFLOW_API:-v2}
AIRFLOW_USER=${AIRFLOW_USER:-chatops}
IGNORE_DAGS=${IGNORE_DAGS:-}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
pass() { echo "✅ $*"; }
fail() { echo "❌ $*"; failed=1; }
# Every request: bounded in time, no retries (a maintainer re-runs the script instead).
CURL=(curl -sS --max-time 30)

# 1. The release: published (GitHub answers 404 for a draft's tag).
gh_auth=()
[ -n "${GITHUB_TOKEN:-}" ] && gh_auth=(-H "Authorization: Bearer $GITHUB_TOKEN")
code=$("${CURL[@]}" -o "$tmp/release" -w '%{http_code}' "${gh_auth[@]}" \
    -H 'Accept: application/vnd.github+json' \
    "$GITHUB_API/repos/$REPO/releases/tags/$RELEASE_TAG") || code=000
if [ "$code" = 200 ] && [ "$(jq -r '.draft' "$tmp/release")" = false ]; then
    pass "release: $RELEASE_TAG ($(jq -r '.html_url' "$tmp/release"))"
elif [ "$code" = 404 ]; then
    fail "release: no published release $RELEASE_TAG in $REPO"
else
    fail "release: GitHub answered $code for $RELEASE_TAG"
fi

# 2. The image: HEAD the manifest; on 401 follow the challenge to the token realm, then again.
accept='application/vnd.oci.image.index.v1+json,application/vnd.docker.distribution.manifest.list.v2+json,application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json'
manifest="$REGISTRY/v2/$IMAGE/manifests/$IMAGE_TAG"
head_manifest() {
    "${CURL[@]}" -I -o "$tmp/headers" -w '%{http_code}' -H "Accept: $accept" "$@" "$manifest" \
        || echo 000
}
code=$(head_manifest)
if [ "$code" = 401 ]; then
    challenge=$(grep -i '^www-authenticate:' "$tmp/headers" | tr -d '\r')
    param() { printf '%s' "$challenge" | sed -n "s/.*$1=\"\([^\"]*\)\".*/\1/p"; }
    realm=$(param realm)
    service=$(param service)
    scope=$(param scope)
    [ -n "$scope" ] || scope="repository:$IMAGE:pull"
    reg_auth=()
    [ -n "${REGISTRY_USERNAME:-}" ] && reg_auth=(-u "$REGISTRY_USERNAME:${REGISTRY_PASSWORD:-}")
    token=$("${CURL[@]}" "${reg_auth[@]}" -G "$realm" \
        --data-urlencode "service=$service" --data-urlencode "scope=$scope" \
        | jq -r '.token // .access_token // empty')
    code=$(head_manifest -H "Authorization: Bearer $token")
fi
if [ "$code" = 200 ]; then
    digest=$(grep -i '^docker-content-digest:' "$tmp/headers" | tr -d '\r' | cut -d' ' -f2)
    pass "image: $IMAGE:$IMAGE_TAG → $digest"
elif [ "$code" = 404 ]; then
    fail "image: $IMAGE:$IMAGE_TAG is not on $REGISTRY"
else
    fail "image: the registry answered $code for $IMAGE:$IMAGE_TAG"
fi

# 3. DAG runs: every running or queued run across all DAGs, page by page.
if [ "$AIRFLOW_API" = v1 ]; then
    af_auth=(-u "$AIRFLOW_USER:${AIRFLOW_PASSWORD:-}")
else
    jwt=$("${CURL[@]}" -X POST -H 'Content-Type: application/json' \
        -d "$(jq -n --arg u "$AIRFLOW_USER" --arg p "${AIRFLOW_PASSWORD:-}" \
            '{username: $u, password: $p}')" \
        "$AIRFLOW/auth/token" | jq -r '.access_token // empty')
    af_auth=(-H "Authorization: Bearer $jwt")
fi
offset=0
: >"$tmp/runs"
runs_ok=1
while :; do
    code=$("${CURL[@]}" -o "$tmp/page" -w '%{http_code}' "${af_auth[@]}" \
        "$AIRFLOW/api/$AIRFLOW_API/dags/~/dagRuns?state=running&state=queued&limit=100&offset=$offset") \
        || code=000
    if [ "$code" != 200 ]; then
        fail "DAG runs: Airflow answered $code"
        runs_ok=0
        break
    fi
    jq -r '.dag_runs[] | "\(.dag_id) \(.dag_run_id) \(.state)"' "$tmp/page" >>"$tmp/runs"
    got=$(jq '.dag_runs | length' "$tmp/page")
    total=$(jq '.total_entries' "$tmp/page")
    offset=$((offset + got))
    if [ "$got" -eq 0 ] || [ "$offset" -ge "$total" ]; then
        break
    fi
done
if [ "$runs_ok" = 1 ]; then
    for dag in $IGNORE_DAGS; do
        grep -v "^$dag " "$tmp/runs" >"$tmp/kept" || true
        mv "$tmp/kept" "$tmp/runs"
    done
    active=$(sort -u "$tmp/runs" | grep -c . || true)
    if [ "$active" -eq 0 ]; then
        pass "DAG runs: no active DAG runs"
    else
        fail "DAG runs: $active active DAG run(s) block the deploy"
        sort -u "$tmp/runs" | head -n 20 | sed 's/^/   /'
    fi
fi

exit "$failed"
