/**
 * `oneshot({ returnModel: true })` hands back the compressed model for
 * immediate evaluation: the same numbers as loading the written checkpoint,
 * without reading it back (the test removes the output before evaluating).
 */

import assert from "node:assert/strict";
import { STORIES, withTempDir } from "./_helpers.ts";
import { SHARED_DIR } from "../_shared.ts";
import { CompressedCheckpoint } from "../../src/compress/compressed_checkpoint.ts";
import { loadEvaluationWindows } from "../../src/data/evaluation_windows.ts";
import { perplexity } from "../../src/data/perplexity.ts";
import { loadTokenizer } from "../../src/io/tokenizer.ts";
import { DecoderModel } from "../../src/model/decoder_model.ts";
import { oneshot, type OneshotOptions } from "../../src/oneshot.ts";
import { GPTQModifier } from "../../src/recipe/constructors.ts";

const tokenizer = await loadTokenizer(STORIES);
const windows = await loadEvaluationWindows({
  path: `${SHARED_DIR}data/tinystories_eval.txt`,
  tokenizer,
  seqLen: 64,
  windows: 6,
});

async function pplOf(model: DecoderModel): Promise<number> {
  return (await perplexity(model, windows)).nllSum;
}

async function pplOfFolder(dir: string): Promise<number> {
  const checkpoint = await CompressedCheckpoint.open(dir);
  const model = await DecoderModel.load(checkpoint);
  try {
    return await pplOf(model);
  } finally {
    model.close();
    checkpoint.close();
  }
}

const cases: [string, Omit<OneshotOptions, "outputDir">][] = [
  ["data-free RTN W8A16", { model: STORIES, scheme: "W8A16", ignore: ["lm_head"] }],
  ["calibrated GPTQ W8A16", {
    model: STORIES,
    recipe: [GPTQModifier({ targets: "Linear", scheme: "W8A16", ignore: ["lm_head"] })],
    dataset: `${SHARED_DIR}data/tinystories_calib.txt`,
    numCalibrationSamples: 4,
    maxSeqLength: 64,
  }],
];

for (const [name, options] of cases) {
  Deno.test(`${name}: returnModel gives the written model without reading it back`, async () => {
    await withTempDir(async (dir) => {
      const out = `${dir}/out`;
      const result = await oneshot({
        ...options,
        outputDir: out,
        returnModel: true,
        onWarning: () => {},
      });
      assert.ok(result.model instanceof DecoderModel);
      const fromDisk = await pplOfFolder(out);
      const original = await pplOfFolder(STORIES);
      // The output is gone: the in-memory model cannot be reading it.
      await Deno.remove(out, { recursive: true });
      try {
        const inMemory = await pplOf(result.model!);
        assert.equal(inMemory, fromDisk, "in-memory and on-disk NLL differ");
        assert.notEqual(inMemory, original, "the in-memory model is not the compressed one");
      } finally {
        result.model!.close();
      }
    });
  });
}

Deno.test("without returnModel the result carries no model", async () => {
  await withTempDir(async (dir) => {
    const result = await oneshot({
      model: STORIES,
      scheme: "W8A16",
      ignore: ["lm_head"],
      outputDir: `${dir}/out`,
      onWarning: () => {},
    });
    assert.equal(result.model, null);
  });
});

Deno.test("DecoderModel.load closes a handed-in source with the model only when asked", async () => {
  for (const closeSource of [false, true]) {
    const checkpoint = await CompressedCheckpoint.open(STORIES);
    let closed = 0;
    const close = checkpoint.close.bind(checkpoint);
    checkpoint.close = () => {
      closed++;
      close();
    };
    const model = await DecoderModel.load(checkpoint, undefined, { closeSource });
    model.close();
    assert.equal(closed, closeSource ? 1 : 0, `closeSource ${closeSource}`);
    if (!closeSource) checkpoint.close();
  }
});
