/**
 * AWQ's cached parent inputs (the MLP half's inputs h + attn(h), o_proj's
 * and down_proj's inputs) and its reference outputs live on the run's
 * `--max-activation-memory` budget: with
 * a budget of 0 bytes they spill to files in a temporary folder of the
 * layer's sub-graph while the grid search runs, the checkpoint is byte for
 * byte the in-memory run's, and the folder is gone after the layer — also
 * when the run fails in the middle of the grid search.
 */

import assert from "node:assert/strict";
import type { GraphEvent, ModuleMetricEvent } from "../../src/graph/events.ts";
import { oneshot } from "../../src/oneshot.ts";
import { CALIB, STORIES, withTempDir } from "../quality/_quality.ts";

const AWQ = `quant_stage:
  quant_modifiers:
    AWQModifier:
      ignore: [lm_head]
      n_grid: 4
      config_groups:
        group_0:
          weights: {num_bits: 4, type: int, symmetric: false, strategy: channel}
          targets: [Linear]
`;

/** The sub-graph spill folders under a run's work folder, with the files in each. */
function subgraphFolders(out: string): Map<string, string[]> {
  const graph = `${out}.tmp-llmc/graph`;
  const found = new Map<string, string[]>();
  for (const e of Deno.readDirSync(graph)) {
    if (!e.isDirectory || !e.name.startsWith("llmc-subgraph-")) continue;
    found.set(e.name, [...Deno.readDirSync(`${graph}/${e.name}`)].map((f) => f.name));
  }
  return found;
}

async function sameBytes(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([Deno.readFile(a), Deno.readFile(b)]);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

Deno.test({
  name: "AWQ's parent inputs spill beyond --max-activation-memory; same bytes; folder removed",
  sanitizeResources: false,
  async fn() {
    await withTempDir(async (dir) => {
      const run = (out: string, extra: Record<string, unknown> = {}) =>
        oneshot({
          model: STORIES,
          recipe: AWQ,
          dataset: CALIB,
          numCalibrationSamples: 4,
          maxSeqLength: 32,
          engine: "cpu",
          outputDir: out,
          onWarning: () => {},
          ...extra,
        });
      const inMemory: ModuleMetricEvent[] = [];
      await run(`${dir}/a`, {
        onEvent: (e: GraphEvent) => {
          if (e.type === "module_metric" && e.errorKind === "parent_output_mse") inMemory.push(e);
        },
      });
      const spilled: string[] = [];
      const leftAfterLayer: number[] = [];
      const spilledMetrics: ModuleMetricEvent[] = [];
      await run(`${dir}/b`, {
        maxActivationBytesInMemory: 0,
        onEvent: (e: GraphEvent) => {
          if (e.type === "module_metric" && e.errorKind === "parent_output_mse") {
            spilledMetrics.push(e);
            // The MLP half's inputs stay cached for the rest of the layer's mappings.
            if (e.module.endsWith(".mlp")) {
              for (const files of subgraphFolders(`${dir}/b`).values()) {
                spilled.push(...files.filter((f) => f.endsWith(".f32")));
              }
            }
          }
          if (e.type === "layer_done") leftAfterLayer.push(subgraphFolders(`${dir}/b`).size);
        },
      });
      // The MLP half's inputs, and up_proj → down_proj's (down_proj's inputs, kept for it: on
      // 4 × 32 tokens its losses cost less on them than on their Gram matrix).
      assert.ok(spilled.some((f) => f.startsWith("mlp-in")), `spilled: ${spilled}`);
      assert.ok(spilled.some((f) => f.startsWith("awq-in")), `spilled: ${spilled}`);
      assert.ok(leftAfterLayer.length > 0 && leftAfterLayer.every((n) => n === 0));
      for (const f of ["model.safetensors", "config.json", "recipe.yaml"]) {
        assert.ok(await sameBytes(`${dir}/a/${f}`, `${dir}/b/${f}`), f);
      }
      // recipe.yaml records the inferred mappings, as upstream's initialize sets them.
      assert.match(
        await Deno.readTextFile(`${dir}/a/recipe.yaml`),
        /mappings:\n\s+- smooth_layer: re:\.\*input_layernorm\$\n/,
      );
      // Per smoothed parent: AWQ's output MSE and round-to-nearest's, the same either way.
      assert.equal(spilledMetrics.length, inMemory.length);
      assert.ok(inMemory.length > 0);
      inMemory.forEach((m, i) => {
        const s = spilledMetrics[i];
        assert.equal(s.module, m.module);
        assert.equal(s.error, m.error);
        assert.equal(s.rtnOutputError, m.rtnOutputError);
        // The metrics stream carries AWQ's output MSE next to RTN's (the grid's identity
        // point) and the chosen grid point: the identity exactly when AWQ found nothing better.
        assert.ok(m.outputError! <= m.rtnOutputError!, `${m.module}: AWQ worse than RTN`);
        const identity = m.awqGridPoint!.ratio === 0 && !m.awqGridPoint!.duoScaling;
        assert.equal(identity, m.outputError === m.rtnOutputError, m.module);
      });

      // A failure in the middle of a layer's grid search still removes its spill folder.
      let seen = false;
      await assert.rejects(
        run(`${dir}/c`, {
          maxActivationBytesInMemory: 0,
          onEvent: (e: GraphEvent) => {
            if (e.type === "module_metric" && e.module.endsWith(".mlp")) {
              seen = subgraphFolders(`${dir}/c`).size > 0;
              throw new Error("stop here");
            }
          },
        }),
        /stop here/,
      );
      assert.ok(seen, "the spill folder existed when the run failed");
      assert.equal(subgraphFolders(`${dir}/c`).size, 0);
    });
  },
});
