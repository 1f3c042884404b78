/**
 * GPTQ on synthetic MoE checkpoints with llm-compressor's example recipes
 * (W4A16, routers ignored), run unchanged. With `moe_calibrate_all_experts`
 * (the default) every expert's Hessian is built from every calibration
 * token and GPTQ beats round-to-nearest on every expert's output error;
 * without it experts see only their routed tokens, and an expert the router
 * never picks is still quantized (round-to-nearest) and named in a warning.
 * Each runs on both compute engines (the MoE block's routing, masking and
 * weighted sums are Engine ops).
 */

import type { EngineKind } from "../../src/engine/engine.ts";
import type { GraphEvent, ModuleMetricEvent } from "../../src/graph/events.ts";
import { HfModel } from "../../src/io/hf_model.ts";
import {
  layerFusedSets,
  planLinearQuantization,
  rtnQuantizeLinears,
} from "../../src/modifiers/quantization/mod.ts";
import { command } from "../../src/cli/oneshot.ts";
import { oneshot } from "../../src/oneshot.ts";
import { loadRecipe } from "../../src/recipe/load.ts";
import type { QuantizationModifierSpec } from "../../src/recipe/modifiers.ts";
import { resolveQuantizationConfig } from "../../src/recipe/resolve.ts";
import { assert, assertEquals } from "../oneshot/_assert.ts";
import { readAll, withTempDir } from "../oneshot/_helpers.ts";
import { CALIB, MOE_QUANT_SPECS, writeMoeModel } from "./_moe.ts";
import { ENGINE_KINDS } from "../_engines.ts";

const ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);
const CALIBRATION = { dataset: CALIB, numCalibrationSamples: 8, maxSeqLength: 64 };

async function run(
  dir: string,
  spec: (typeof MOE_QUANT_SPECS)[string],
  recipe: string,
  allExperts: boolean,
  engine: EngineKind,
): Promise<{ metrics: ModuleMetricEvent[]; warnings: string[]; out: string; src: string }> {
  const src = await writeMoeModel(spec, `${dir}/model`);
  const events: GraphEvent[] = [];
  const warnings: string[] = [];
  const out = `${dir}/out`;
  await oneshot({
    model: src,
    recipe,
    outputDir: out,
    ...CALIBRATION,
    moeCalibrateAllExperts: allExperts,
    engine,
    onEvent: (e) => events.push(e),
    onWarning: (m) => warnings.push(m),
  });
  for (const e of events) if (e.type === "warning") warnings.push(e.message);
  const metrics = events.filter((e): e is ModuleMetricEvent => e.type === "module_metric");
  return { metrics, warnings, out, src };
}

