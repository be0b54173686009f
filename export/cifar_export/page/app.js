// Classify the images a user drops or picks, in the browser: decode, resize to the model's input, hand the
// uint8 RGB pixels to the self-contained ONNX file (it scales and normalises in its graph), show the top 5.
const ort = globalThis.ort;
ort.env.wasm.wasmPaths = new URL("ort/", document.baseURI).href;
ort.env.wasm.numThreads = 1; // a plain static server (python -m http.server) gives no cross-origin isolation

// every classified file: {name, probabilities, abstained} or {name, error}; the browser test reads it
const results = [];
globalThis.cifarResults = results;
const status = document.getElementById("model");
const drop = document.getElementById("drop");
const picker = document.getElementById("files");
const threshold = document.getElementById("min-confidence");

// Listen before loading: a file dropped anywhere while the model loads must not make the browser open it.
let modelReady;
let queue = new Promise((resolve) => { modelReady = resolve; });  // batches wait for the model, then run in order
let pending = 0;
function enqueue(files) {
  pending += 1;
  document.body.dataset.state = "busy";
  queue = queue.then(() => classifyAll(files)).finally(() => {
    pending -= 1;
    if (pending === 0) document.body.dataset.state = "done";
  });
}
document.addEventListener("dragover", (e) => e.preventDefault());
document.addEventListener("drop", (e) => e.preventDefault());
picker.addEventListener("change", () => {
  const files = [...picker.files];
  picker.value = "";  // picking the same file again fires "change" again
  enqueue(files);
});
drop.addEventListener("dragover", () => drop.classList.add("over"));
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  drop.classList.remove("over");
  enqueue([...e.dataTransfer.files]);
});

let meta, session, H, W;
try {
  const response = await fetch("model.json");
  if (!response.ok) throw new Error(`model.json: HTTP ${response.status}`);
  meta = await response.json();
  [H, W] = meta.input_size;
  session = await ort.InferenceSession.create("model.onnx", { executionProviders: ["wasm"] });
} catch (e) {  // e.g. opened as file:// (serve the folder over HTTP) or a model this onnxruntime-web cannot run
  status.textContent = `The model could not be loaded: ${e.message || e}`;
  status.className = "error";
  document.body.dataset.state = "error";
  throw e;
}
if (meta.dataset) document.getElementById("title").textContent = `${meta.dataset} classifier`;
status.textContent =
  `${meta.arch}, ${meta.precision}, ${meta.classes.length} classes` +
  (meta.test_acc != null ? `, ${(100 * meta.test_acc).toFixed(2)}% on its test set` : "") +
  (meta.temperature != null ? "; calibrated confidences" : "; confidences not calibrated");
// The minimum confidence: ?min-confidence=P in the address, else the threshold the model recommends, else 0.
const asked = new URLSearchParams(location.search).get("min-confidence");
threshold.value = String(asked ?? meta.recommended_min_confidence ?? 0);
document.body.dataset.state = "ready";
modelReady();

// uint8 (H, W, 3) RGB of an image file, as the runtime makes it: EXIF orientation applied, transparency on
// white, then Pillow's bilinear resize to the model's input (below), so the page computes what cifar-infer
// --exact computes for the same decoded pixels.
export async function pixelsOf(blob) {
  // colorSpaceConversion "none": the pixels as stored, as Pillow reads them (no ICC profile applied)
  const bitmap = await createImageBitmap(blob, { imageOrientation: "from-image", colorSpaceConversion: "none" });
  const [w, h] = [bitmap.width, bitmap.height];
  const canvas = new OffscreenCanvas(w, h);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, w, h);
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const rgba = ctx.getImageData(0, 0, w, h).data;
  const rgb = new Uint8Array(w * h * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
    rgb[j] = rgba[i]; rgb[j + 1] = rgba[i + 1]; rgb[j + 2] = rgba[i + 2];
  }
  return w === W && h === H ? rgb : resizeBilinear(rgb, w, h, W, H);
}

// Pillow's 8-bit bilinear resampling (libImaging/Resample.c), integer for integer: a triangle filter widened by
// the scale when shrinking (antialiasing), coefficients in fixed point with 22 fraction bits, the horizontal
// pass first, rounded to 8 bits between the passes.
const PRECISION_BITS = 22;

