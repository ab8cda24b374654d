// AudioWorklet processor: the microphone's samples, resampled to the server's rate, as 16-bit
// little-endian mono PCM (what the simulstream server reads), posted to the page in batches of
// `batch` samples.
//
// Why resample here: Chromium's own resampling of a microphone into an AudioContext made at
// 16 kHz rolls off above about 6 kHz (measured through Chromium's fake microphone: 0.82 of the
// amplitude at 6.5-7 kHz, 0.47 at 7-7.5 kHz), where the model's top mel bands (up to 8 kHz)
// were trained on full-band audio. This windowed-sinc filter (32 zero crossings a side,
// Blackman window) passes 16 kHz output unchanged up to 7 kHz, 7.5 kHz at 0.88 and 7.8 kHz at
// 0.43 of its amplitude, stops 9 kHz, and keeps its state across blocks, so it equals
// filtering the whole recording at once.

const ZERO_CROSSINGS = 32; // of the low-pass kernel on each side: its length and sharpness
const PASSBAND = 0.97; // the cut-off, as a fraction of the output's Nyquist frequency

class Resampler {
  constructor(inRate, outRate) {
    this.step = inRate / outRate; // input samples per output sample
    this.cutoff = (PASSBAND * 0.5 * Math.min(inRate, outRate)) / inRate; // cycles per input
    this.halfWidth = inRate === outRate ? 0 : ZERO_CROSSINGS / (2 * this.cutoff);
    // Input not yet used up, led by zeros so that the first output is at the first input.
    this.pad = Math.ceil(this.halfWidth);
    this.buffer = new Float32Array(this.pad);
    this.position = this.pad; // where the next output sample falls, in `buffer`'s samples
  }

  kernel(distance) {
    const x = distance / this.halfWidth; // Blackman window over [-1, 1]
    const window = 0.42 + 0.5 * Math.cos(Math.PI * x) + 0.08 * Math.cos(2 * Math.PI * x);
    const t = 2 * this.cutoff * distance;
    const sinc = t === 0 ? 1 : Math.sin(Math.PI * t) / (Math.PI * t);
    return 2 * this.cutoff * sinc * window;
  }

  // Append `input`; return every output sample whose kernel now lies within the input.
  push(input) {
    if (this.halfWidth === 0) return input.slice();
    const joined = new Float32Array(this.buffer.length + input.length);
    joined.set(this.buffer);
    joined.set(input, this.buffer.length);
    const out = [];
    while (this.position + this.halfWidth < joined.length) {
      const first = Math.ceil(this.position - this.halfWidth);
      const last = Math.floor(this.position + this.halfWidth);
      let sum = 0;
      for (let k = Math.max(first, 0); k <= last; k++) {
        sum += joined[k] * this.kernel(this.position - k);
      }
      out.push(sum);
      this.position += this.step;
    }
    const used = Math.max(0, Math.floor(this.position - this.halfWidth));
    this.buffer = joined.slice(used);
    this.position -= used;
    return Float32Array.from(out);
  }

  // The outputs still held back for want of later input: the end of the recording, as if
  // silence followed.
  flush() {
    return this.push(new Float32Array(this.pad + 1));
  }
}

class Pcm16Capture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const {inRate, outRate, batch} = options.processorOptions;
    this.resampler = new Resampler(inRate, outRate);
    this.batch = batch;
    this.pcm = new Int16Array(batch);
    this.filled = 0;
    // "flush": send the rest now (the user pressed Stop), then say so.
    this.port.onmessage = (event) => {
      if (event.data === "flush") {
        this.append(this.resampler.flush());
        this.post();
        this.port.postMessage("flushed");
      }
    };
  }

  append(samples) {
    for (const value of samples) {
      const sample = Math.round(value * 32768);
      this.pcm[this.filled++] = Math.max(-32768, Math.min(32767, sample));
      if (this.filled === this.batch) this.post();
    }
  }

  post() {
    if (this.filled === 0) return;
    const samples = this.pcm.slice(0, this.filled);
    this.port.postMessage(samples.buffer, [samples.buffer]);
    this.filled = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true; // no input connected (yet)
    const mono = new Float32Array(channels[0].length);
    for (const channel of channels) {
      for (let i = 0; i < mono.length; i++) mono[i] += channel[i] / channels.length;
    }
    this.append(this.resampler.push(mono));
    return true;
  }
}

registerProcessor("pcm16-capture", Pcm16Capture);
