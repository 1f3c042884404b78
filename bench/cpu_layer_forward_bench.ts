/**
 * The CPU engine's decoder-layer forward at a calibration batch's shape:
 * `deno run -A bench/cpu_layer_forward_bench.ts [--model DIR] [--reps 5] [--sequences 16] [--seq-len 256]`.
 *
 * Loads a model or a compressed checkpoint (e.g. `oneshot`'s QuIP output,
 * whose online transforms the layers apply) on the CPU engine (default: a
 * seeded synthetic Llama of the 3M shape the recipe timings use: hidden 256,
 * 4 layers, intermediate 768, 8 heads of 32, 4 key/value heads, vocab 512,
 * written to a temporary folder), embeds `--sequences` sequences of `--seq-len` tokens, warms up
 * with one pass through every layer, then times `--reps` passes (each layer
 * once, as a recipe's propagate phase runs one chunk) and prints, per layer
 * and chunk: the median and fastest wall time, the CPU time of the whole
 * process (user + system over all threads, from /proc/self/stat), and the
 * time inside each engine op (wall, measured around the op). The output's
 * first bytes of SHA-256 are printed too, so two builds can be checked for
 * the same bits. Then one JSON line.
 *
 * Wall times on a shared machine vary with its load; the CPU time per layer
 * varies much less, and is the figure to compare.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { CpuEngine } from "../src/engine/cpu_engine.ts";
import { CompressedCheckpoint } from "../src/compress/compressed_checkpoint.ts";
import { DecoderModel } from "../src/model/decoder_model.ts";
import { writeSyntheticModel } from "../src/model/synthetic_model.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string" },
    reps: { type: "string", default: "5" },
    sequences: { type: "string", default: "16" },
    "seq-len": { type: "string", default: "256" },
  },
  strict: true,
});
const reps = Number(values.reps);
const sequences = Number(values.sequences);
const seqLen = Number(values["seq-len"]);

/** Seconds of CPU time this process has used, all threads (Linux). */
function cpuSeconds(): number {
  const fields = Deno.readTextFileSync("/proc/self/stat").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

// Every op of the engine, timed around the call.
const opMs = new Map<string, { calls: number; ms: number }>();
const proto = CpuEngine.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
for (const name of Object.getOwnPropertyNames(CpuEngine.prototype)) {
  const d = Object.getOwnPropertyDescriptor(CpuEngine.prototype, name)!;
  if (name === "constructor" || typeof d.value !== "function") continue;
  const f = d.value as (...a: unknown[]) => unknown;
  proto[name] = function (this: unknown, ...args: unknown[]) {
    const t = performance.now();
    try {
      return f.apply(this, args);
    } finally {
      const e = opMs.get(name) ?? { calls: 0, ms: 0 };
      e.calls++;
      e.ms += performance.now() - t;
      opMs.set(name, e);
    }
  };
}

const synthetic = values.model ? null : await writeSyntheticModel({
  modelType: "llama",
  hidden: 256,
  layers: 4,
  heads: 8,
  kvHeads: 4,
  intermediate: 768,
  vocab: 512,
  tied: false,
  maxPositions: 512,
  seed: 3,
});
try {
  // Compressed checkpoints (a QuIP one applies its online transforms) are decompressed on the fly.
  const hf = await CompressedCheckpoint.open(values.model ?? synthetic!.dir);
  const engine = new CpuEngine();
  const model = await DecoderModel.load(hf, engine);
  const layers = model.numLayers;
  const vocab = model.config.vocabSize;
  const ids = Int32Array.from({ length: sequences * seqLen }, (_, i) => (i * 7919 + 1) % vocab);
  const input = await model.embed(ids, sequences, seqLen);
  const pass = async () => {
    let h = input;
    for (let k = 0; k < layers; k++) {
      const next = await model.runLayer(k, h);
      if (h !== input) h.destroy();
      h = next;
    }
    const [out] = await engine.read([h]);
    h.destroy();
    return out as Float32Array<ArrayBuffer>;
  };
  const first = await pass();
  opMs.clear();
  const times: number[] = [];
  const cpu0 = cpuSeconds();
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    await pass();
    times.push(performance.now() - t);
  }
  const cpuMs = (cpuSeconds() - cpu0) * 1000 / reps / layers;
  times.sort((a, b) => a - b);
  const median = times[times.length >> 1] / layers;
  const fastest = times[0] / layers;
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", first));
  const sha = Array.from(digest.subarray(0, 4), (b) => b.toString(16).padStart(2, "0")).join("");
  console.log(
    `${model.config.hiddenSize} hidden, ${sequences} × ${seqLen} tokens, ${engine.description}`,
  );
  console.log(
    `per layer: median ${median.toFixed(1)} ms, fastest ${fastest.toFixed(1)} ms, ` +
      `CPU ${cpuMs.toFixed(1)} ms; output sha256 ${sha}…`,
  );
  const ops = [...opMs].sort((a, b) => b[1].ms - a[1].ms).map(([op, { calls, ms }]) => ({
    op,
    callsPerLayer: calls / reps / layers,
    msPerLayer: ms / reps / layers,
  }));
  console.log("| op | calls / layer | ms / layer |\n|---|---|---|");
  for (const o of ops) {
    console.log(`| ${o.op} | ${o.callsPerLayer} | ${o.msPerLayer.toFixed(2)} |`);
  }
  console.log(JSON.stringify({
    bench: "cpu_layer_forward",
    sequences,
    seqLen,
    msPerLayerMedian: median,
    msPerLayerFastest: fastest,
    cpuMsPerLayer: cpuMs,
    sha256Prefix: sha,
    ops,
  }));
  model.close();
  hf.close();
} finally {
  await synthetic?.remove();
}