function coefficients(inSize, outSize) {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale;  // bilinear's support is 1 pixel
  const taps = [];
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const hi = Math.min(Math.trunc(center + support + 0.5), inSize);
    const weights = [];
    let total = 0;
    for (let x = lo; x < hi; x++) {
      const w = Math.max(1 - Math.abs((x - center + 0.5) / filterScale), 0);
      weights.push(w);
      total += w;
    }
    const fixed = weights.map((w) => {
      const k = total ? w / total : w;
      return k < 0 ? Math.trunc(-0.5 + k * (1 << PRECISION_BITS)) : Math.trunc(0.5 + k * (1 << PRECISION_BITS));
    });
    taps.push({ lo, fixed });
  }
  return taps;
}

function clip8(sum) {
  return Math.min(Math.max(Math.floor(sum / (1 << PRECISION_BITS)), 0), 255);
}

// rgb: uint8 (h, w, 3) -> uint8 (H, W, 3)
export function resizeBilinear(rgb, w, h, W, H) {
  const horizontal = coefficients(w, W);
  const mid = new Uint8Array(h * W * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < W; x++) {
      const { lo, fixed } = horizontal[x];
      for (let c = 0; c < 3; c++) {
        let sum = 1 << (PRECISION_BITS - 1);
        for (let k = 0; k < fixed.length; k++) sum += rgb[(y * w + lo + k) * 3 + c] * fixed[k];
        mid[(y * W + x) * 3 + c] = clip8(sum);
      }
    }
  }
  const vertical = coefficients(h, H);
  const out = new Uint8Array(H * W * 3);
  for (let y = 0; y < H; y++) {
    const { lo, fixed } = vertical[y];
    for (let x = 0; x < W; x++) {
      for (let c = 0; c < 3; c++) {
        let sum = 1 << (PRECISION_BITS - 1);
        for (let k = 0; k < fixed.length; k++) sum += mid[((lo + k) * W + x) * 3 + c] * fixed[k];
        out[(y * W + x) * 3 + c] = clip8(sum);
      }
    }
  }
  return out;
}

export async function classify(blob) {
  const input = new ort.Tensor("uint8", await pixelsOf(blob), [1, H, W, 3]);
  const output = await session.run({ [session.inputNames[0]]: input });
  return Array.from(output.probabilities.data);
}

function show(file, probabilities, error, abstained) {
  const row = document.createElement("div");
  row.className = "result";
  const img = document.createElement("img");
  img.src = URL.createObjectURL(file);
  img.onload = img.onerror = () => URL.revokeObjectURL(img.src);
  img.alt = "";
  const bars = document.createElement("div");
  bars.className = "bars";
  const name = document.createElement("div");
  name.className = "name";
  name.textContent = file.name;  // textContent: a file name is never markup
  bars.append(name);
  if (error) {
    const line = document.createElement("div");
    line.className = "error";
    line.textContent = `cannot classify: ${error}`;
    bars.append(line);
  } else {
    if (abstained) {
      const line = document.createElement("div");
      line.className = "abstained";
      line.textContent = `not sure: below the minimum confidence ${threshold.value}`;
      bars.append(line);
    }
    const top5 = probabilities.map((p, i) => [p, i]).sort((a, b) => b[0] - a[0]).slice(0, 5);
    for (const [p, i] of top5) {
      const bar = document.createElement("div");
      bar.className = "bar";
      const label = document.createElement("span");
      label.textContent = meta.classes[i];
      const track = document.createElement("div");
      const fill = document.createElement("div");
      fill.className = "fill";
      fill.style.width = `${(100 * p).toFixed(1)}%`;
      track.append(fill);
      const pct = document.createElement("span");
      pct.className = "pct";
      pct.textContent = `${(100 * p).toFixed(1)}%`;
      bar.append(label, track, pct);
      bars.append(bar);
    }
  }
  row.append(img, bars);
  document.getElementById("results").prepend(row);
}

async function classifyAll(files) {
  for (const file of files) {
    try {
      const probabilities = await classify(file);
      // cifar-infer's rule: abstained when the top probability is below the minimum confidence
      const abstained = Math.max(...probabilities) < Number(threshold.value);
      results.push({ name: file.name, probabilities, abstained });
      show(file, probabilities, null, abstained);
    } catch (e) {  // one unreadable file never stops the others
      results.push({ name: file.name, error: String(e.message || e) });
      show(file, null, String(e.message || e));
    }
  }
}
