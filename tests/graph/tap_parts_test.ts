/**
 * Calibration rounds run the layer only as far as their observers read
 * (`LayerSession.tapPart`): the parts each calibrated recipe's forwards run
 * with, recorded from `DecoderModel.runLayer` during a small oneshot on
 * stories260K. (That the checkpoints do not change is the reference tests'
 * business: tests/graph/fp8_kv_cache_test.ts, tests/compress.)
 */

import assert from "node:assert/strict";
import { oneshot } from "../../src/oneshot.ts";
import { DecoderModel } from "../../src/model/decoder_model.ts";
import { furthestTapPart, tapPartOfInput } from "../../src/model/taps.ts";
import { HfModel } from "../../src/io/hf_model.ts";
import { CALIB, REPO_ROOT, STORIES, withTempDir } from "./_helpers.ts";

/**
 * The parts of layer 0's forwards (calibration rounds, then propagation) in
 * a oneshot run, each followed by `@` and its resume point when it resumes.
 */
async function layerZeroParts(recipe: string): Promise<(string | undefined)[]> {
  const proto = DecoderModel.prototype;
  const runLayer = proto.runLayer;
  const parts: (string | undefined)[] = [];
  proto.runLayer = function (k, hidden, options) {
    const resume = options?.resume?.at;
    if (k === 0) parts.push(resume === undefined ? options?.part : `${options?.part}@${resume}`);
    return runLayer.call(this, k, hidden, options);
  };
  try {
    await withTempDir(async (dir) => {
      await oneshot({
        model: STORIES,
        recipe,
        dataset: CALIB,
        numCalibrationSamples: 4,
        maxSeqLength: 32,
        outputDir: `${dir}/out`,
        engine: "cpu",
        onWarning: () => {},
      });
    });
  } finally {
    proto.runLayer = runLayer;
  }
  // One batch of 4 samples: one forward per round, then the propagation forward.
  return parts;
}

Deno.test({
  name: "FP8 static + KV cache: round r stops after the last tap it observes",
  sanitizeResources: false,
  async fn() {
    const parts = await layerZeroParts(`${REPO_ROOT}recipes/fp8_static_kv_cache.yaml`);
    // Round 0 observes q/k/v's input; round 1 the K/V states and o_proj's input (the q/k/v
    // replay settled); round 2 gate/up's input; round 3 down_proj's; then the propagation.
    // Round 1 repeats round 0 through q/k/v's input (only their replay is new), so it starts
    // at the normed input round 0 stopped at; round 2 repeats round 1 through o_proj's input
    // and starts there; round 3 starts at the MLP's input where round 2 stopped.
    assert.deepEqual(parts, [
      "through_qkv_input",
      "through_o_input@qkv_input",
      "through_mlp_input@o_input",
      "inputs@mlp_input",
      undefined,
    ]);
  },
});

Deno.test({
  name: "SmoothQuant's round stops after the MLP's input; GPTQ reads every input",
  sanitizeResources: false,
  async fn() {
    const parts = await layerZeroParts(`${REPO_ROOT}recipes/w8a8_smoothquant_gptq.yaml`);
    // The independent pipeline: SmoothQuant's pass (round, propagation), then GPTQ's.
    assert.deepEqual(parts, ["through_mlp_input", undefined, "inputs", undefined]);
  },
});

Deno.test("tapPartOfInput and furthestTapPart order the taps as the forward shows them", async () => {
  const hf = await HfModel.open(STORIES);
  try {
    const of = (m: string) => tapPartOfInput(hf.config, 1, `model.layers.1.${m}`);
    assert.equal(of("self_attn.k_proj"), "through_qkv_input");
    assert.equal(of("self_attn.o_proj"), "through_o_input");
    assert.equal(of("mlp.up_proj"), "through_mlp_input");
    assert.equal(of("mlp.down_proj"), "inputs");
    // Another layer's module is not this layer's input: the whole forward.
    assert.equal(tapPartOfInput(hf.config, 0, "model.layers.1.self_attn.q_proj"), "inputs");
    assert.equal(furthestTapPart(["through_o_input", "through_attention"]), "through_o_input");
    assert.equal(furthestTapPart([]), "inputs");
  } finally {
    hf.close();
  }
});
