/**
 * Time to rotate one decoder layer's tensors with SpinQuant's fused R1 + R2
 * (float64, through the Hadamard factors) as `RotatedWeightSource` reads
 * them: a Llama-2-7B-shaped layer (hidden 4096, 32 heads of 128, MLP 11008)
 * of seeded random float32 weights held in memory, so no file I/O is timed.
 * `--quick`: hidden 1024, MLP 2752, and also the dense fallback
 * (`random-matrix`) on k_proj for comparison.
 *
 * `deno run -A bench/rotation_bench.ts [--quick]`
 *
 * @module
 */

import { parseArgs } from "node:util";
import { parseModelConfig } from "../src/io/model_config.ts";
import { layerTensorShapes } from "../src/model/layer_tensors.ts";
import type { WeightSource } from "../src/model/weight_source.ts";
import { seededRandom } from "../src/model/seeded_random.ts";
import { RotatedWeightSource } from "../src/transform/rotated_source.ts";
import { blockTransformOf, buildTransform } from "../src/transform/transform_matrix.ts";

const { values } = parseArgs({ options: { quick: { type: "boolean", default: false } } });
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

function rotated(type: "hadamard" | "random-matrix"): RotatedWeightSource {
  return new RotatedWeightSource(source, {
    r1: blockTransformOf(buildTransform(type, hidden, 1)),
    r2: blockTransformOf(buildTransform(type, 128, 2)),
  });
}

const fast = rotated("hadamard");
let total = 0;
console.log(`| tensor (hidden ${hidden}, MLP ${intermediate}) | shape | R1+R2 hadamard, s |`);
console.log("|---|---|---|");
for (const [name, shape] of shapes) {
  const t0 = performance.now();
  await fast.readF32(name);
  const s = (performance.now() - t0) / 1000;
  total += s;
  console.log(`| ${name} | ${shape.join("×")} | ${s.toFixed(3)} |`);
}
console.log(`| whole layer | | ${total.toFixed(3)} |`);
if (hidden <= 1024) {
  // The dense product is O(n²) per row: minutes per tensor at hidden 4096, so only with --quick.
  const dense = rotated("random-matrix");
  const k = "model.layers.0.self_attn.k_proj.weight";
  const t0 = performance.now();
  await dense.readF32(k);
  console.log(
    `dense random-matrix R1 + R2 on ${k} (${shapes.get(k)!.join("×")}): ` +
      `${((performance.now() - t0) / 1000).toFixed(3)} s`,
  );
}
console.log(JSON.stringify({ bench: "rotation", hidden, intermediate, layerSeconds: total }));
