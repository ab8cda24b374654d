#!/usr/bin/env bash
# The live demo: simulstream's WebSocket server with our wait-k speech processor, and a page to
# open in a browser (microphone in, German text out) on the same port.
#
# Usage: scripts/serve.sh CHECKPOINT [--port 8000] [--host 127.0.0.1] [--set KEY=VALUE ...]
#                         [--config configs/simulstream/waitk.yaml] [--pool-size 2]
#                         [--acquire-timeout 10] [--keepalive 20] [--metrics-log FILE]
#   e.g. scripts/serve.sh exp/demo/mgcm/checkpoint_avg.pt       then open http://127.0.0.1:8000/
#        scripts/serve.sh CKPT --set waitk=5 --set device=cuda   (any key of the --config YAML)
# The logic and the checks live in fairseq_mgcm/live/server.py (docs/agent.md, "Live demo").
# Runs from any folder: paths are taken as given, relative to where you are.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
exec python -m fairseq_mgcm.live.server "$@"
