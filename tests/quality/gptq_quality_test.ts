/**
 * GPTQ W4A16 on stories260K (64 × 256 calibration tokens of
 * tinystories_calib.txt) against round-to-nearest with the same scheme,
 * both evaluated with the project's convention (40 × 256 windows of
 * tinystories_eval.txt, weights decompressed): channel-wise, and groups of
 * 32 on q/k/v/o/gate/up with down_proj (in_features 172) channel-wise.
 */

import assert from "node:assert/strict";
import { oneshot } from "../../src/oneshot.ts";
import {
  CALIB,
  evaluationWindows,
  STORIES,
  weightOnlyPerplexity,
  withTempDir,
} from "./_quality.ts";

const CHANNEL = `    group_0:
      weights: {num_bits: 4, type: int, symmetric: true, strategy: channel}
      targets: ["Linear"]
`;

const GROUP_32 = `    group_0:
      weights: {num_bits: 4, type: int, symmetric: true, strategy: group, group_size: 32}
      targets: ["re:.*(q|k|v|o|gate|up)_proj$"]
    group_1:
      weights: {num_bits: 4, type: int, symmetric: true, strategy: channel}
      targets: ["re:.*down_proj$"]
`;

function recipe(modifier: string, groups: string): string {
  return `quant_stage:\n  quant_modifiers:\n    ${modifier}:\n      ignore: ["lm_head"]\n` +
    `      config_groups:\n${groups.replace(/^/gm, "    ")}`;
}

async function compare(groups: string, label: string): Promise<void> {
  await withTempDir(async (dir) => {
    await oneshot({
      model: STORIES,
      recipe: recipe("QuantizationModifier", groups),
      outputDir: `${dir}/rtn`,
      onWarning: () => {},
    });
    await oneshot({
      model: STORIES,
      recipe: recipe("GPTQModifier", groups),
      outputDir: `${dir}/gptq`,
      dataset: CALIB,
      numCalibrationSamples: 64,
      maxSeqLength: 256,
      onWarning: () => {},
    });
    const windows = await evaluationWindows();
    const rtn = await weightOnlyPerplexity(`${dir}/rtn`, windows);
    const gptq = await weightOnlyPerplexity(`${dir}/gptq`, windows);
    console.log(
      `stories260K W4A16 ${label} (llvmpipe): RTN ppl ${rtn.toFixed(4)}, GPTQ ppl ${
        gptq.toFixed(4)
      }`,
    );
    assert.ok(gptq < rtn, `GPTQ ppl ${gptq} should be below RTN's ${rtn}`);
  });
}

Deno.test({
  name: "GPTQ W4A16 channel-wise: perplexity below round-to-nearest",
  sanitizeResources: false,
  fn: () => compare(CHANNEL, "channel"),
});

Deno.test({
  name: "GPTQ W4A16 groups of 32 (down_proj channel-wise): perplexity below round-to-nearest",
  sanitizeResources: false,
  fn: () => compare(GROUP_32, "group 32 + down_proj channel"),
});
