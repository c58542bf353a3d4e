// VoxServe playground: plain browser JavaScript, no build step.
// Speaks through POST /v1/tts/stream with timestamps (server-sent events: word events and WAV
// audio deltas played with Web Audio as they arrive), then shows the stored file in <audio>.
"use strict";

const $ = (id) => document.getElementById(id);
let voices = [];

function authHeaders(extra = {}) {
  const key = $("apiKey").value.trim();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

function status(text, target = "status") {
  $(target).textContent = text;
}

async function errorText(resp) {
  try {
    const body = await resp.json();
    return body.error ? `${resp.status} ${body.error.code}: ${body.error.message}` : `${resp.status}`;
  } catch {
    return `${resp.status} ${resp.statusText}`;
  }
}

// ------------------------------------------------------------------ voices

async function loadVoices(select) {
  const resp = await fetch("/v1/voices", { headers: authHeaders() });
  if (!resp.ok) {
    status(`Could not list voices: ${await errorText(resp)}`);
    return;
  }
  voices = (await resp.json()).voices;
  fillVoices(select);
}

function fillVoices(select) {
  const lang = $("language").value;
  const picker = $("voice");
  const keep = select ?? picker.value;
  picker.innerHTML = '<option value="">default for the language</option>';
  for (const v of voices) {
    const id = v.id ?? v.voice_id;
    const langs = v.languages ?? (v.language ? [v.language] : []);
    if (v.status && v.status !== "ready") continue;
    if (lang !== "auto" && langs.length && !langs.includes(lang)) continue;
    const option = new Option(v.name ? `${v.name} (${id})` : id, id);
    picker.add(option);
  }
  picker.value = [...picker.options].some((o) => o.value === keep) ? keep : "";
}

// ------------------------------------------------------------------ speaking

function pcmToFloat(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength - (bytes.byteLength % 2));
  const out = new Float32Array(view.byteLength / 2);
  for (let i = 0; i < out.length; i++) out[i] = view.getInt16(i * 2, true) / 32768;
  return out;
}

function base64Bytes(text) {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

class StreamPlayer {
  constructor(rate) {
    this.ctx = new AudioContext();
    this.rate = rate;
    this.start = null; // context time of the stream's first sample
    this.next = 0;
    this.headerLeft = 44; // the WAV stream's header (unknown length) comes first
    this.carry = new Uint8Array(0);
  }

  push(bytes) {
    if (this.headerLeft > 0) {
      const skip = Math.min(this.headerLeft, bytes.length);
      this.headerLeft -= skip;
      bytes = bytes.subarray(skip);
    }
    const joined = new Uint8Array(this.carry.length + bytes.length);
    joined.set(this.carry);
    joined.set(bytes, this.carry.length);
    const even = joined.length - (joined.length % 2);
    this.carry = joined.slice(even);
    const samples = pcmToFloat(joined.subarray(0, even));
    if (!samples.length) return false;
    const buffer = this.ctx.createBuffer(1, samples.length, this.rate);
    buffer.copyToChannel(samples, 0);
    const node = this.ctx.createBufferSource();
    node.buffer = buffer;
    node.connect(this.ctx.destination);
    if (this.start === null) {
      this.start = this.ctx.currentTime + 0.05;
      this.next = this.start;
    }
    node.start(this.next);
    this.next += buffer.duration;
    return true;
  }

  get position() {
    return this.start === null ? -1 : this.ctx.currentTime - this.start;
  }
}

function addWord(word) {
  const span = document.createElement("span");
  span.textContent = word.word;
  span.dataset.start = word.start_s;
  span.dataset.end = word.end_s;
  span.title = `${word.start_s.toFixed(2)}–${word.end_s.toFixed(2)} s`;
  $("words").append(span);
}

function highlight(player) {
  const t = player.position;
  for (const span of $("words").children) {
    const on = t >= +span.dataset.start && t < +span.dataset.end;
    span.classList.toggle("on", on);
    span.classList.toggle("said", t >= +span.dataset.end);
  }
  if (t < 0 || t < player.next - player.start + 0.2) requestAnimationFrame(() => highlight(player));
}

function requestBody(format) {
  const body = {
    text: $("text").value, language: $("language").value, speed: +$("speed").value,
    pitch: +$("pitch").value, format, timestamps: true,
  };
  if ($("voice").value) body.voice = $("voice").value;
  return body;
}

async function speak() {
  $("speak").disabled = true;
  $("words").innerHTML = "";
  $("timings").hidden = true;
  $("download").hidden = true;
  $("audio").removeAttribute("src");
  document.body.dataset.state = "speaking";
  status("Synthesizing…");
  const started = performance.now();
  try {
    const resp = await fetch("/v1/tts/stream", {
      method: "POST", headers: authHeaders({ "Content-Type": "application/json" }),
      body: JSON.stringify(requestBody("wav")),
    });
    if (!resp.ok) throw new Error(await errorText(resp));
    const player = new StreamPlayer(+resp.headers.get("X-Sample-Rate"));
    requestAnimationFrame(() => highlight(player));
    let firstAudio = null;
    let url = null;
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let pending = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      pending += value;
      let cut;
      while ((cut = pending.indexOf("\n\n")) >= 0) {
        const line = pending.slice(0, cut);
        pending = pending.slice(cut + 2);
        if (!line.startsWith("data: ")) continue;
        const event = JSON.parse(line.slice(6));
        if (event.type === "speech.word") addWord(event);
        else if (event.type === "speech.audio.delta" && player.push(base64Bytes(event.audio)) && firstAudio === null) {
          firstAudio = performance.now() - started;
          status("Playing while it streams…");
        } else if (event.type === "speech.audio.done") url = event.audio_url;
      }
    }
    const total = performance.now() - started;
    if ($("format").value !== "wav") url = await storedFile($("format").value);
    showResult(url, firstAudio, total, player.next - (player.start ?? 0));
  } catch (err) {
    status(`Error: ${err.message}`);
    document.body.dataset.state = "error";
  } finally {
    $("speak").disabled = false;
  }
}

