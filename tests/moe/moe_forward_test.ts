/**
 * Mixture-of-experts forwards (mixtral, qwen2_moe, qwen3_moe) on seeded
 * synthetic checkpoints with transformers' tensor names: the forward on
 * each engine, WebGPU and CPU (every expert on every token, unrouted ones
 * weighted 0) against the float64
 * reference written from transformers' sparse blocks (only the routed
 * experts per token, double-precision router), to 1e-4 of the largest logit.
 * reference_moe.ts follows transformers' code line by line; golden logits
 * from transformers itself are checked in moe_golden_test.ts.
 */

import type { EngineKind } from "../../src/engine/engine.ts";
import { parseModelConfig } from "../../src/io/model_config.ts";
import { HfModel } from "../../src/io/hf_model.ts";
import { DecoderModel } from "../../src/model/decoder_model.ts";
import { checkModelTensors } from "../../src/model/expected_tensors.ts";
import { generate } from "../../src/model/generate.ts";
import { layerTensorShapes } from "../../src/model/layer_tensors.ts";
import { linearInputGroups } from "../../src/model/moe_names.ts";
import { referenceForward } from "../../src/model/reference_forward.ts";
import { referenceRoute } from "../../src/model/reference_moe.ts";
import { seededRandom } from "../../src/model/seeded_random.ts";
import { type SyntheticSpec, writeSyntheticModel } from "../../src/model/synthetic_model.ts";
import { assertClose, assertEquals, assertThrows } from "../model/_assert.ts";
import { ENGINE_KINDS, testEngine } from "../_engines.ts";

const BASE = {
  hidden: 64,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  intermediate: 96,
  vocab: 300,
  tied: false,
  maxPositions: 64,
} as const;

/** The three architectures, 2 layers, 4–8 experts, top-2. */
export const MOE_SPECS: Record<string, SyntheticSpec> = {
  mixtral: { ...BASE, modelType: "mixtral", moe: { experts: 4, topK: 2 } },
  qwen2_moe: {
    ...BASE,
    modelType: "qwen2_moe",
    moe: {
      experts: 6,
      topK: 2,
      expertIntermediate: 32,
      sharedIntermediate: 80,
      normTopkProb: false,
    },
  },
  qwen3_moe: {
    ...BASE,
    modelType: "qwen3_moe",
    moe: { experts: 8, topK: 2, expertIntermediate: 48, normTopkProb: true },
  },
};

async function checkAgainstReference(
  spec: SyntheticSpec,
  kind: EngineKind = "webgpu",
): Promise<void> {
  const written = await writeSyntheticModel(spec);
  const hf = await HfModel.open(written.dir);
  const model = await DecoderModel.load(hf, await testEngine(kind));
  try {
    const random = seededRandom(9);
    const ids = Int32Array.from({ length: 2 * 20 }, () => Math.floor(random() * spec.vocab));
    const expected = await referenceForward(hf, ids, { batch: 2 });
    const got = await model.forward(ids, 2);
    assertClose(got, expected.logits, 1e-4, `${spec.modelType} on ${kind}: logits`);
    const std = Math.sqrt(expected.logits.reduce((a, x) => a + x * x, 0) / expected.logits.length);
    assertEquals(std > 0.1, true, "synthetic logits are not degenerate");
    // ppl's path (nll in vocabulary blocks) runs on the MoE model too.
    const nll = await model.nll(ids, 2);
    assertEquals(nll.every(Number.isFinite), true, "nll is finite");
    // generate (greedy) picks the reference's argmax after the prompt.
    const prompt = Array.from(ids.subarray(0, 20));
    const out = await generate(model, prompt, { maxNewTokens: 1, temperature: 0 });
    const last = expected.logits.subarray(19 * spec.vocab, 20 * spec.vocab);
    assertEquals(out[20], last.indexOf(Math.max(...last)), "greedy next token");
  } finally {
    model.close();
    hf.close();
    await written.remove();
  }
}

for (const kind of ENGINE_KINDS) {
  for (const [name, spec] of Object.entries(MOE_SPECS)) {
    Deno.test(
      `${name}: forward on the ${kind} engine matches the float64 reference`,
      () => checkAgainstReference(spec, kind),
    );
  }

  Deno.test(`${kind}: qwen3_moe with mlp_only_layers: dense and sparse layers mix`, () =>
    checkAgainstReference({
      ...MOE_SPECS.qwen3_moe,
      layers: 3,
      moe: {
        ...MOE_SPECS.qwen3_moe.moe!,
        decoderSparseStep: 1,
        mlpOnlyLayers: [1],
        normTopkProb: false,
      },
    }, kind));
}

Deno.test("MoE checkpoints pass the open-time tensor check; a missing expert is named", async () => {
  for (const spec of Object.values(MOE_SPECS)) {
    const written = await writeSyntheticModel(spec);
    const hf = await HfModel.open(written.dir);
    try {
      const warnings: string[] = [];
      checkModelTensors(hf, hf.config, written.dir, (m) => warnings.push(m));
      assertEquals(warnings, [], `${spec.modelType}: no unexpected tensors`);
      // The same listing without one expert's down projection.
      const missing = spec.modelType === "mixtral"
        ? "model.layers.1.block_sparse_moe.experts.3.w2.weight"
        : "model.layers.1.mlp.experts.3.down_proj.weight";
      assertEquals(hf.has(missing), true, missing);
      const listing = {
        tensorNames: () => hf.tensorNames().filter((n) => n !== missing),
        info: (n: string) => hf.info(n),
      };
      assertThrows(
        () => checkModelTensors(listing, hf.config, written.dir, () => {}),
        Error,
        `${missing}: missing from the checkpoint`,
      );
    } finally {
      hf.close();
      await written.remove();
    }
  }
});

