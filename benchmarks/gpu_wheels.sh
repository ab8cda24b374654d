#!/usr/bin/env bash
# Download what benchmarks/gpu_suite.sh needs on the device tool's H200 and its image lacks.
#
# Usage: benchmarks/gpu_wheels.sh DIR        (DIR is .whl for the device tool: carry it)
#
# That machine has no network and Python 3.12 with torch 2.11, numpy, scipy, scikit-learn,
# sacrebleu, sentencepiece, PyYAML, regex, tqdm, pandas, requests, ... already installed
# (.library/device/KINDS.md). Missing there, for the suite's stages, at requirements.lock's
# versions (one version each, --no-deps: nothing else is fetched):
#   fairseq-fixed       the sdist: it compiles against the torch installed there
#   hydra-core, omegaconf, antlr4-python3-runtime, bitarray    fairseq's imports
#   simuleval, TextGrid    the agent stage (SimulEval's instance, loop and AL scorer)
#   soundfile, cffi, pycparser    wav reading and writing (the corpus, the agent)
# bitarray 2.6.0 (the lock's) has no cp312 wheel; fairseq only needs its bitarray class, which
# 2.9.2 has. antlr4-python3-runtime 4.9.3 and TextGrid 1.6.1 are sdists only: each is built
# here into a pure-Python wheel (checked: py3-none-any). Fails if DIR ends up above 64 MiB (the device tool's limit for what travels).
# GPU_WHEELS_PYTHON=3.11 fetches the same set for Python 3.11 (to try it on this machine).
# The command that installs them there is in benchmarks/gpu_suite.sh's header.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: benchmarks/gpu_wheels.sh DIR" >&2; exit 2; }
dir=$1
cd "$(dirname "$0")/.."
lock=requirements.lock
pyver=${GPU_WHEELS_PYTHON:-3.12}
limit_mib=64

pin() {  # pin NAME: NAME==VERSION from the lock
  grep -iE "^$1==" "$lock" || { echo "$lock: no pin for $1" >&2; exit 1; }
}
binary=(hydra-core omegaconf simuleval soundfile cffi pycparser)
pure_sdists=(antlr4-python3-runtime TextGrid)
declare -A override=([bitarray]="bitarray==2.9.2")

mkdir -p "$dir"
fetch=(python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver"
       --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
       --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
       --platform manylinux1_x86_64 --platform any -d "$dir")
pins=()
for name in "${binary[@]}"; do pins+=("$(pin "$name")"); done
pins+=("${override[bitarray]}")
echo "wheels: ${pins[*]}" >&2
"${fetch[@]}" "${pins[@]}"
for name in "${pure_sdists[@]}"; do
  echo "$name: building a pure-Python wheel from its sdist" >&2
  python3 -m pip wheel -q --no-deps -w "$dir" "$(pin "$name")"
done
impure=$(ls "$dir" | grep -iE '^(antlr4|textgrid).*\.whl$' | grep -v -- '-none-any\.whl$' || true)
[ -z "$impure" ] || { echo "error: not pure-Python: $impure" >&2; exit 1; }
echo "fairseq-fixed: the sdist" >&2
python3 -m pip download -q --no-deps --no-binary=:all: --no-build-isolation -d "$dir" \
  "$(pin fairseq-fixed)"

ls -l "$dir" >&2
total=$(du -cb "$dir"/* | tail -1 | cut -f1)
echo "total: $((total / 1024 / 1024)) MiB ($total bytes) in $dir" >&2
[ "$total" -le $((limit_mib * 1024 * 1024)) ] \
  || { echo "error: $dir is above ${limit_mib} MiB, what the device tool carries" >&2; exit 1; }
