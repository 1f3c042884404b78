/**
 * AWQ's grid search on one 4096-wide decoder layer (a synthetic Llama layer
 * of Llama-2-7B's shape: hidden 4096, 32 heads without GQA so every mapping
 * applies, intermediate 11008), W4A16 asymmetric channel-wise, `n_grid` 20:
 * the time of each smoothed parent's grid search (all candidates batched
 * through the engine, one read-back per parent) and of the whole layer.
 *
 * ```sh
 * deno run -A bench/awq_layer_bench.ts [--samples 2] [--seq-len 128] [--engine auto]
 * ```
 *
 * Prints a table and one JSON line.
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { EngineChoice } from "../src/engine/choose.ts";
import type { GraphEvent } from "../src/graph/events.ts";
import { writeSyntheticModel } from "../src/model/synthetic_model.ts";
import { oneshot } from "../src/oneshot.ts";

const SHARED = decodeURIComponent(new URL("../../shared/", import.meta.url).pathname);
const RECIPE = `quant_stage:
  quant_modifiers:
    AWQModifier:
      ignore: [lm_head]
      config_groups:
        group_0:
          weights: {num_bits: 4, type: int, symmetric: false, strategy: channel}
          targets: [Linear]
`;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    samples: { type: "string", default: "2" },
    "seq-len": { type: "string", default: "128" },
    engine: { type: "string", default: "auto" },
  },
});

const dir = await Deno.makeTempDir({ prefix: "llmc-awq-layer-bench-" });
try {
  const model = `${dir}/model`;
  await Deno.mkdir(model);
  await writeSyntheticModel({
    modelType: "llama",
    hidden: 4096,
    layers: 1,
    heads: 32,
    kvHeads: 32,
    intermediate: 11008,
    vocab: 512,
    tied: true,
    seed: 7,
  }, model);
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
    await Deno.copyFile(`${SHARED}models/stories260K/${f}`, `${model}/${f}`);
  }
  const parents: { module: string; seconds: number; awq: number; rtn: number }[] = [];
  let layerSeconds = 0;
  let engine = "";
  const t0 = performance.now();
  await oneshot({
    model,
    recipe: RECIPE,
    dataset: `${SHARED}data/tinystories_calib.txt`,
    numCalibrationSamples: Number(values.samples),
    maxSeqLength: Number(values["seq-len"]),
    engine: values.engine as EngineChoice,
    outputDir: `${dir}/out`,
    onWarning: () => {},
    onEvent: (e: GraphEvent) => {
      if (e.type === "engine") engine = `${e.engine} (${e.reason})`;
      if (e.type === "module_metric" && e.errorKind === "parent_output_mse") {
        parents.push({
          module: e.module,
          seconds: e.seconds,
          awq: e.outputError ?? NaN,
          rtn: e.rtnOutputError ?? NaN,
        });
        console.error(`${e.module}: ${e.seconds.toFixed(1)} s`);
      }
      if (e.type === "layer_done" && !e.skipped) layerSeconds += e.seconds;
    },
  });
  const total = (performance.now() - t0) / 1000;
  console.log(
    `\nAWQ grid search (n_grid 20, W4A16 asym channel) on one 4096/11008 layer, ` +
      `${values.samples} × ${values["seq-len"]} tokens, engine: ${engine}`,
  );
  console.log("| parent | grid search | AWQ / RTN output error |");
  console.log("|---|---:|---:|");
  for (const p of parents) {
    console.log(`| ${p.module} | ${p.seconds.toFixed(1)} s | ${(p.awq / p.rtn).toFixed(3)} |`);
  }
  console.log(
    `| whole layer (calibration, grid, RTN, propagation) | ${layerSeconds.toFixed(1)} s | |`,
  );
  console.log(`oneshot total: ${total.toFixed(1)} s`);
  console.log(JSON.stringify({
    bench: "awq_layer",
    hidden: 4096,
    intermediate: 11008,
    tokens: Number(values.samples) * Number(values["seq-len"]),
    engine,
    parents,
    layerSeconds,
    totalSeconds: total,
  }));
} finally {
  await Deno.remove(dir, { recursive: true });
}
