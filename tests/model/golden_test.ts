/**
 * stories260K against transformers' outputs (shared/golden): logits and every
 * hidden state through the layer-wise API, the CPU reference, and greedy
 * generation.
 */

import { HfModel } from "../../src/io/hf_model.ts";
import { SafetensorsFile } from "../../src/io/safetensors_read.ts";
import { loadTokenizer } from "../../src/io/tokenizer.ts";
import { DecoderModel } from "../../src/model/decoder_model.ts";
import { generate } from "../../src/model/generate.ts";
import { referenceForward } from "../../src/model/reference_forward.ts";
import { assertEquals, assertMaxAbs } from "./_assert.ts";
import { ENGINE_KINDS, readF32, testEngine } from "../_engines.ts";

const SHARED = new URL("../../../shared/", import.meta.url).pathname;
const MODEL_DIR = `${SHARED}models/stories260K`;
const GOLDEN = `${SHARED}golden/`;

async function goldenIds(golden: SafetensorsFile, name: string): Promise<Int32Array> {
  return Int32Array.from((await golden.readTyped(name)) as BigInt64Array, Number);
}

for (const kind of ENGINE_KINDS) {
  Deno.test(`${kind}: layer-wise forward matches transformers: logits and hidden states`, async () => {
    const golden = await SafetensorsFile.open(`${GOLDEN}stories260K_golden.safetensors`);
    const model = await DecoderModel.load(MODEL_DIR, await testEngine(kind));
    const read = (t: Parameters<typeof readF32>[1]) => readF32(model.engine, t);
    try {
      for (const s of ["a", "b", "c"]) {
        const ids = await goldenIds(golden, `ids_${s}`);
        let hidden = await model.embed(ids, 1, ids.length);
        assertMaxAbs(
          await read(hidden),
          await golden.readF32(`hidden_${s}_0`),
          1e-6,
          `${s}: embed`,
        );
        for (let k = 0; k < model.numLayers; k++) {
          const next = await model.runLayer(k, hidden);
          hidden.destroy();
          hidden = next;
          const name = k === model.numLayers - 1
            ? `hidden_${s}_${k + 1}_prenorm`
            : `hidden_${s}_${k + 1}`;
          assertMaxAbs(await read(hidden), await golden.readF32(name), 1e-4, `${s}: ${name}`);
        }
        const normed = await model.finalNorm(hidden);
        assertMaxAbs(
          await read(normed),
          await golden.readF32(`hidden_${s}_5`),
          1e-4,
          `${s}: norm`,
        );
        const logits = await model.head(hidden);
        assertMaxAbs(
          await read(logits),
          await golden.readF32(`logits_${s}`),
          1e-4,
          `${s}: logits`,
        );
        for (const t of [hidden, normed, logits]) t.destroy();
      }
    } finally {
      model.close();
      golden.close();
    }
  });

  Deno.test(`${kind}: forward() on a batch of the three sequences' common prefix equals per-sequence logits`, async () => {
    const golden = await SafetensorsFile.open(`${GOLDEN}stories260K_golden.safetensors`);
    const model = await DecoderModel.load(MODEL_DIR, await testEngine(kind));
    try {
      const T = 100;
      const seqs = await Promise.all(["a", "b", "c"].map((s) => goldenIds(golden, `ids_${s}`)));
      const ids = new Int32Array(3 * T);
      seqs.forEach((x, i) => ids.set(x.subarray(0, T), i * T));
      const logits = await model.forward(ids, 3);
      const V = model.config.vocabSize;
      for (const [i, s] of ["a", "b", "c"].entries()) {
        const expected = (await golden.readF32(`logits_${s}`)).subarray(0, T * V);
        assertMaxAbs(logits.subarray(i * T * V, (i + 1) * T * V), expected, 1e-4, `batched ${s}`);
      }
    } finally {
      model.close();
      golden.close();
    }
  });

  Deno.test(`${kind}: greedy generation of 64 tokens from BOS reproduces transformers`, async () => {
    const model = await DecoderModel.load(MODEL_DIR, await testEngine(kind));
    try {
      const expected: number[] = JSON.parse(
        await Deno.readTextFile(`${GOLDEN}stories260K_greedy64_ids.json`),
      );
      const ids = await generate(model, [1], { maxNewTokens: 64 });
      assertEquals(ids, expected);
      const tokenizer = await loadTokenizer(MODEL_DIR);
      // The file ends with one newline that the text itself does not have.
      const text = (await Deno.readTextFile(`${GOLDEN}stories260K_greedy64.txt`)).replace(
        /\n$/,
        "",
      );
      assertEquals(tokenizer.decode(ids, { skipSpecialTokens: true }), text);
    } finally {
      model.close();
    }
  });
}

Deno.test("the CPU reference forward matches transformers", async () => {
  const golden = await SafetensorsFile.open(`${GOLDEN}stories260K_golden.safetensors`);
  const hf = await HfModel.open(MODEL_DIR);
  try {
    const ids = await goldenIds(golden, "ids_a");
    const { logits, hidden, normed } = await referenceForward(hf, ids);
    assertMaxAbs(logits, await golden.readF32("logits_a"), 1e-4, "reference logits");
    assertMaxAbs(hidden[5], await golden.readF32("hidden_a_5_prenorm"), 1e-4, "reference prenorm");
    assertMaxAbs(normed, await golden.readF32("hidden_a_5"), 1e-4, "reference norm");
  } finally {
    hf.close();
    golden.close();
  }
});
