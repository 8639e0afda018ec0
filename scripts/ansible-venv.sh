#!/usr/bin/env bash
# Creates (or reuses) the Python venv with a real ansible-core (`ansible-playbook`) for the
# Ansible flow's tests (a playbook against localhost with `connection: local`).
# Like scripts/airflow-venv.sh: the venv and pip's cache live outside the clone so CI runs on the
# same machine reuse them, and a marker file names the pinned version so a bump reinstalls
# instead of reusing a stale venv. Prints the venv path on its last line.
set -euo pipefail

# 2.19 is the newest series that runs on Python 3.11 (2.20 needs 3.12).
ANSIBLE_CORE_VERSION="${ANSIBLE_CORE_VERSION:-2.19.14}"
VENV="${ANSIBLE_VENV:-$HOME/.cache/catalog-chatops-ansible-venv}"
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$HOME/.cache/catalog-chatops-pip}"
MARKER="$VENV/.catalog-chatops-ansible-core-$ANSIBLE_CORE_VERSION"

if [ -x "$VENV/bin/ansible-playbook" ] && [ -f "$MARKER" ]; then
  echo "ansible venv up to date: $VENV (ansible-core $ANSIBLE_CORE_VERSION)" >&2
  echo "$VENV"
  exit 0
fi

PY="${PYTHON:-python3}"
rm -rf "$VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet "ansible-core==$ANSIBLE_CORE_VERSION"
# The first line reads e.g. "ansible-playbook [core 2.19.14]".
# (Read whole: ansible-playbook fails with "Broken pipe" when `head` closes the pipe early.)
VERSION_TEXT="$("$VENV/bin/ansible-playbook" --version)"
GOT="${VERSION_TEXT%%$'\n'*}"
if [ "$GOT" != "ansible-playbook [core $ANSIBLE_CORE_VERSION]" ]; then
  echo "FATAL: $VENV/bin/ansible-playbook --version printed '$GOT', expected core $ANSIBLE_CORE_VERSION" >&2
  exit 1
fi
echo "$GOT installed in $VENV" >&2
touch "$MARKER"
echo "$VENV"
