/**
 * Static FP8 input scales on a mixtral (llm-compressor's
 * examples/quantizing_moe/mixtral_example.py: scheme FP8, routers ignored):
 * with all experts calibrated every expert's gate/up observer sees the same
 * tokens, so their input scales are equal; with routed tokens only they
 * differ from expert to expert and none exceeds the all-token one (layer 0,
 * whose inputs are the same in both runs; the min/max EMA is monotone in
 * each sample's range, and an expert's routed rows are a subset with the
 * others zeroed).
 */

import { HfModel } from "../../src/io/hf_model.ts";
import { oneshot } from "../../src/oneshot.ts";
import { assert, assertEquals } from "../oneshot/_assert.ts";
import { withTempDir } from "../oneshot/_helpers.ts";
import { CALIB, MOE_QUANT_SPECS, writeMoeModel } from "./_moe.ts";

async function inputScales(dir: string, allExperts: boolean): Promise<number[]> {
  const src = await writeMoeModel(MOE_QUANT_SPECS.mixtral, `${dir}/model-${allExperts}`);
  const out = `${dir}/out-${allExperts}`;
  await oneshot({
    model: src,
    scheme: "FP8",
    ignore: ["lm_head", "re:.*block_sparse_moe.gate"],
    outputDir: out,
    dataset: CALIB,
    numCalibrationSamples: 4,
    maxSeqLength: 64,
    moeCalibrateAllExperts: allExperts,
    onWarning: () => {},
  });
  const hf = await HfModel.open(out);
  try {
    const scales: number[] = [];
    for (let e = 0; e < 4; e++) {
      const p = `model.layers.0.block_sparse_moe.experts.${e}`;
      const w1 = (await hf.readF32(`${p}.w1.input_scale`))[0];
      assertEquals((await hf.readF32(`${p}.w3.input_scale`))[0], w1, `${p}: w1/w3 share an input`);
      assert(hf.has(`${p}.w2.input_scale`), `${p}.w2 calibrated`);
      scales.push(w1);
    }
    assert(!hf.has("model.layers.0.block_sparse_moe.gate.input_scale"), "router ignored");
    return scales;
  } finally {
    hf.close();
  }
}

Deno.test("mixtral FP8 static inputs: every expert observes all tokens, or only its own", async () => {
  await withTempDir(async (dir) => {
    const all = await inputScales(dir, true);
    assert(all.every((s) => s === all[0] && s > 0), `all experts: ${all}`);
    const routed = await inputScales(dir, false);
    assert(routed.every((s) => s > 0 && s <= all[0]), `routed: ${routed} vs ${all[0]}`);
    assert(new Set(routed).size > 1, `routed scales differ: ${routed}`);
  });
});

Deno.test("qwen2_moe with a dense layer 0: the sparse layers' quantization-aware note is said once, from layer 1", async () => {
  await withTempDir(async (dir) => {
    const base = MOE_QUANT_SPECS.qwen2_moe;
    const spec = { ...base, layers: 3, moe: { ...base.moe!, mlpOnlyLayers: [0] } };
    const warnings: string[] = [];
    await oneshot({
      model: await writeMoeModel(spec, `${dir}/model`),
      scheme: "FP8",
      // The router reads the shared expert's input unquantized: no one simulation fits them.
      ignore: ["lm_head", "re:.*mlp.gate$"],
      outputDir: `${dir}/out`,
      dataset: CALIB,
      numCalibrationSamples: 2,
      maxSeqLength: 16,
      onWarning: (m) => warnings.push(m),
    });
    const notes = warnings.filter((w) => w.includes("does not simulate the inputs of mlp.gate/"));
    assertEquals(notes.length, 1, warnings.join("\n"));
    assert(notes[0].includes("quantize it differently"), notes[0]);
  });
});
