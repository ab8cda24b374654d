"""The page's resampler (fairseq_mgcm/live/web/capture.js), run in Node.js: 44.1 and 48 kHz to
16 kHz, flat to 7 kHz, no aliasing from above 8 kHz, the same samples whatever the block sizes.
(The browser test checks it inside Chromium too; this one needs only `node`.)"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

CAPTURE = Path(__file__).resolve().parents[2] / "fairseq_mgcm" / "live" / "web" / "capture.js"

# Loads capture.js without an AudioWorklet scope, then resamples sines in blocks.
HARNESS = """
global.AudioWorkletProcessor = class { constructor() { this.port = {}; } };
global.registerProcessor = () => {};
eval(require("fs").readFileSync(process.argv[1], "utf8") + "; global.Resampler = Resampler;");
function resample(inRate, hz, block) {
  const r = new Resampler(inRate, 16000), out = [];
  for (let s = 0; s < inRate; s += block) {
    const x = new Float32Array(Math.min(block, inRate - s));
    for (let i = 0; i < x.length; i++) x[i] = Math.sin(2 * Math.PI * hz * (s + i) / inRate);
    out.push(...r.push(x));
  }
  out.push(...r.flush());
  return out;
}
const result = {};
for (const inRate of [44100, 48000]) {
  for (const hz of [1000, 7000, 9000]) {
    const out = resample(inRate, hz, 128), mid = out.slice(2000, 14000);
    result[`${inRate} ${hz}`] = [out.length,
      Math.sqrt(2 * mid.reduce((a, v) => a + v * v, 0) / mid.length)];
  }
  const a = resample(inRate, 3000, 128), b = resample(inRate, 3000, 1000);
  result[`${inRate} blocks`] = Math.max(...a.map((v, i) => Math.abs(v - b[i])));
}
console.log(JSON.stringify(result));
"""


def test_the_page_resampler_keeps_the_band_and_ignores_block_sizes() -> None:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("Node.js is not installed (the browser test checks the resampler too)")
    done = subprocess.run([node, "-e", HARNESS, str(CAPTURE)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    for rate in ("44100", "48000"):
        # One second in: 16000 samples, and one held back until the end, released by flush().
        assert {result[f"{rate} {hz}"][0] for hz in (1000, 7000, 9000)} == {16001}
        assert result[f"{rate} 1000"][1] == pytest.approx(1, abs=0.002)
        assert result[f"{rate} 7000"][1] == pytest.approx(1, abs=0.01)
        assert result[f"{rate} 9000"][1] < 0.001  # would alias to 7 kHz
        assert result[f"{rate} blocks"] < 1e-6
