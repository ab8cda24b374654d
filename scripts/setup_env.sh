#!/usr/bin/env bash
# Prepare a machine to run fairseq-mgcm: system tools and a cached virtual environment.
#
# Usage: source scripts/setup_env.sh      (the demo and test scripts do this for you)
#
# Inputs:  MGCM_VENV  where the virtual environment lives
#                     (default: $HOME/.cache/fairseq-mgcm/venv, outside any checkout, so that
#                     fresh clones reuse the ~6 GB of torch and CUDA wheels)
# Effects: installs espeak-ng and sox with apt-get when they are missing (needs root);
#          creates the venv and installs requirements.lock into it when the lock changed
#          (torch first, then the rest with --no-deps --no-build-isolation);
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

_mgcm_lock="$_mgcm_root/requirements.lock"

# The exact pins of the packages named, read from the lock ("name==version" per line).
_mgcm_pins() {
  local name pin
  for name in "$@"; do
    pin=$(grep -iE "^${name}==" "$_mgcm_lock") \
      || { _mgcm_log "$_mgcm_lock: no exact pin for '$name' (the lock must list it)"; return 1; }
    echo "$pin"
  done
}

_mgcm_venv() {
  local py="${MGCM_PYTHON:-python3}"
  [ -f "$_mgcm_lock" ] || { _mgcm_log "missing lock file $_mgcm_lock"; return 1; }
  local stamp="$MGCM_VENV/.fairseq-mgcm-lock"
  local want
  # The stamp covers the lock and this script: a changed pin or install step re-installs.
  want="$(cat "$_mgcm_lock" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
  if [ ! -x "$MGCM_VENV/bin/python" ]; then
    _mgcm_log "creating virtual environment $MGCM_VENV"
    mkdir -p "$(dirname "$MGCM_VENV")"
    "$py" -m venv "$MGCM_VENV" || return 1
  fi
  local pip=("$MGCM_VENV/bin/python" -m pip install -q --disable-pip-version-check)
  local first
  first=$(_mgcm_pins torch torchaudio numpy cython setuptools wheel) || return 1
  # 1. torch and the build tools fairseq-fixed needs, at the lock's versions.
  _mgcm_log "installing torch first ($(echo $first | tr '\n' ' ')); the CUDA build is ~5 GB the first time"
  # shellcheck disable=SC2086
  "${pip[@]}" $first \
    || { _mgcm_log "pip could not install the pins above from $_mgcm_lock"; return 1; }
  # 2. everything else, exactly as locked: no resolver, no isolated build environment, so
  #    fairseq-fixed compiles against the torch installed in step 1.
  _mgcm_log "installing $_mgcm_lock (fairseq-fixed builds against that torch)"
  "${pip[@]}" --no-deps --no-build-isolation -r "$_mgcm_lock" \
    || { _mgcm_log "pip could not install $_mgcm_lock (see the pip error above)"; return 1; }
  "$MGCM_VENV/bin/python" -m pip check >&2 \
    || { _mgcm_log "the environment from $_mgcm_lock has broken requirements (pip check)"; return 1; }
  echo "$want" > "$stamp"
}

_mgcm_system_tools && _mgcm_venv || { _mgcm_log "set-up failed"; return 1 2>/dev/null || exit 1; }
# shellcheck disable=SC1091
source "$MGCM_VENV/bin/activate"
export PYTHONPATH="$_mgcm_root${PYTHONPATH:+:$PYTHONPATH}"