Deno.test("qwen2_moe: decoder_sparse_step 2 makes layer 0 dense", async () => {
  const spec = {
    ...MOE_SPECS.qwen2_moe,
    moe: { ...MOE_SPECS.qwen2_moe.moe!, decoderSparseStep: 2 },
  };
  const written = await writeSyntheticModel(spec);
  const hf = await HfModel.open(written.dir);
  try {
    assertEquals(hf.has("model.layers.0.mlp.gate_proj.weight"), true);
    assertEquals(hf.has("model.layers.1.mlp.experts.5.down_proj.weight"), true);
    assertEquals(linearInputGroups(hf.config, 0).map((g) => g.key), [
      "qkv",
      "o",
      "gate_up",
      "down",
    ]);
  } finally {
    hf.close();
    await written.remove();
  }
  await checkAgainstReference(spec);
});

Deno.test("MoE configs: transformers' keys and defaults", () => {
  const mixtral = parseModelConfig({
    model_type: "mixtral",
    hidden_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 8,
    vocab_size: 10,
  }, "config.json");
  assertEquals(mixtral.moe, {
    numExperts: 8,
    topK: 2,
    expertIntermediateSize: 14336,
    normTopkProb: true,
    sharedExpertIntermediateSize: null,
    decoderSparseStep: 1,
    mlpOnlyLayers: [],
  });
  assertEquals([mixtral.numKeyValueHeads, mixtral.slidingWindow, mixtral.attentionBias], [
    8,
    null,
    false,
  ]);
  const qwen2 = parseModelConfig({
    model_type: "qwen2_moe",
    hidden_size: 64,
    num_hidden_layers: 4,
    num_attention_heads: 16,
    vocab_size: 10,
    mlp_only_layers: [0, 3],
  }, "config.json");
  assertEquals(qwen2.moe, {
    numExperts: 60,
    topK: 4,
    expertIntermediateSize: 1408,
    normTopkProb: false,
    sharedExpertIntermediateSize: 5632,
    decoderSparseStep: 1,
    mlpOnlyLayers: [0, 3],
  });
  assertEquals([qwen2.attentionBias, qwen2.intermediateSize, qwen2.qkNorm], [true, 5632, false]);
  const qwen3 = parseModelConfig({
    model_type: "qwen3_moe",
    hidden_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    vocab_size: 10,
    norm_topk_prob: true,
  }, "config.json");
  assertEquals([qwen3.moe!.numExperts, qwen3.moe!.topK, qwen3.moe!.normTopkProb], [128, 8, true]);
  assertEquals([qwen3.qkNorm, qwen3.headDim, qwen3.numKeyValueHeads], [true, 16, 4]);
  assertThrows(
    () => parseModelConfig({ ...qwen3.raw, num_experts: 4, num_experts_per_tok: 5 }, "c.json"),
    Error,
    "num_experts_per_tok",
  );
  assertThrows(
    () => parseModelConfig({ ...qwen3.raw, mlp_only_layers: [2] }, "c.json"),
    Error,
    "mlp_only_layers",
  );
});

Deno.test("MoE tensors: every expert, router and shared expert listed with its shape", () => {
  const config = parseModelConfig({
    model_type: "qwen2_moe",
    hidden_size: 64,
    num_hidden_layers: 1,
    num_attention_heads: 4,
    num_key_value_heads: 4,
    vocab_size: 10,
    num_experts: 3,
    num_experts_per_tok: 2,
    moe_intermediate_size: 16,
    shared_expert_intermediate_size: 40,
  }, "config.json");
  const shapes = layerTensorShapes(config, 0);
  assertEquals(shapes.get("model.layers.0.mlp.gate.weight"), [3, 64]);
  assertEquals(shapes.get("model.layers.0.mlp.experts.2.down_proj.weight"), [64, 16]);
  assertEquals(shapes.get("model.layers.0.mlp.shared_expert.up_proj.weight"), [40, 64]);
  assertEquals(shapes.get("model.layers.0.mlp.shared_expert_gate.weight"), [1, 64]);
  assertEquals(shapes.get("model.layers.0.self_attn.q_proj.bias"), [64]);
  assertEquals(shapes.has("model.layers.0.self_attn.o_proj.bias"), false);
  assertEquals(shapes.has("model.layers.0.mlp.gate_proj.weight"), false);
  // 4 norms/attention weights + 3 q/k/v biases + router + 3·3 experts + 4 shared.
  assertEquals(shapes.size, 2 + 4 + 3 + 1 + 9 + 4);
});

Deno.test("referenceRoute: softmax, top-k, renormalization, ties to the lower index", () => {
  const r = referenceRoute([1, 3, 3, 0], 2, false);
  assertEquals(r.experts, [1, 2]);
  const e = Math.exp(1) + 2 * Math.exp(3) + 1;
  assertClose(
    new Float32Array(r.weights),
    new Float32Array([Math.exp(3) / e, Math.exp(3) / e]),
    1e-7,
  );
  assertEquals(referenceRoute([1, 3, 3, 0], 2, true).weights, [0.5, 0.5]);
});
