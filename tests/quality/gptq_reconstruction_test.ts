/**
 * GPTQ's output reconstruction error against round-to-nearest's, per Linear.
 *
 * GPTQ minimizes ‖XWᵀ − XŴᵀ‖² on the inputs X of each Linear under error
 * propagation (the layer's inputs after the earlier, already compressed
 * layers). The GPTQ session measures that error for its own Ŵ and for
 * round-to-nearest's Ŵ with the same args from the Hessian H = 2XᵀX/n it
 * accumulated (‖XΔᵀ‖² = tr(ΔHΔᵀ)·n/2), and reports both in its
 * `module_metric` events. The first test checks that identity against X
 * itself; the second that on stories260K (64 × 256 tokens of
 * tinystories_calib.txt, W4A16 channel-wise) GPTQ beats round-to-nearest on
 * every Linear of every layer; the third the same with group 128 and
 * `actorder: group` on a synthetic Llama whose in_features (256, 768) span
 * several 128-column blocks (issue 10's parity case).
 */

import assert from "node:assert/strict";
import { webGpuSecondOrder } from "../../src/engine/webgpu_second_order.ts";
import { WebGpuEngine } from "../../src/engine/webgpu_engine.ts";
import { getGpu } from "../../src/gpu/device.ts";
import type { ModuleMetricEvent } from "../../src/graph/events.ts";
import { LayerHessians, reconstructionErrors } from "../../src/modifiers/gptq/gptq_weights.ts";
import { writeSyntheticModel } from "../../src/model/synthetic_model.ts";
import { oneshot } from "../../src/oneshot.ts";
import { CALIB, STORIES, withTempDir } from "./_quality.ts";

