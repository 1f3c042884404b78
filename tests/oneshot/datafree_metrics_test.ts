/**
 * Data-free round-to-nearest reports per-module metrics on the event stream,
 * as the calibrated pipelines do: the relative weight error ‖W−Ŵ‖²/‖W‖² of
 * each quantized Linear, checked here against the written checkpoint.
 */

import assert from "node:assert/strict";
import { STORIES, withTempDir } from "./_helpers.ts";
import { CompressedCheckpoint } from "../../src/compress/compressed_checkpoint.ts";
import type { GraphEvent, ModuleMetricEvent } from "../../src/graph/events.ts";
import { HfModel } from "../../src/io/hf_model.ts";
import { oneshot } from "../../src/oneshot.ts";

const LINEARS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

Deno.test("data-free RTN emits one relative-weight-MSE metric per quantized Linear", async () => {
  await withTempDir(async (dir) => {
    const events: GraphEvent[] = [];
    const result = await oneshot({
      model: STORIES,
      scheme: "W8A16",
      ignore: ["lm_head"],
      outputDir: `${dir}/out`,
      onEvent: (e) => events.push(e),
      onWarning: () => {},
    });
    assert.equal(result.pipeline, "datafree");
    const model = await HfModel.open(STORIES);
    const ckpt = await CompressedCheckpoint.open(`${dir}/out`);
    try {
      const layers = model.config.numHiddenLayers;
      const metrics = events.filter((e): e is ModuleMetricEvent => e.type === "module_metric");
      const expected = Array.from(
        { length: layers },
        (_, k) =>
          LINEARS.map((p) =>
            `model.layers.${k}.${
              p.startsWith("g") || p.startsWith("u") || p.startsWith("d") ? "mlp" : "self_attn"
            }.${p}`
          ),
      ).flat();
      assert.deepEqual(metrics.map((m) => m.module).sort(), [...expected].sort());
      for (const m of metrics) {
        assert.equal(m.errorKind, "relative_weight_mse");
        assert.equal(m.modifier, "QuantizationModifier");
        assert.equal(m.layer, Number(/layers\.(\d+)\./.exec(m.module)![1]));
        // The error of the weights as written, recomputed from the two checkpoints.
        const w = await model.readF32(`${m.module}.weight`);
        const q = await ckpt.readF32(`${m.module}.weight`);
        let num = 0, den = 0;
        for (let i = 0; i < w.length; i++) {
          num += (w[i] - q[i]) ** 2;
          den += w[i] ** 2;
        }
        assert.ok(m.error! > 0 && m.error! < 1e-3, `${m.module}: error ${m.error}`);
        assert.ok(
          Math.abs(m.error! - num / den) <= 1e-6 * (num / den),
          `${m.module}: reported ${m.error}, checkpoint gives ${num / den}`,
        );
      }
      // A layer's metrics come before its layer_done event.
      for (let k = 0; k < layers; k++) {
        const done = events.findIndex((e) => e.type === "layer_done" && e.layer === k);
        const last = events.findLastIndex((e) => e.type === "module_metric" && e.layer === k);
        assert.ok(done > last, `layer ${k}: layer_done at ${done}, last metric at ${last}`);
      }
    } finally {
      ckpt.close();
      model.close();
    }
  });
});