for (const engine of ENGINE_KINDS) {
  for (const name of ["mixtral", "qwen3_moe"]) {
    Deno.test(`${engine}: ${name} GPTQ W4A16, all experts calibrated: full-set Hessians, every expert below RTN`, async () => {
      await withTempDir(async (dir) => {
        const spec = MOE_QUANT_SPECS[name];
        const recipe = `${ROOT}recipes/${name}_w4a16_gptq.yaml`;
        const { metrics, warnings } = await run(dir, spec, recipe, true, engine);
        const experts = metrics.filter((m) => m.module.includes(".experts."));
        assertEquals(experts.length, spec.layers * spec.moe!.experts * 3);
        const tokens = experts[0].expertTokens!.calibrated;
        assert(tokens >= CALIBRATION.numCalibrationSamples * 32, `${tokens} calibration tokens`);
        for (const m of experts) {
          assertEquals(m.errorKind, "gptq_loss", m.module);
          assertEquals(m.expertTokens!.calibrated, tokens, `${m.module}: saw every token`);
          assert(
            m.outputError! < m.rtnOutputError!,
            `${m.module}: GPTQ ${m.outputError} vs RTN ${m.rtnOutputError}`,
          );
        }
        for (let k = 0; k < spec.layers; k++) {
          const gates = experts.filter((m) => m.layer === k && /\.(gate_proj|w1)$/.test(m.module));
          const routed = gates.map((m) => m.expertTokens!.routed);
          // Each token goes to exactly top-k experts, and routing is not uniform.
          assertEquals(routed.reduce((a, b) => a + b, 0), spec.moe!.topK * tokens, `layer ${k}`);
          assert(routed.some((r) => r < tokens), `layer ${k}: ${routed}`);
        }
        assertEquals(warnings.filter((w) => w.includes("no calibration token")), []);
        // Routers are ignored: no metric, no quantization.
        assert(!metrics.some((m) => /\.gate$/.test(m.module)));
      });
    });
  }

  Deno.test(`${engine}: qwen3_moe GPTQ, routed tokens only: an expert no token reaches is RTN-quantized and named`, async () => {
    await withTempDir(async (dir) => {
      const base = MOE_QUANT_SPECS.qwen3_moe;
      const spec = { ...base, moe: { ...base.moe!, unrouted: [5] } };
      const recipe = `${ROOT}recipes/qwen3_moe_w4a16_gptq.yaml`;
      const { metrics, warnings, out, src } = await run(dir, spec, recipe, false, engine);
      const hf = await HfModel.open(src);
      try {
        const written = new Map(
          (await readAll(`${out}/model.safetensors`)).map((t) => [t.name, t]),
        );
        const mod = (await loadRecipe(recipe)).modifiers[0] as QuantizationModifierSpec;
        const plan = planLinearQuantization(hf, resolveQuantizationConfig(mod));
        for (let k = 0; k < spec.layers; k++) {
          const dead = ["gate_proj", "up_proj", "down_proj"].map((p) =>
            `model.layers.${k}.mlp.experts.5.${p}`
          );
          for (const d of dead) {
            assert(warnings.some((w) => w.includes(d)), `${d} named in a warning: ${warnings}`);
            const m = metrics.find((m) => m.module === d)!;
            assertEquals(m.errorKind, "relative_weight_mse", d);
            assertEquals(m.expertTokens, { routed: 0, calibrated: 0 }, d);
          }
          // Quantized (round-to-nearest), not left dense: the dense per-module path's bytes.
          const planned = plan.linears.filter((l) => dead.includes(l.name));
          const rtn = rtnQuantizeLinears(
            await Promise.all(planned.map(async (l) => ({
              name: l.name,
              values: await hf.readF32(l.weightTensor),
              shape: l.shape,
              scheme: l.scheme!,
              format: l.format!,
              dtype: "F32" as const,
            }))),
            { fusedSets: layerFusedSets(k, hf.config, () => false) },
          );
          for (const q of rtn) {
            assert(!written.has(`${q.name}.weight`), `${q.name} left dense`);
            for (const t of q.tensors) {
              const got = written.get(t.name)!;
              assert(got.data.every((b, i) => b === t.data[i]), `${t.name}: not RTN's bytes`);
            }
          }
        }
        // Every other expert saw exactly its routed tokens and went through GPTQ.
        const live = metrics.filter((m) =>
          m.module.includes(".experts.") && !m.module.includes(".experts.5.")
        );
        assertEquals(live.length, spec.layers * 7 * 3);
        for (const m of live) {
          assertEquals(m.expertTokens!.calibrated, m.expertTokens!.routed, m.module);
          if (m.expertTokens!.routed > 0) assertEquals(m.errorKind, "gptq_loss", m.module);
        }
        assert(live.some((m) => m.expertTokens!.routed > 0));
      } finally {
        hf.close();
      }
    });
  });
}

Deno.test("llmc oneshot --no-moe-calibrate-all-experts reaches the calibration", async () => {
  await withTempDir(async (dir) => {
    const base = MOE_QUANT_SPECS.qwen3_moe;
    const src = await writeMoeModel(
      { ...base, layers: 1, moe: { ...base.moe!, unrouted: [6] } },
      `${dir}/model`,
    );
    const lines: string[] = [];
    const { error, warn, log } = console;
    console.error = (...a: unknown[]) => lines.push(a.join(" "));
    console.warn = (...a: unknown[]) => lines.push(a.join(" "));
    console.log = () => {};
    let code: number;
    try {
      code = await command.run([
        "--model",
        src,
        "--recipe",
        `${ROOT}recipes/qwen3_moe_w4a16_gptq.yaml`,
        "--dataset",
        CALIB,
        "--num-calibration-samples",
        "4",
        "--max-seq-length",
        "64",
        "--no-moe-calibrate-all-experts",
        // Warnings reach the console through the progress renderer ("none" drops them).
        "--progress",
        "json",
        "--output-dir",
        `${dir}/out`,
      ]);
    } finally {
      Object.assign(console, { error, warn, log });
    }
    assertEquals(code, 0, lines.join("\n"));
    assert(
      lines.some((l) =>
        l.includes('"type":"warning"') &&
        l.includes("model.layers.0.mlp.experts.6.down_proj: no calibration token was routed")
      ),
      lines.join("\n"),
    );
  });
});
