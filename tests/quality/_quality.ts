/**
 * Shared pieces of the quality tests: the project's perplexity convention
 * (40 windows × 256 of tinystories_eval.txt) over any weight source, and a
 * source that overrides some tensors of another (baselines such as
 * magnitude pruning).
 *
 * @module
 */

import { testEngine } from "../_engines.ts";
import { perplexity } from "../../src/data/perplexity.ts";
import { DecoderModel } from "../../src/model/decoder_model.ts";
import type { WeightSource } from "../../src/model/weight_source.ts";
import type { GraphEvent, ModuleMetricEvent } from "../../src/graph/events.ts";

export {
  CALIB,
  evaluationWindows,
  STORIES,
  weightOnlyPerplexity,
  withTempDir,
} from "../graph/_helpers.ts";

/**
 * AWQ W4A16 asymmetric channel-wise (lm_head ignored), with extra AWQModifier
 * fields (YAML lines at its indentation, e.g. `duo_scaling: both`).
 */
export function awqChannelAsym(...extra: string[]): string {
  return `quant_stage:
  quant_modifiers:
    AWQModifier:
      ignore: [lm_head]
${extra.map((l) => `      ${l}\n`).join("")}      config_groups:
        group_0:
          weights: {num_bits: 4, type: int, symmetric: false, strategy: channel}
          targets: [Linear]
`;
}

/** AWQ's per-parent metrics: output MSE after smoothing and with round-to-nearest. */
export function awqParentMetrics(events: GraphEvent[]): ModuleMetricEvent[] {
  return events.filter((e): e is ModuleMetricEvent =>
    e.type === "module_metric" && e.errorKind === "parent_output_mse"
  );
}

/** SparseGPT 2:4 at 50% on every decoder layer, as a sparsity-only recipe stage. */
export const SPARSE_24 = `sparsity_stage:
  sparsity_modifiers:
    SparseGPTModifier:
      sparsity: 0.5
      mask_structure: "2:4"
      targets: ['re:model.layers.\\d*$']
`;

/**
 * A weight source with some tensors replaced.
 *
 * @param base the source
 * @param overrides tensor name → float32 values
 * @returns the overlaid source
 */
export function overlaid(
  base: WeightSource,
  overrides: ReadonlyMap<string, Float32Array>,
): WeightSource {
  return {
    config: base.config,
    has: (n) => overrides.has(n) || base.has(n),
    readF32: (n) => {
      const o = overrides.get(n);
      return o !== undefined ? Promise.resolve(o) : base.readF32(n);
    },
  };
}

/**
 * Perplexity of a weight source on the evaluation windows.
 *
 * @param source the weights
 * @param windows evaluation windows
 * @returns the perplexity
 */
export async function sourcePerplexity(
  source: WeightSource,
  windows: Int32Array[],
): Promise<number> {
  const model = await DecoderModel.load(source, await testEngine("webgpu"));
  try {
    return (await perplexity(model, windows)).ppl;
  } finally {
    model.close();
  }
}

/**
 * Magnitude pruning N:M: keeps the M − N largest |w| of every M consecutive values of a row, no update.
 *
 * @param w the weight, row-major (length a multiple of m)
 * @param n values pruned per run
 * @param m run length
 * @returns the pruned copy
 */
export function magnitudePruneNM(w: Float32Array, n: number, m: number): Float32Array {
  const out = Float32Array.from(w);
  for (let i = 0; i < w.length; i += m) {
    const idx = Array.from({ length: m }, (_, j) => i + j).sort((a, b) =>
      Math.abs(w[a]) - Math.abs(w[b])
    );
    for (let j = 0; j < n; j++) out[idx[j]] = 0;
  }
  return out;
}
