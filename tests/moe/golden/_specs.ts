/**
 * The seeded synthetic MoE checkpoints whose logits transformers computed
 * (tests/moe/golden/make_goldens.py) and llmc's forward must reproduce
 * (tests/moe/moe_golden_test.ts): 2 layers, 4–8 experts, top-2, a small
 * vocabulary so the golden files stay a few KB.
 *
 * @module
 */

import { seededRandom } from "../../../src/model/seeded_random.ts";
import type { SyntheticSpec } from "../../../src/model/synthetic_model.ts";

const BASE = {
  hidden: 64,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  intermediate: 96,
  vocab: 64,
  tied: false,
  maxPositions: 64,
} as const;

/** Golden case name → the synthetic checkpoint it was computed on. */
export const GOLDEN_SPECS: Record<string, SyntheticSpec> = {
  mixtral: { ...BASE, seed: 101, modelType: "mixtral", moe: { experts: 4, topK: 2 } },
  // qwen2_moe's default: the top-2 weights are not renormalized; shared expert + sigmoid gate.
  qwen2_moe: {
    ...BASE,
    seed: 102,
    modelType: "qwen2_moe",
    moe: {
      experts: 6,
      topK: 2,
      expertIntermediate: 32,
      sharedIntermediate: 80,
      normTopkProb: false,
    },
  },
  // decoder_sparse_step 2: layer 0 is a dense MLP of intermediate_size, layer 1 sparse.
  qwen2_moe_sparse_step: {
    ...BASE,
    seed: 103,
    modelType: "qwen2_moe",
    moe: {
      experts: 4,
      topK: 2,
      expertIntermediate: 32,
      sharedIntermediate: 48,
      normTopkProb: true,
      decoderSparseStep: 2,
    },
  },
  qwen3_moe: {
    ...BASE,
    seed: 104,
    modelType: "qwen3_moe",
    moe: { experts: 8, topK: 2, expertIntermediate: 48, normTopkProb: true },
  },
  // mlp_only_layers [0]: layer 0 dense; top-2 weights not renormalized.
  qwen3_moe_mlp_only: {
    ...BASE,
    seed: 105,
    modelType: "qwen3_moe",
    moe: { experts: 8, topK: 2, expertIntermediate: 48, normTopkProb: false, mlpOnlyLayers: [0] },
  },
};

/** Sequences per forward. */
export const GOLDEN_BATCH = 2;
/** Tokens per sequence. */
export const GOLDEN_SEQ = 12;

/**
 * The token ids every golden forward runs on, [GOLDEN_BATCH · GOLDEN_SEQ].
 *
 * @param vocab the model's vocabulary size
 * @returns the ids, seeded so they are the same on every run
 */
export function goldenIds(vocab: number): Int32Array {
  const random = seededRandom(7);
  return Int32Array.from({ length: GOLDEN_BATCH * GOLDEN_SEQ }, () => Math.floor(random() * vocab));
}