async function storedFile(format) {
  // The stream was WAV (for live playback); the chosen format comes from /v1/tts.
  const resp = await fetch("/v1/tts", {
    method: "POST", headers: authHeaders({ "Content-Type": "application/json" }),
    body: JSON.stringify(requestBody(format)),
  });
  if (!resp.ok) throw new Error(await errorText(resp));
  return (await resp.json()).audio_url;
}

function showResult(url, firstAudio, total, seconds) {
  $("audio").src = url;
  $("download").href = url;
  $("download").hidden = false;
  $("tFirst").textContent = firstAudio === null ? "–" : `${firstAudio.toFixed(0)} ms`;
  $("tDone").textContent = `${total.toFixed(0)} ms`;
  $("tLength").textContent = `${seconds.toFixed(2)} s`;
  $("timings").hidden = false;
  status(`Done: ${$("words").children.length} words.`);
  document.body.dataset.state = "done";
}

// ------------------------------------------------------------------ registering a voice

let recorded = null;

async function record() {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const recorder = new MediaRecorder(stream);
  const parts = [];
  recorder.ondataavailable = (e) => parts.push(e.data);
  recorder.onstop = () => {
    recorded = new Blob(parts, { type: recorder.mimeType });
    stream.getTracks().forEach((t) => t.stop());
    status(`Recorded ${(recorded.size / 1024).toFixed(0)} KiB.`, "jobStatus");
  };
  recorder.start();
  status("Recording for 5 s…", "jobStatus");
  setTimeout(() => recorder.stop(), 5000);
}

async function register() {
  const clip = $("clip").files[0] ?? recorded;
  if (!clip) {
    status("Choose a clip or record one first.", "jobStatus");
    return;
  }
  const form = new FormData();
  form.append("name", $("voiceName").value);
  form.append("audio", clip, clip.name ?? "recording.webm");
  const resp = await fetch("/v1/voices", { method: "POST", headers: authHeaders(), body: form });
  if (resp.status !== 202) {
    status(`Refused: ${await errorText(resp)}`, "jobStatus");
    return;
  }
  const { voice_id: id } = await resp.json();
  const bar = $("jobProgress");
  bar.hidden = false;
  bar.removeAttribute("value"); // indeterminate while the job runs
  const started = performance.now();
  for (;;) {
    const poll = await fetch(`/v1/voices/${id}`, { headers: authHeaders() });
    const voice = await poll.json();
    const waited = ((performance.now() - started) / 1000).toFixed(1);
    status(`${id}: ${voice.status} (${waited} s)`, "jobStatus");
    if (voice.status === "ready" || voice.status === "failed") {
      bar.value = 1;
      if (voice.status === "failed") status(`${id} failed: ${voice.reason ?? "unknown reason"}`, "jobStatus");
      else {
        await loadVoices(id);
        status(`${id}: ready in ${waited} s, selected above`, "jobStatus");
      }
      document.body.dataset.job = voice.status;
      return;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

// ------------------------------------------------------------------ wiring

function init() {
  $("apiKey").value = localStorage.getItem("voxserve.apiKey") ?? "";
  $("apiKey").addEventListener("change", () => {
    localStorage.setItem("voxserve.apiKey", $("apiKey").value.trim());
    loadVoices();
  });
  $("speed").addEventListener("input", () => ($("speedOut").textContent = (+$("speed").value).toFixed(2)));
  $("pitch").addEventListener("input", () => ($("pitchOut").textContent = `${$("pitch").value} st`));
  $("language").addEventListener("change", () => fillVoices());
  $("speak").addEventListener("click", speak);
  $("record").addEventListener("click", () => record().catch((e) => status(`No microphone: ${e.message}`, "jobStatus")));
  $("register").addEventListener("click", () => register().catch((e) => status(`Error: ${e.message}`, "jobStatus")));
  loadVoices();
}

init();
