/**
 * Time to rotate one decoder layer's tensors with SpinQuant's fused R1 + R2
 * as `RotatedWeightSource` reads them, through `Engine.blockTransform` (the
 * float64 f64x2 WebAssembly kernels), per engine and per transform type: a
 * Llama-2-7B-shaped layer (hidden 4096, 32 heads of 128, MLP 11008) of
 * seeded random float32 weights held in memory (one layer's weights, nothing
 * more), so no file I/O is timed. Prints a table per run and the process's
 * peak RSS (VmHWM); garbage is collected between tensors (untimed).
 *
 * `random-matrix` (dense O(n²) per row; about 1.7·10¹² flops per 4096-wide
 * layer) runs on q_proj only unless `--dense-layer`. `--quick`: hidden 1024,
 * MLP 2752. `--engines cpu,webgpu` (default cpu): both engines run the same
 * host kernels (WGSL has no float64), so WebGPU only adds its creation.
 *
 * `--types` picks transform types (default all three). Building the seeded
 * 4096 × 4096 random-matrix (a float64 QR in TypeScript) takes minutes; it
 * is not timed.
 *
 * `deno run -A bench/rotation_bench.ts [--quick] [--dense-layer] [--engines cpu,webgpu] [--types hadamard,…]`
 *
 * @module
 */

import { parseArgs } from "node:util";
import { collectGarbage } from "../src/_gc.ts";
import { CpuEngine } from "../src/engine/cpu_engine.ts";
import type { Engine } from "../src/engine/engine.ts";
import { WebGpuEngine } from "../src/engine/webgpu_engine.ts";
import { getGpu } from "../src/gpu/device.ts";
import { parseModelConfig } from "../src/io/model_config.ts";
import { layerTensorShapes } from "../src/model/layer_tensors.ts";
import type { WeightSource } from "../src/model/weight_source.ts";
import { seededRandom } from "../src/model/seeded_random.ts";
import { RotatedWeightSource } from "../src/transform/rotated_source.ts";
import {
  blockTransformOf,
  buildTransform,
  type TransformType,
} from "../src/transform/transform_matrix.ts";

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    "dense-layer": { type: "boolean", default: false },
    engines: { type: "string", default: "cpu" },
    types: { type: "string", default: "hadamard,random-hadamard,random-matrix" },
  },
});
const hidden = values.quick ? 1024 : 4096;
const intermediate = values.quick ? 2752 : 11008;
const config = parseModelConfig({
  model_type: "llama",
  hidden_size: hidden,
  intermediate_size: intermediate,
  num_hidden_layers: 1,
  num_attention_heads: hidden / 128,
  num_key_value_heads: hidden / 128,
  head_dim: 128,
  vocab_size: 32000,
  rms_norm_eps: 1e-5,
  max_position_embeddings: 4096,
  tie_word_embeddings: false,
}, "bench config.json");

const shapes = layerTensorShapes(config, 0);
const random = seededRandom(1);
const tensors = new Map<string, Float32Array>();
for (const [name, shape] of shapes) {
  const n = shape.reduce((a, b) => a * b, 1);
  tensors.set(name, Float32Array.from({ length: n }, () => random() - 0.5));
}
const source: WeightSource = {
  config,
  has: (name) => tensors.has(name),
  readF32: (name) => Promise.resolve(tensors.get(name)!),
};

/** Peak resident set of this process so far, MiB (Linux VmHWM). */
function peakRssMiB(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync("/proc/self/status"));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function engineOf(kind: string): Promise<Engine> {
  if (kind === "cpu") return new CpuEngine();
  if (kind === "webgpu") return await WebGpuEngine.create(await getGpu());
  throw new Error(`--engines: ${kind} is not cpu or webgpu`);
}

const results = [];
for (const kind of values.engines.split(",")) {
  const engine = await engineOf(kind);
  for (const type of values.types.split(",") as TransformType[]) {
    const rotated = new RotatedWeightSource(source, {
      r1: blockTransformOf(buildTransform(type, hidden, 1)),
      r2: blockTransformOf(buildTransform(type, 128, 2)),
    }, engine);
    const names = type === "random-matrix" && !values["dense-layer"]
      ? ["model.layers.0.self_attn.q_proj.weight"]
      : [...shapes.keys()];
    let wall = 0;
    let cpu = 0;
    console.log(`\n| ${kind}: R1+R2 ${type} (hidden ${hidden}, MLP ${intermediate}) | shape | s |`);
    console.log("|---|---|---|");
    for (const name of names) {
      // Untimed: the previous tensor's float64 copy is garbage; collected, the peak RSS shows
      // what a rotation holds (the layer plus one tensor), not how lazily V8 collects.
      collectGarbage();
      const c0 = cpuSeconds();
      const t0 = performance.now();
      await rotated.readF32(name);
      const s = (performance.now() - t0) / 1000;
      cpu += cpuSeconds() - c0;
      wall += s;
      console.log(`| ${name} | ${shapes.get(name)!.join("×")} | ${s.toFixed(3)} |`);
    }
    const what = names.length === shapes.size ? "whole layer" : "q_proj only";
    console.log(`| ${what} | | ${wall.toFixed(3)} (CPU ${cpu.toFixed(3)}) |`);
    results.push({ engine: kind, type, scope: what, seconds: wall, cpuSeconds: cpu });
  }
  engine.close();
}
console.log(`peak RSS ${peakRssMiB().toFixed(0)} MiB`);
console.log(
  JSON.stringify({ bench: "rotation", hidden, intermediate, results, peakRssMiB: peakRssMiB() }),
);

/** User + system CPU seconds of this process (Linux /proc/self/stat, clock ticks of 1/100 s). */
function cpuSeconds(): number {
  const fields = Deno.readTextFileSync("/proc/self/stat").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
