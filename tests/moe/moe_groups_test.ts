/**
 * A layer's experts processed in groups (`maxExpertBytes`, CLI
 * `--max-expert-memory`) write the same checkpoint, byte for byte, as the
 * whole-layer path: the sparse block's sum continues from group to group in
 * the same order, each group's Hessians see the same inputs. The groups are
 * smaller than the expert count and uneven (8 experts in groups of 3), and
 * the qwen2_moe model has a shared expert (summed first).
 */

import type { EngineKind } from "../../src/engine/engine.ts";
import type { GraphEvent, ProgressEvent } from "../../src/graph/events.ts";
import { expertGroups } from "../../src/graph/expert_groups.ts";
import { HfModel } from "../../src/io/hf_model.ts";
import { oneshot } from "../../src/oneshot.ts";
import { assert, assertEquals, assertThrows } from "../oneshot/_assert.ts";
import { listDir, withTempDir } from "../oneshot/_helpers.ts";
import { CALIB, MOE_QUANT_SPECS, writeMoeModel } from "./_moe.ts";

const RECIPE = `quant_stage:
  quant_modifiers:
    GPTQModifier:
      targets: [Linear]
      scheme: W4A16
      ignore: [lm_head, "re:.*mlp.gate$", "re:.*shared_expert_gate$"]
`;

/** Float32 bytes of `n` experts of a spec (gate, up, down). */
function expertBytes(spec: (typeof MOE_QUANT_SPECS)[string], n: number): number {
  const inter = spec.moe!.expertIntermediate ?? spec.intermediate;
  return n * 3 * spec.hidden * inter * 4;
}

async function run(model: string, out: string, engine: EngineKind, maxExpertBytes?: number) {
  const events: GraphEvent[] = [];
  await oneshot({
    model,
    recipe: RECIPE,
    outputDir: out,
    dataset: CALIB,
    numCalibrationSamples: 4,
    maxSeqLength: 48,
    tokensPerForward: 96,
    engine,
    maxExpertBytes,
    onEvent: (e) => events.push(e),
    onWarning: () => {},
  });
  // One propagation forward per group and layer, each reporting its start.
  const propagations = events.filter((e): e is ProgressEvent =>
    e.type === "progress" && e.phase === "propagate" && e.samplesDone === 0
  );
  return { events, propagations: propagations.length };
}

for (
  const [name, engine, perGroup] of [
    ["qwen3_moe", "cpu", 3],
    ["qwen2_moe", "webgpu", 1],
  ] as const
) {
  Deno.test(`${engine}: ${name} GPTQ W4A16 with experts in groups of ${perGroup} writes the whole-layer checkpoint byte for byte`, async () => {
    await withTempDir(async (dir) => {
      const spec = MOE_QUANT_SPECS[name];
      const model = await writeMoeModel(spec, `${dir}/model`);
      const budget = expertBytes(spec, perGroup);
      const hf = await HfModel.open(model);
      const config = hf.config;
      hf.close();
      const groups = expertGroups(config, 0, budget)!;
      const experts = spec.moe!.experts;
      assertEquals(groups.length, Math.ceil(experts / perGroup));
      assertEquals(groups.at(-1)!.end, experts);
      assertEquals(expertGroups(config, 0, expertBytes(spec, experts)), null, "all fit");

      const whole = await run(model, `${dir}/whole`, engine);
      const grouped = await run(model, `${dir}/grouped`, engine, budget);
      // The last layer's outputs feed nobody: one propagation per group in the first layer.
      assertEquals(whole.propagations, 1);
      assertEquals(grouped.propagations, groups.length, "the first layer ran in groups");

      const files = listDir(`${dir}/whole`);
      assertEquals(listDir(`${dir}/grouped`), files);
      assert(files.some((f) => f.endsWith(".safetensors")), files.join(", "));
      for (const f of files) {
        const a = await Deno.readFile(`${dir}/whole/${f}`);
        const b = await Deno.readFile(`${dir}/grouped/${f}`);
        assertEquals(b.length, a.length, `${f}: size`);
        assert(a.every((v, i) => v === b[i]), `${f}: bytes differ`);
      }
      // Every expert's metric arrives, the same as in the whole-layer run.
      const metrics = (r: typeof whole) =>
        new Map(
          r.events.filter((e) => e.type === "module_metric").map((
            e,
          ) => [e.module, JSON.stringify([e.error, e.outputError, e.expertTokens])]),
        );
      const [mw, mg] = [metrics(whole), metrics(grouped)];
      assertEquals(mg.size, mw.size);
      for (const [m, v] of mw) assertEquals(mg.get(m), v, m);
    });
  });
}

Deno.test("expert groups: a budget below one expert still makes groups of one; a bad budget is refused", async () => {
  await withTempDir(async (dir) => {
    const spec = MOE_QUANT_SPECS.mixtral;
    const hf = await HfModel.open(await writeMoeModel(spec, `${dir}/model`));
    const config = hf.config;
    hf.close();
    const groups = expertGroups(config, 1, 1)!;
    assertEquals(groups.map((g) => [g.start, g.end]), [[0, 1], [1, 2], [2, 3], [3, 4]]);
    assertThrows(() => expertGroups(config, 0, 0), RangeError, "positive");
  });
});
