#!/usr/bin/env bash
# Prepare a machine to run fairseq-mgcm: system tools and a cached virtual environment.
#
# Usage: source scripts/setup_env.sh      (the demo and test scripts do this for you)
#
# Inputs:  MGCM_VENV  where the virtual environment lives
#                     (default: $HOME/.cache/fairseq-mgcm/venv, outside any checkout, so that
#                     fresh clones reuse the ~6 GB of torch and CUDA wheels)
# Effects: installs espeak-ng and sox with apt-get when they are missing (needs root);
#          creates the venv and installs requirements*.txt into it when they changed;
#          activates the venv and puts this checkout first on PYTHONPATH.
#
# The project itself is NOT pip-installed into the shared venv: an editable install there would
# point every later user of the venv at whichever clone ran last (a CI clone that is then
# deleted). Scripts import the checkout through PYTHONPATH instead.

_mgcm_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MGCM_VENV="${MGCM_VENV:-$HOME/.cache/fairseq-mgcm/venv}"

_mgcm_log() { echo "[setup_env $(date +%H:%M:%S)] $*" >&2; }

_mgcm_system_tools() {
  local missing=()
  command -v espeak-ng >/dev/null || missing+=(espeak-ng)
  command -v sox >/dev/null || missing+=(sox)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    _mgcm_log "missing system tools: ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}"
    return 1
  fi
  _mgcm_log "installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
}

_mgcm_venv() {
  local py="${MGCM_PYTHON:-python3}"
  if [ ! -x "$MGCM_VENV/bin/python" ]; then
    _mgcm_log "creating virtual environment $MGCM_VENV"
    mkdir -p "$(dirname "$MGCM_VENV")"
    "$py" -m venv "$MGCM_VENV" || return 1
    "$MGCM_VENV/bin/pip" install -q --upgrade pip || return 1
  fi
  local stamp="$MGCM_VENV/.fairseq-mgcm-requirements"
  local want
  want="$(cat "$_mgcm_root/requirements.txt" "$_mgcm_root/requirements-test.txt" | sha256sum | cut -c1-16)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    _mgcm_log "installing requirements into $MGCM_VENV (torch with CUDA is ~5 GB the first time)"
    "$MGCM_VENV/bin/pip" install -q -r "$_mgcm_root/requirements.txt" \
      -r "$_mgcm_root/requirements-test.txt" || return 1
    echo "$want" > "$stamp"
  fi
}

_mgcm_system_tools && _mgcm_venv || { _mgcm_log "set-up failed"; return 1 2>/dev/null || exit 1; }
# shellcheck disable=SC1091
source "$MGCM_VENV/bin/activate"
export PYTHONPATH="$_mgcm_root${PYTHONPATH:+:$PYTHONPATH}"
