#!/usr/bin/env bash
# Creates (or reuses) a Python venv with a real Airflow for the real-Airflow tests.
#
#   scripts/airflow-venv.sh      Airflow 3 (REST /api/v2), venv $AIRFLOW_VENV
#                                (default $HOME/.cache/catalog-chatops-airflow-venv)
#   scripts/airflow-venv.sh 2    Airflow 2.9.3, production's version (REST /api/v1), venv
#                                $AIRFLOW2_VENV (default $HOME/.cache/catalog-chatops-airflow2-venv)
#
# The venvs and pip's cache live outside the clone so CI runs on the same machine reuse them;
# a marker file records the version (and a digest of the pins) so a bump reinstalls instead of
# reusing a stale venv. A half-finished install has no marker and is redone.
# Prints the venv path on its last line.
set -euo pipefail

MAJOR="${1:-3}"
case "$MAJOR" in
  3)
    VERSION="${AIRFLOW_VERSION:-3.1.8}"
    VENV="${AIRFLOW_VENV:-$HOME/.cache/catalog-chatops-airflow-venv}"
    PINS=()
    ;;
  2)
    VERSION="${AIRFLOW2_VERSION:-2.9.3}"
    VENV="${AIRFLOW2_VENV:-$HOME/.cache/catalog-chatops-airflow2-venv}"
    # Airflow 2.9's official constraints file is not on PyPI, so the parts of its stack that
    # break it when they move are pinned here to the versions checked with 2.9.3 on Python 3.11
    # (the web UI/REST layer: Flask 2.2, connexion 2, FAB 4.5, marshmallow 3, SQLAlchemy 1.4,
    # pendulum). psycopg2 lets the tests run it on Postgres with the LocalExecutor: on SQLite,
    # 2.9 falls back to the SequentialExecutor, whose scheduler stops heartbeating (health
    # "unhealthy") while any task runs.
    PINS=(
      "flask==2.2.5"
      "werkzeug==2.2.3"
      "flask-session==0.5.0"
      "connexion[flask]==2.14.2"
      "flask-appbuilder==4.5.3"
      "apache-airflow-providers-fab==1.5.3"
      "marshmallow==3.26.2"
      "sqlalchemy==1.4.54"
      "pendulum==3.3.0"
      "psycopg2-binary==2.9.13"
    )
    ;;
  *)
    echo "usage: $0 [3|2]  (Airflow 3 by default, 2 for Airflow 2.9)" >&2
    exit 2
    ;;
esac

export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$HOME/.cache/catalog-chatops-pip}"
if [ "${#PINS[@]}" -eq 0 ]; then
  MARKER="$VENV/.catalog-chatops-airflow-$VERSION"
else
  DIGEST="$(printf '%s\n' "${PINS[@]}" | sha256sum | cut -c1-12)"
  MARKER="$VENV/.catalog-chatops-airflow-$VERSION-$DIGEST"
fi

if [ -x "$VENV/bin/airflow" ] && [ -f "$MARKER" ]; then
  echo "airflow venv up to date: $VENV (apache-airflow $VERSION)" >&2
  echo "$VENV"
  exit 0
fi

PY="${PYTHON:-python3}"
rm -rf "$VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet "apache-airflow==$VERSION" ${PINS[@]+"${PINS[@]}"}
# `airflow version` imports the whole stack: a broken dependency fails here, not in a test.
# (A throwaway AIRFLOW_HOME keeps it from writing airflow.cfg into $HOME/airflow.)
CHECK_HOME="$(mktemp -d)"
trap 'rm -rf "$CHECK_HOME"' EXIT
GOT="$(AIRFLOW_HOME="$CHECK_HOME" "$VENV/bin/airflow" version 2>/dev/null | tail -n 1)"
if [ "$GOT" != "$VERSION" ]; then
  echo "FATAL: $VENV/bin/airflow version printed '$GOT', expected $VERSION" >&2
  exit 1
fi
echo "apache-airflow $GOT installed in $VENV" >&2
touch "$MARKER"
echo "$VENV"
