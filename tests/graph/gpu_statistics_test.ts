/**
 * The engine side of the graph against plain TypeScript, on both engines:
 * per-sample min/max reductions (tensor and attn_head layouts) and the fake
 * quantization of Linear inputs in calibration forwards.
 */

import assert from "node:assert/strict";
import { CpuEngine } from "../../src/engine/cpu_engine.ts";
import type { Engine } from "../../src/engine/engine.ts";
import { WebGpuEngine } from "../../src/engine/webgpu_engine.ts";
import { getGpu } from "../../src/gpu/device.ts";
import { seededRandom } from "../../src/model/seeded_random.ts";
import { parseQuantizationArgs } from "../../src/quant/args.ts";
import { fakeQuantize } from "../../src/quant/quantize.ts";
import {
  readSampleMinMax,
  recordHeadMinMax,
  recordTensorMinMax,
} from "../../src/graph/sample_statistics.ts";
import {
  fakeQuantizeDynamicTokens,
  fakeQuantizeRows,
  inputSimulation,
} from "../../src/graph/activation_fake_quant.ts";

const ENGINES: Array<[string, () => Promise<Engine>]> = [
  ["cpu", () => Promise.resolve(new CpuEngine())],
  ["webgpu", async () => await WebGpuEngine.create(await getGpu())],
];
const random = seededRandom(5);
const B = 3, T = 7, HEADS = 4, D = 8;
const x = Float32Array.from({ length: B * T * HEADS * D }, () => (random() - 0.5) * 10);

for (const [engineName, makeEngine] of ENGINES) {
  Deno.test({
    name: `${engineName}: per-sample min/max: tensor and attn_head layouts match a CPU reduction`,
    sanitizeResources: false,
    async fn() {
      const engine = await makeEngine();
      const t = engine.upload(x, [B * T, HEADS * D]);
      const whole = recordTensorMinMax(engine, t, B, T);
      const heads = recordHeadMinMax(engine, t, B, T, HEADS);
      const [perSample, perHead] = await readSampleMinMax(engine, [whole, heads]);
      t.destroy();
      for (let b = 0; b < B; b++) {
        const rows = x.subarray(b * T * HEADS * D, (b + 1) * T * HEADS * D);
        assert.equal(perSample[b].min[0], Math.min(...rows));
        assert.equal(perSample[b].max[0], Math.max(...rows));
        for (let h = 0; h < HEADS; h++) {
          const vals: number[] = [];
          for (let s = 0; s < T; s++) {
            vals.push(...rows.subarray((s * HEADS + h) * D, (s * HEADS + h + 1) * D));
          }
          assert.equal(perHead[b].min[h], Math.min(...vals), `sample ${b} head ${h}`);
          assert.equal(perHead[b].max[h], Math.max(...vals));
        }
      }
    },
  });

  Deno.test({
    name:
      `${engineName}: input fake quantization: per-row static scales and dynamic per-token scales`,
    sanitizeResources: false,
    async fn() {
      const engine = await makeEngine();
      const rows = B * T;
      const cols = HEADS * D;
      const t = engine.upload(x, [rows, cols]);
      const fp8 = parseQuantizationArgs({ num_bits: 8, type: "float", strategy: "tensor" }, "in");
      const int8 = parseQuantizationArgs(
        { num_bits: 8, symmetric: false, strategy: "tensor" },
        "in",
      );
      const scale = Float32Array.from({ length: rows }, (_, r) => 0.01 + 0.001 * Math.floor(r / T));
      // Runs of equal scales (a sample's tokens) and, on other boundaries, of equal zero points:
      // the host path quantizes each run of rows sharing both as one block.
      const zp = Float32Array.from({ length: rows }, (_, r) => (Math.floor(r / 3) % 3) - 1);
      const dyn = parseQuantizationArgs({
        num_bits: 8,
        type: "float",
        strategy: "token",
        dynamic: true,
      }, "in");
      const a = fakeQuantizeRows(engine, t, scale, null, fp8);
      const b = fakeQuantizeRows(engine, t, scale, zp, int8);
      const c = fakeQuantizeDynamicTokens(engine, t, dyn);
      const [ga, gb, gc] = await engine.read([a, b, c]);
      for (const u of [t, a, b, c]) u.destroy();
      for (let r = 0; r < rows; r++) {
        const row = x.subarray(r * cols, (r + 1) * cols);
        const s = new Float32Array([scale[r]]);
        const ea = fakeQuantize(row, [1, cols], { scale: s }, fp8);
        const eb = fakeQuantize(
          row,
          [1, cols],
          { scale: s, zeroPoint: new Float32Array([zp[r]]) },
          int8,
        );
        let amax = 0;
        for (const v of row) amax = Math.max(amax, Math.abs(v));
        const ec = fakeQuantize(row, [1, cols], {
          scale: new Float32Array([Math.fround(amax / 448)]),
        }, fp8);
        for (let i = 0; i < cols; i++) {
          assert.equal(ga[r * cols + i], ea[i], `static fp8 row ${r}`);
          assert.equal(gb[r * cols + i], eb[i], `static int8 asym row ${r}`);
          // amax · (1/448) may differ from amax / 448 in the last bit of the scale.
          assert.ok(
            Math.abs(gc[r * cols + i] - ec[i]) <= Math.abs(ec[i]) * 1e-6,
            `dynamic row ${r}`,
          );
        }
      }
      assert.equal(inputSimulation(int8).kind, "static");
      assert.equal(inputSimulation(dyn).kind, "dynamic_token");
      const nvfp4 = parseQuantizationArgs(
        { num_bits: 4, type: "float", strategy: "tensor_group", group_size: 16, dynamic: "local" },
        "in",
      );
      assert.equal(inputSimulation(nvfp4).kind, "none");
    },
  });
}
