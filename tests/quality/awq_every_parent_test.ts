/**
 * AWQ with `duo_scaling: "both"` (upstream's option that splits the grid
 * between the plain and the duo formula, so the same number of candidates
 * as the default) on stories260K, 64 × 256 calibration tokens: W4A16
 * asymmetric channel-wise lowers every smoothed parent's output error below
 * round-to-nearest's with the same scheme (metrics stream, strictly), and
 * perplexity stays ≤ 8.64. With the default grid one parent (layer 1's MLP)
 * keeps the identity point, i.e. ties RTN (see awq_quality_test.ts).
 */

import assert from "node:assert/strict";
import type { GraphEvent } from "../../src/graph/events.ts";
import { oneshot } from "../../src/oneshot.ts";
import {
  awqChannelAsym,
  awqParentMetrics,
  CALIB,
  evaluationWindows,
  STORIES,
  weightOnlyPerplexity,
  withTempDir,
} from "./_quality.ts";

const AWQ_BOTH = awqChannelAsym("duo_scaling: both");

Deno.test({
  name: "AWQ duo_scaling both, W4A16 asym channel: every parent's output error below RTN's",
  sanitizeResources: false,
  async fn() {
    await withTempDir(async (dir) => {
      const events: GraphEvent[] = [];
      await oneshot({
        model: STORIES,
        recipe: AWQ_BOTH,
        outputDir: `${dir}/awq`,
        dataset: CALIB,
        numCalibrationSamples: 64,
        maxSeqLength: 256,
        onWarning: () => {},
        onEvent: (e) => events.push(e),
      });
      const metrics = awqParentMetrics(events);
      assert.equal(metrics.length, 15);
      for (const m of metrics) {
        const p = m.awqGridPoint!;
        console.log(
          `  ${m.module}: AWQ / RTN output MSE ${(m.outputError! / m.rtnOutputError!).toFixed(4)}` +
            ` (grid point ${p.ratio.toFixed(3)}${p.duoScaling ? " duo" : ""})`,
        );
        assert.ok(
          m.outputError! < m.rtnOutputError!,
          `${m.module}: AWQ ${m.outputError} not below RTN ${m.rtnOutputError}`,
        );
      }
      const ppl = await weightOnlyPerplexity(`${dir}/awq`, await evaluationWindows());
      console.log(`stories260K AWQ (duo_scaling both) W4A16 asym channel: ppl ${ppl.toFixed(4)}`);
      assert.ok(ppl <= 8.64, `ppl ${ppl}`);
    });
  },
});
