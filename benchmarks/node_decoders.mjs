// The README's Node recipe on every file named on stdin, once per JPEG decoder: sharp (libvips, libjpeg-turbo inside,
// as Pillow) and jpeg-js (pure JavaScript). Prints one JSON line per file: {path, sharp: [probs], jpegjs: [probs]}.
// usage: node node_decoders.mjs MODEL.raw.onnx [H W] < paths   (NODE_PATH: where onnxruntime-node, sharp, jpeg-js are)
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import readline from "node:readline";

const require = createRequire(process.env.NODE_PATH + "/");
const ort = require("onnxruntime-node");
const sharp = require("sharp");
const jpeg = require("jpeg-js");

const session = await ort.InferenceSession.create(process.argv[2]);
const [H, W] = [Number(process.argv[3] ?? 32), Number(process.argv[4] ?? 32)];  // the file's metadata: input_size

async function probabilities(rgb) {
  const { probabilities } = await session.run({ image: new ort.Tensor("uint8", rgb, [1, H, W, 3]) });
  return Array.from(probabilities.data);
}

for await (const path of readline.createInterface({ input: process.stdin })) {
  const viaSharp = await sharp(path).removeAlpha().resize(W, H, { fit: "fill" }).raw().toBuffer();
  const decoded = jpeg.decode(readFileSync(path), { useTArray: true });  // RGBA, already 32x32 for CIFAR files
  const viaJs = new Uint8Array(W * H * 3).map((_, i) => decoded.data[Math.floor(i / 3) * 4 + (i % 3)]);
  console.log(JSON.stringify({ path, sharp: await probabilities(viaSharp), jpegjs: await probabilities(viaJs) }));
}
