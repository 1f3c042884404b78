/**
 * `--resume` of a SparseGPT run: the layers an earlier run finished are not
 * rewritten, yet the `sparsity_config` (§1.2.7) must count them — its
 * global_sparsity and its targets are the same as an uninterrupted run's.
 * The interruption is an exception thrown from the event callback once
 * layer 2 is committed, which leaves the work folder as a killed process
 * would (tests/graph/resume_test.ts covers real signals).
 */

import assert from "node:assert/strict";
import { HfModel } from "../../src/io/hf_model.ts";
import { oneshot } from "../../src/oneshot.ts";
import { CALIB, SPARSE_24, STORIES, withTempDir } from "./_quality.ts";

class Interrupted extends Error {}

async function sparsityConfig(dir: string): Promise<Record<string, unknown>> {
  const m = await HfModel.open(dir);
  try {
    return (m.config.raw.quantization_config as Record<string, Record<string, unknown>>)
      .sparsity_config;
  } finally {
    m.close();
  }
}

Deno.test({
  name: "SparseGPT --resume: sparsity_config counts the layers finished before the interruption",
  sanitizeResources: false,
  async fn() {
    await withTempDir(async (dir) => {
      const run = {
        model: STORIES,
        recipe: SPARSE_24,
        dataset: CALIB,
        numCalibrationSamples: 8,
        maxSeqLength: 128,
        onWarning: () => {},
      };
      await oneshot({ ...run, outputDir: `${dir}/whole` });
      await assert.rejects(
        oneshot({
          ...run,
          outputDir: `${dir}/out`,
          onEvent: (e) => {
            if (e.type === "layer_done" && e.layer === 2) throw new Interrupted("stop");
          },
        }),
        Interrupted,
      );
      const resumed = await oneshot({ ...run, outputDir: `${dir}/out`, resume: true });
      assert.deepEqual(resumed.resumedLayers, [0, 1, 2]);
      const whole = await sparsityConfig(`${dir}/whole`);
      const out = await sparsityConfig(`${dir}/out`);
      assert.equal(whole.format, "sparse-24-bitmask");
      assert.deepEqual(whole.targets, ["Linear"]);
      assert.ok((whole.global_sparsity as number) > 0.2);
      assert.deepEqual(out, whole);
    });
  },
});
