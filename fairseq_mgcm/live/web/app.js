// fairseq-mgcm live demo: microphone -> simulstream's WebSocket protocol -> German text.
//
// The server (fairseq_mgcm/live/server.py) reads 16-bit mono PCM as binary messages, after a
// JSON {"sample_rate": ...}; it answers {"new": text, "deleted": text} as the translation
// grows (and is revised: "deleted" is text to take off the end first), {"error": reason} for a
// message it refused, and {"end_of_processing": true} after our {"end_of_stream": true}.
"use strict";

const SERVER_RATE = 16000; // the model's rate: capture.js resamples the microphone to it
const BATCH_SECONDS = 0.1; // audio per WebSocket message

// The page's text after one server message: `deleted` taken off the end, then `new` added.
// Deleted text is matched at the end ignoring the spaces around it; new text keeps its own
// spacing, and a space is put between two words that would otherwise run together (our
// processor starts each later message with a space, but simulstream's end-of-stream message,
// merged from two outputs, loses it; processors that write whole words may send none).
function applyUpdate(text, update) {
  let kept = text;
  const deleted = (update.deleted || "").trim();
  if (deleted) {
    const end = kept.trimEnd();
    const cut = end.endsWith(deleted) ? deleted.length : Math.min(deleted.length, end.length);
    kept = end.slice(0, end.length - cut).trimEnd();
  }
  let added = update.new || "";
  if (kept && added && !/\s$/.test(kept) && !/^[\s.,;:!?)]/.test(added)) added = " " + added;
  return kept + added;
}

function socketUrl(location) {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/";
}

class LiveDemo {
  constructor(page) {
    this.page = page;
    this.text = "";
    this.samplesSent = 0;
    this.rate = SERVER_RATE;
    this.socket = null;
    this.context = null;
    this.stream = null;
    this.node = null;
    this.lastError = "";
    this.setState("idle", "Press Start and speak English: the German translation appears below.");
  }

  setState(state, message) {
    this.state = state;
    document.body.dataset.state = state;
    this.page.status.textContent = message;
    this.page.start.disabled = !["idle", "done", "error"].includes(state);
    this.page.stop.disabled = state !== "listening";
  }

  seconds() {
    return this.samplesSent / this.rate;
  }

  show() {
    this.page.translation.textContent = this.text;
    document.body.dataset.secondsSent = this.seconds().toFixed(2);
  }

  async start() {
    this.text = "";
    this.samplesSent = 0;
    this.lastError = "";
    this.show();
    const url = socketUrl(window.location);
    this.setState("connecting", `connecting to ${url} ...`);
    try {
      this.socket = await this.connect(url);
      await this.startMicrophone();
    } catch (error) {
      this.fail(error.message || String(error));
      return;
    }
    this.setState("listening", `listening: audio at ${this.rate} Hz (microphone at ` +
                  `${this.context.sampleRate} Hz)`);
  }

  connect(url) {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url);
      socket.binaryType = "arraybuffer";
      socket.onopen = () => resolve(socket);
      socket.onerror = () => reject(new Error(`cannot reach the server at ${url}`));
      socket.onmessage = (event) => this.receive(event.data);
      socket.onclose = (event) => this.closed(event);
    });
  }

  async startMicrophone() {
    // The microphone as it is: echo cancellation, noise suppression and gain control were not
    // in the training audio.
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: {channelCount: 1, echoCancellation: false, noiseSuppression: false,
              autoGainControl: false},
    });
    // At the device's own rate: capture.js resamples to the server's (see there why).
    this.context = new AudioContext();
    const source = this.context.createMediaStreamSource(this.stream);
    await this.context.audioWorklet.addModule("capture.js");
    this.node = new AudioWorkletNode(this.context, "pcm16-capture", {
      processorOptions: {inRate: this.context.sampleRate, outRate: SERVER_RATE,
                         batch: Math.round(SERVER_RATE * BATCH_SECONDS)},
    });
    this.node.port.onmessage = (event) => this.sendAudio(event.data);
    this.socket.send(JSON.stringify({sample_rate: this.rate}));
    source.connect(this.node);
    this.node.connect(this.context.destination); // keeps it running; it outputs silence
    await this.context.resume();
  }

  sendAudio(data) {
    if (!this.socket) return; // stopped on an error meanwhile
    if (data === "flushed") {
      this.socket.send(JSON.stringify({end_of_stream: true}));
      return;
    }
    if (!["connecting", "listening", "finishing"].includes(this.state)) return;
    this.socket.send(data);
    this.samplesSent += data.byteLength / 2;
    this.show();
    if (this.state !== "listening") return;
    const error = this.lastError ? ` (server: ${this.lastError})` : "";
    this.page.status.textContent = `listening: ${this.seconds().toFixed(1)} s of audio sent ` +
      `at ${this.rate} Hz${error}`;
  }

  stop() {
    this.setState("finishing", "finishing the translation ...");
    this.stopMicrophone();
    this.node.port.postMessage("flush"); // the rest of the audio, then end_of_stream
  }

  stopMicrophone() {
    if (this.stream) this.stream.getTracks().forEach((track) => track.stop());
    if (this.context) this.context.suspend();
  }

  receive(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch (error) {
      return this.fail(`the server sent something else than JSON: ${String(data).slice(0, 80)}`);
    }
    if (message.error) {
      this.lastError = message.error;
      this.page.status.textContent = `server: ${message.error}`;
    } else if (message.end_of_processing) {
      this.setState("done", `done: ${this.seconds().toFixed(1)} s of audio translated`);
      this.teardown();
    } else if ("new" in message || "deleted" in message) {
      this.text = applyUpdate(this.text, message);
      this.show();
    }
  }

  closed(event) {
    if (this.state === "done" || this.state === "error") return;
    const reason = this.lastError || event.reason;
    this.fail(`the server closed the connection (code ${event.code}${reason ? ": " + reason : ""})`);
  }

  fail(reason) {
    this.setState("error", `error: ${reason}`);
    this.stopMicrophone();
    this.teardown();
  }

  teardown() {
    if (this.context) this.context.close();
    this.context = null;
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) this.socket.close();
    this.socket = null;
  }
}

window.addEventListener("DOMContentLoaded", () => {
  const page = {
    start: document.getElementById("start"),
    stop: document.getElementById("stop"),
    status: document.getElementById("status"),
    translation: document.getElementById("translation"),
  };
  const demo = new LiveDemo(page);
  page.start.addEventListener("click", () => demo.start());
  page.stop.addEventListener("click", () => demo.stop());
  window.liveDemo = demo;
});
