/**
 * SmoothQuant on stories260K (calibrated on tinystories_calib.txt):
 * smoothing alone is an exact rescaling (same logits as the original, the
 * checkpoint holds the rescaled norms and Linears), and the upstream
 * example recipe `SmoothQuantModifier(0.8)` + `GPTQModifier(W8A8)` runs
 * unchanged from YAML with a decompressed-weights perplexity within 0.5 %
 * of llm-compressor's 7.7424 (64 × 256 calibration, 40 × 256 evaluation).
 */

import { testEngine } from "../_engines.ts";
import assert from "node:assert/strict";
import { HfModel } from "../../src/io/hf_model.ts";
import { DecoderModel } from "../../src/model/decoder_model.ts";
import { oneshot } from "../../src/oneshot.ts";
import {
  CALIB,
  evaluationWindows,
  STORIES,
  weightOnlyPerplexity,
  withTempDir,
} from "./_quality.ts";

const REPO = decodeURIComponent(new URL("../../", import.meta.url).pathname);

async function logitsOf(dir: string, ids: Int32Array, sequences: number): Promise<Float32Array> {
  const hf = await HfModel.open(dir);
  const model = await DecoderModel.load(hf, await testEngine("webgpu"));
  try {
    return await model.forward(ids, sequences);
  } finally {
    model.close();
    hf.close();
  }
}

Deno.test({
  name: "SmoothQuant alone computes the same function: logits within 1e-4 relative",
  sanitizeResources: false,
  async fn() {
    await withTempDir(async (dir) => {
      const warnings: string[] = [];
      await oneshot({
        model: STORIES,
        recipe:
          "quant_stage:\n  quant_modifiers:\n    SmoothQuantModifier: {smoothing_strength: 0.8}\n",
        outputDir: `${dir}/sq`,
        dataset: CALIB,
        numCalibrationSamples: 16,
        maxSeqLength: 128,
        onWarning: (m) => warnings.push(m),
      });
      const src = await HfModel.open(STORIES);
      const out = await HfModel.open(`${dir}/sq`);
      try {
        // The norms and the Linears they feed were rescaled, and written.
        for (const k of [0, 4]) {
          for (
            const [norm, linear] of [
              ["input_layernorm", "self_attn.q_proj"],
              ["post_attention_layernorm", "mlp.up_proj"],
            ]
          ) {
            const p = `model.layers.${k}`;
            const g0 = await src.readF32(`${p}.${norm}.weight`);
            const g1 = await out.readF32(`${p}.${norm}.weight`);
            const w0 = await src.readF32(`${p}.${linear}.weight`);
            const w1 = await out.readF32(`${p}.${linear}.weight`);
            assert.ok(g0.some((v, j) => Math.abs(v - g1[j]) > 1e-3 * Math.abs(v)), `${p}.${norm}`);
            const cols = g0.length;
            // γ_j · W_ij is unchanged by the rescaling.
            for (let i = 0; i < w0.length; i++) {
              const j = i % cols;
              const a = g0[j] * w0[i];
              const b = g1[j] * w1[i];
              assert.ok(
                Math.abs(a - b) <= 1e-5 * Math.max(1e-3, Math.abs(a)),
                `${p}.${linear}[${i}]`,
              );
            }
          }
        }
      } finally {
        src.close();
        out.close();
      }
      const windows = (await evaluationWindows(4, 128)).slice(0, 4);
      const ids = new Int32Array(windows.length * 128);
      windows.forEach((w, i) => ids.set(w, i * 128));
      const ref = await logitsOf(STORIES, ids, windows.length);
      const got = await logitsOf(`${dir}/sq`, ids, windows.length);
      let maxAbs = 0;
      let maxDiff = 0;
      for (let i = 0; i < ref.length; i++) {
        maxAbs = Math.max(maxAbs, Math.abs(ref[i]));
        maxDiff = Math.max(maxDiff, Math.abs(ref[i] - got[i]));
      }
      console.log(
        `stories260K SmoothQuant 0.8 alone: max |Δlogit| / max |logit| = ${
          (maxDiff / maxAbs).toExponential(2)
        }`,
      );
      assert.ok(maxDiff <= 1e-4 * maxAbs, `logits moved by ${maxDiff} (max |logit| ${maxAbs})`);
    });
  },
});

Deno.test({
  name: "SmoothQuant 0.8 + GPTQ W8A8 from the upstream YAML: perplexity within 0.5 % of 7.7424",
  sanitizeResources: false,
  async fn() {
    await withTempDir(async (dir) => {
      await oneshot({
        model: STORIES,
        recipe: `${REPO}recipes/w8a8_smoothquant_gptq.yaml`,
        outputDir: `${dir}/w8a8`,
        dataset: CALIB,
        numCalibrationSamples: 64,
        maxSeqLength: 256,
        onWarning: () => {},
      });
      const ppl = await weightOnlyPerplexity(`${dir}/w8a8`, await evaluationWindows());
      console.log(
        `stories260K SmoothQuant 0.8 + GPTQ W8A8 (llvmpipe): decompressed-weights ppl ${
          ppl.toFixed(4)
        }`,
      );
      assert.ok(ppl <= 7.7424 * 1.005, `ppl ${ppl}`);
      const recipe = await Deno.readTextFile(`${dir}/w8a8/recipe.yaml`);
      assert.match(recipe, /SmoothQuantModifier:\n\s+smoothing_strength: 0\.8\n\s+mappings:/);
    });
  },
});

Deno.test({
  name: "SmoothQuant then GPTQ in one sequential pass: GPTQ calibrates on the smoothed layer",
  sanitizeResources: false,
  async fn() {
    await withTempDir(async (dir) => {
      const common = {
        model: STORIES,
        recipe: `${REPO}recipes/w8a8_smoothquant_gptq.yaml`,
        dataset: CALIB,
        numCalibrationSamples: 8,
        maxSeqLength: 128,
        onWarning: () => {},
      };
      await oneshot({ ...common, outputDir: `${dir}/seq`, pipeline: "sequential" });
      await oneshot({ ...common, outputDir: `${dir}/ind` });
      const seq = await HfModel.open(`${dir}/seq`);
      const ind = await HfModel.open(`${dir}/ind`);
      const src = await HfModel.open(STORIES);
      try {
        for (const n of ["input_layernorm", "post_attention_layernorm"]) {
          const name = `model.layers.0.${n}.weight`;
          const a = await seq.readF32(name);
          const b = await ind.readF32(name);
          const o = await src.readF32(name);
          // Both pipelines smooth layer 2 from the same inputs (smoothing is exact, so the
          // propagated inputs agree up to rounding), and write the smoothed norm.
          a.forEach((v, j) =>
            assert.ok(Math.abs(v - b[j]) <= 1e-3 * Math.abs(b[j]), `${name}[${j}]`)
          );
          assert.ok(a.some((v, j) => Math.abs(v - o[j]) > 1e-3 * Math.abs(o[j])), name);
        }
      } finally {
        for (const m of [seq, ind, src]) m.close();
      }
      const windows = (await evaluationWindows(4, 128)).slice(0, 4);
      const a = await weightOnlyPerplexity(`${dir}/seq`, windows);
      const b = await weightOnlyPerplexity(`${dir}/ind`, windows);
      assert.ok(Math.abs(a / b - 1) < 0.01, `sequential ${a} vs independent ${b}`);
    });
  },
});
