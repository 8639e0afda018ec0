#!/usr/bin/env bash
# Creates (or reuses) the Python venv with a real Airflow 3 for tests/airflow_real.rs.
# The venv and pip's cache live outside the clone so CI runs on the same machine reuse them;
# a marker file records the pinned version so a bump reinstalls instead of reusing a stale venv.
# Prints the venv path on its last line.
set -euo pipefail

AIRFLOW_VERSION="${AIRFLOW_VERSION:-3.1.8}"
VENV="${AIRFLOW_VENV:-$HOME/.cache/catalog-chatops-airflow-venv}"
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$HOME/.cache/catalog-chatops-pip}"
MARKER="$VENV/.catalog-chatops-airflow-$AIRFLOW_VERSION"

if [ -x "$VENV/bin/airflow" ] && [ -f "$MARKER" ]; then
  echo "airflow venv up to date: $VENV (apache-airflow $AIRFLOW_VERSION)" >&2
  echo "$VENV"
  exit 0
fi

PY="${PYTHON:-python3}"
rm -rf "$VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet "apache-airflow==$AIRFLOW_VERSION"
"$VENV/bin/airflow" version >&2
touch "$MARKER"
echo "$VENV"
