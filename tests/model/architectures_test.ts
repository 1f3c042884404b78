/**
 * Every supported architecture and option on seeded synthetic checkpoints:
 * the forward on every engine (WebGPU, CPU) against the CPU reference (which
 * golden_test.ts checks against transformers), two sequences per batch.
 */

import { HfModel } from "../../src/io/hf_model.ts";
import { DecoderModel } from "../../src/model/decoder_model.ts";
import { referenceForward } from "../../src/model/reference_forward.ts";
import { seededRandom } from "../../src/model/seeded_random.ts";
import { assertClose, assertEquals } from "./_assert.ts";
import { ENGINE_KINDS, testEngine } from "../_engines.ts";
import { type SyntheticSpec, writeSyntheticModel } from "../../src/model/synthetic_model.ts";

const BASE: SyntheticSpec = {
  modelType: "llama",
  hidden: 256,
  layers: 4,
  heads: 8,
  kvHeads: 2,
  intermediate: 688,
  vocab: 1000,
  tied: true,
  maxPositions: 64,
};
const SEQUENCES = 2;
const SEQ_LEN = 24;

async function checkAgainstReference(spec: SyntheticSpec, seqLen = SEQ_LEN): Promise<void> {
  const written = await writeSyntheticModel(spec);
  const hf = await HfModel.open(written.dir);
  try {
    const random = seededRandom(spec.seed ?? 5);
    const ids = Int32Array.from(
      { length: SEQUENCES * seqLen },
      () => Math.floor(random() * spec.vocab),
    );
    const expected = await referenceForward(hf, ids, { batch: SEQUENCES });
    for (const kind of ENGINE_KINDS) {
      const model = await DecoderModel.load(hf, await testEngine(kind));
      try {
        const got = await model.forward(ids, SEQUENCES);
        assertClose(got, expected.logits, 1e-4, `${kind}: ${JSON.stringify(spec)}: logits`);
      } finally {
        model.close();
      }
    }
    // The logits must depend on the input (a kernel that ignores it would pass the above only by luck).
    const std = Math.sqrt(expected.logits.reduce((a, x) => a + x * x, 0) / expected.logits.length);
    assertEquals(std > 0.1, true, "synthetic logits are not degenerate");
  } finally {
    hf.close();
    await written.remove();
  }
}

Deno.test("llama, default RoPE, GQA, tied embeddings", () => checkAgainstReference(BASE));

Deno.test("llama, linear RoPE scaling", () =>
  checkAgainstReference({ ...BASE, ropeScaling: { rope_type: "linear", factor: 4 } }));

Deno.test("llama, dynamic NTK RoPE scaling beyond max_position_embeddings", () =>
  checkAgainstReference({
    ...BASE,
    maxPositions: 16, // < SEQ_LEN, so the base grows
    ropeScaling: { rope_type: "dynamic", factor: 2 },
  }));

Deno.test("llama, llama3 RoPE scaling (all three frequency bands)", () =>
  checkAgainstReference({
    ...BASE,
    ropeScaling: {
      rope_type: "llama3",
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 32,
    },
  }));

Deno.test("llama, untied lm_head, MHA, attention and MLP biases", () =>
  checkAgainstReference({
    ...BASE,
    tied: false,
    kvHeads: 8,
    attentionBias: true,
    mlpBias: true,
    seed: 11,
  }));

Deno.test("mistral, sliding window shorter than the sequence", () =>
  checkAgainstReference({ ...BASE, modelType: "mistral", slidingWindow: 5, tied: false }));

Deno.test("qwen2, q/k/v biases", () =>
  checkAgainstReference({ ...BASE, modelType: "qwen2", ropeTheta: 1000000, tied: false }));

Deno.test("qwen3, per-head q_norm/k_norm, head_dim not hidden/heads", () =>
  checkAgainstReference({ ...BASE, modelType: "qwen3", headDim: 48, kvHeads: 1, seed: 3 }));

Deno.test("qwen2 with use_sliding_window: full attention below max_window_layers, window above", () =>
  checkAgainstReference({ ...BASE, modelType: "qwen2", slidingWindow: 7, maxWindowLayers: 2 }));
