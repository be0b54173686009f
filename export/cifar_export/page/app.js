// Classify the images a user drops or picks, in the browser: decode, resize to the model's input, hand the
// uint8 RGB pixels to the self-contained ONNX file (it scales and normalises in its graph), show the top 5.
const ort = globalThis.ort;
ort.env.wasm.wasmPaths = new URL("ort/", document.baseURI).href;
ort.env.wasm.numThreads = 1; // a plain static server (python -m http.server) gives no cross-origin isolation

const results = [];  // every classified file: {name, probabilities} or {name, error}; the browser test reads it
globalThis.cifarResults = results;

const meta = await (await fetch("model.json")).json();
const [H, W] = meta.input_size;
const session = await ort.InferenceSession.create("model.onnx", { executionProviders: ["wasm"] });
document.getElementById("model").textContent =
  `${meta.arch}, ${meta.precision}, ${meta.classes.length} classes` +
  (meta.test_acc != null ? `, ${(100 * meta.test_acc).toFixed(2)}% on the CIFAR-10 test set` : "");
document.body.dataset.state = "ready";

// uint8 (H, W, 3) RGB of an image file, as the runtime makes it: EXIF orientation applied, transparency on
// white, resized to the model's input (the browser's own smooth resampling when the sizes differ).
export async function pixelsOf(blob) {
  const bitmap = await createImageBitmap(blob, { imageOrientation: "from-image" });
  const canvas = new OffscreenCanvas(W, H);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, W, H);
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(bitmap, 0, 0, W, H);
  bitmap.close();
  const rgba = ctx.getImageData(0, 0, W, H).data;
  const rgb = new Uint8Array(W * H * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
    rgb[j] = rgba[i]; rgb[j + 1] = rgba[i + 1]; rgb[j + 2] = rgba[i + 2];
  }
  return rgb;
}

export async function classify(blob) {
  const input = new ort.Tensor("uint8", await pixelsOf(blob), [1, H, W, 3]);
  const output = await session.run({ [session.inputNames[0]]: input });
  return Array.from(output.probabilities.data);
}

function show(file, probabilities, error) {
  const row = document.createElement("div");
  row.className = "result";
  const img = document.createElement("img");
  img.src = URL.createObjectURL(file);
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
  document.body.dataset.state = "busy";
  for (const file of files) {
    try {
      const probabilities = await classify(file);
      results.push({ name: file.name, probabilities });
      show(file, probabilities);
    } catch (e) {  // one unreadable file never stops the others
      results.push({ name: file.name, error: String(e.message || e) });
      show(file, null, String(e.message || e));
    }
  }
  document.body.dataset.state = "done";
}

const drop = document.getElementById("drop");
const picker = document.getElementById("files");
picker.addEventListener("change", () => classifyAll([...picker.files]));
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  classifyAll([...e.dataTransfer.files]);
});