/** A deterministic pseudo-random sequence in [−1, 1). */
function noise(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

/** ‖X(W − Ŵ)ᵀ‖²_F computed from X itself, in double precision. */
function outputError(
  x: Float32Array,
  tokens: number,
  w: Float32Array,
  wq: Float32Array | null,
  [out, cols]: readonly [number, number],
): number {
  let s = 0;
  for (let t = 0; t < tokens; t++) {
    for (let r = 0; r < out; r++) {
      let y = 0;
      for (let j = 0; j < cols; j++) {
        y += x[t * cols + j] * (w[r * cols + j] - (wq === null ? 0 : wq[r * cols + j]));
      }
      s += y * y;
    }
  }
  return s;
}

Deno.test({
  name: "reconstructionErrors: tr(ΔHΔᵀ)/tr(WHWᵀ) equals ‖XΔᵀ‖²/‖XWᵀ‖² on the accumulated inputs",
  sanitizeResources: false,
  fn: async () => {
    const engine = await WebGpuEngine.create(await getGpu());
    // 100 columns: H is padded to 128, so the padding must not leak in.
    const shape = [24, 100] as const;
    const hessians = LayerHessians.create(engine, new Map([["in", shape[1]]]));
    try {
      const parts = [noise(7 * shape[1], 1), noise(5 * shape[1], 2)];
      for (const [i, x] of parts.entries()) {
        const t = engine.upload(x, [x.length / shape[1], shape[1]]);
        hessians.add("in", t, i + 1);
        await engine.flush();
        t.destroy();
      }
      const x = new Float32Array([...parts[0], ...parts[1]]);
      const tokens = x.length / shape[1];
      const w = noise(shape[0] * shape[1], 3);
      const near = w.map((v, i) => v + 0.01 * noise(w.length, 4)[i]);
      const far = w.map((v, i) => (i % 3 === 0 ? 0 : v));
      const [[a, b]] = await reconstructionErrors(engine, hessians, [
        { input: "in", original: w, shape, candidates: [near, far] },
      ]);
      const base = outputError(x, tokens, w, null, shape);
      const wantA = outputError(x, tokens, w, near, shape) / base;
      const wantB = outputError(x, tokens, w, far, shape) / base;
      assert.ok(Math.abs(a - wantA) <= 1e-3 * wantA, `near: ${a} vs ${wantA}`);
      assert.ok(Math.abs(b - wantB) <= 1e-3 * wantB, `far: ${b} vs ${wantB}`);
      assert.ok(a < b);
      // Row chunks of 5 rows of H's padded order (128) give the same errors.
      const chunked = webGpuSecondOrder(engine, { reconstructionChunkBytes: 5 * 128 * 4 });
      const [ca, cb] = await chunked.reconstructionErrors(hessians.get("in"), w, shape, [
        near,
        far,
      ]);
      assert.ok(Math.abs(ca - a) <= 1e-5 * a && Math.abs(cb - b) <= 1e-5 * b, `${ca} ${cb}`);
    } finally {
      hessians.destroy();
    }
  },
});

Deno.test({
  name: "GPTQ W4A16 channel on stories260K: every Linear's output error is below RTN's",
  sanitizeResources: false,
  fn: async () => {
    const metrics: ModuleMetricEvent[] = [];
    await withTempDir(async (dir) => {
      await oneshot({
        model: STORIES,
        recipe: `quant_stage:\n  quant_modifiers:\n    GPTQModifier:\n      ignore: ["lm_head"]\n` +
          `      config_groups:\n        group_0:\n          targets: ["Linear"]\n` +
          `          weights: {num_bits: 4, type: int, symmetric: true, strategy: channel}\n`,
        outputDir: `${dir}/out`,
        dataset: CALIB,
        numCalibrationSamples: 32,
        maxSeqLength: 256,
        onWarning: () => {},
        onEvent: (e) => {
          if (e.type === "module_metric" && e.modifier === "GPTQModifier") metrics.push(e);
        },
      });
    });
    // stories260K: 5 layers × q, k, v, o, gate, up, down.
    assert.equal(metrics.length, 35);
    const worst = { ratio: 0, module: "" };
    for (const m of metrics) {
      const gptq = m.outputError, rtn = m.rtnOutputError;
      assert.ok(
        typeof gptq === "number" && typeof rtn === "number",
        `${m.module}: no output error`,
      );
      assert.ok(gptq > 0 && rtn > 0, `${m.module}: ${gptq} / ${rtn}`);
      assert.ok(gptq < rtn, `${m.module}: GPTQ output error ${gptq} should be below RTN's ${rtn}`);
      if (gptq / rtn > worst.ratio) Object.assign(worst, { ratio: gptq / rtn, module: m.module });
    }
    const mean = (k: "outputError" | "rtnOutputError") =>
      metrics.reduce((a, m) => a + (m[k] as number), 0) / metrics.length;
    console.log(
      `stories260K W4A16 channel, 32×256 (llvmpipe): mean relative output error ` +
        `GPTQ ${mean("outputError").toExponential(3)}, RTN ${
          mean("rtnOutputError").toExponential(3)
        }; ` +
        `worst GPTQ/RTN ${worst.ratio.toFixed(3)} (${worst.module})`,
    );
  },
});

Deno.test({
  name:
    "GPTQ W4A16 group 128, actorder group, on multi-block in_features: every output error is far below RTN's",
  sanitizeResources: false,
  fn: async () => {
    const metrics: ModuleMetricEvent[] = [];
    await withTempDir(async (dir) => {
      const model = `${dir}/model`;
      await Deno.mkdir(model);
      await writeSyntheticModel({
        modelType: "llama",
        hidden: 256,
        layers: 1,
        heads: 8,
        kvHeads: 4,
        intermediate: 768,
        vocab: 512,
        tied: false,
        seed: 5,
      }, model);
      // stories260K's tokenizer (vocabulary 512) reads the calibration text.
      for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
        await Deno.copyFile(`${STORIES}/${f}`, `${model}/${f}`);
      }
      await oneshot({
        model,
        recipe: `quant_stage:\n  quant_modifiers:\n    GPTQModifier:\n      ignore: ["lm_head"]\n` +
          `      actorder: group\n      config_groups:\n        group_0:\n          targets: ["Linear"]\n` +
          `          weights: {num_bits: 4, type: int, symmetric: true, strategy: group, group_size: 128}\n`,
        outputDir: `${dir}/out`,
        dataset: CALIB,
        numCalibrationSamples: 8,
        maxSeqLength: 128,
        onWarning: () => {},
        onEvent: (e) => {
          if (e.type === "module_metric" && e.modifier === "GPTQModifier") metrics.push(e);
        },
      });
    });
    // q, k, v, o, gate, up (256 columns: 2 blocks) and down (768: 6 blocks).
    assert.equal(metrics.length, 7);
    let worst = 0;
    for (const m of metrics) {
      const gptq = m.outputError, rtn = m.rtnOutputError;
      assert.ok(
        typeof gptq === "number" && typeof rtn === "number",
        `${m.module}: no output error`,
      );
      assert.ok(gptq > 0 && gptq < 0.5 * rtn, `${m.module}: GPTQ ${gptq} vs RTN ${rtn}`);
      worst = Math.max(worst, gptq / rtn);
    }
    console.log(
      `synthetic 256/768, W4A16 g128 actorder group: worst GPTQ/RTN output error ${
        worst.toFixed(3)
      }`,
    );
  },
});
