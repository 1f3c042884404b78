/**
 * SmoothQuant and AWQ run on both compute engines: their statistics
 * (per-channel min/max, mean |x|) and AWQ's sub-graph grid losses go through
 * `Engine` ops, so the WebGPU engine and the CPU engine give the same
 * smoothing up to float32 rounding (stories260K, a few short samples).
 */

import assert from "node:assert/strict";
import type { EngineKind } from "../../src/engine/engine.ts";
import type { GraphEvent, ModuleMetricEvent } from "../../src/graph/events.ts";
import { HfModel } from "../../src/io/hf_model.ts";
import { oneshot } from "../../src/oneshot.ts";
import { ENGINE_KINDS } from "../_engines.ts";
import { CALIB, STORIES, withTempDir } from "../quality/_quality.ts";

const SMOOTHQUANT =
  "quant_stage:\n  quant_modifiers:\n    SmoothQuantModifier: {smoothing_strength: 0.8}\n";
const AWQ = `quant_stage:
  quant_modifiers:
    AWQModifier:
      ignore: [lm_head]
      n_grid: 5
      config_groups:
        group_0:
          weights: {num_bits: 4, type: int, symmetric: false, strategy: channel}
          targets: [Linear]
`;
const NORMS = [0, 2, 4].flatMap((k) =>
  ["input_layernorm", "post_attention_layernorm"].map((n) => `model.layers.${k}.${n}.weight`)
);

async function run(
  dir: string,
  recipe: string,
  engine: EngineKind,
  samples: number,
): Promise<{ norms: Float32Array[]; events: GraphEvent[] }> {
  const events: GraphEvent[] = [];
  const out = `${dir}/${engine}`;
  await oneshot({
    model: STORIES,
    recipe,
    outputDir: out,
    dataset: CALIB,
    numCalibrationSamples: samples,
    maxSeqLength: 64,
    engine,
    onWarning: () => {},
    onEvent: (e) => events.push(e),
  });
  const hf = await HfModel.open(out);
  try {
    return { norms: await Promise.all(NORMS.map((n) => hf.readF32(n))), events };
  } finally {
    hf.close();
  }
}

function engineOf(events: GraphEvent[]): string | undefined {
  const e = events.find((e) => e.type === "engine");
  return e?.type === "engine" ? e.engine : undefined;
}

Deno.test({
  name: "SmoothQuant on webgpu and cpu: the same smoothed norms (1e-4 relative)",
  sanitizeResources: false,
  async fn() {
    await withTempDir(async (dir) => {
      const src = await HfModel.open(STORIES);
      const original = await Promise.all(NORMS.map((n) => src.readF32(n)));
      src.close();
      const [gpu, cpu] = [
        await run(dir, SMOOTHQUANT, "webgpu", 8),
        await run(dir, SMOOTHQUANT, "cpu", 8),
      ];
      assert.equal(engineOf(gpu.events), "webgpu");
      assert.equal(engineOf(cpu.events), "cpu");
      NORMS.forEach((name, i) => {
        assert.ok(original[i].some((v, j) => v !== cpu.norms[i][j]), `${name} was not smoothed`);
        for (let j = 0; j < original[i].length; j++) {
          const a = gpu.norms[i][j], b = cpu.norms[i][j];
          assert.ok(Math.abs(a - b) <= 1e-4 * Math.abs(a), `${name}[${j}]: ${a} vs ${b}`);
        }
      });
    });
  },
});

Deno.test({
  name: "AWQ on webgpu and cpu: every parent no worse than RTN, the same grid losses (1 %)",
  sanitizeResources: false,
  async fn() {
    await withTempDir(async (dir) => {
      const metrics: ModuleMetricEvent[][] = [];
      for (const engine of ENGINE_KINDS) {
        const { events } = await run(dir, AWQ, engine, 4);
        assert.equal(engineOf(events), engine);
        const m = events.filter((e): e is ModuleMetricEvent =>
          e.type === "module_metric" && e.errorKind === "parent_output_mse"
        );
        // 5 layers × (input_layernorm → q/k/v, post_attention_layernorm → gate/up, up → down).
        assert.equal(m.length, 15, engine);
        for (const p of m) {
          assert.ok(Number.isFinite(p.outputError!) && p.outputError! > 0, `${engine} ${p.module}`);
          assert.ok(p.outputError! <= p.rtnOutputError!, `${engine} ${p.module}: worse than RTN`);
        }
        metrics.push(m);
      }
      const [gpu, cpu] = metrics;
      gpu.forEach((g, i) => {
        const c = cpu[i];
        assert.equal(c.module, g.module);
        for (
          const [a, b] of [[g.outputError!, c.outputError!], [g.rtnOutputError!, c.rtnOutputError!]]
        ) {
          assert.ok(Math.abs(a - b) <= 1e-2 * a, `${g.module}: webgpu ${a} vs cpu ${b}`);
        }
      });
    });
  },
});
