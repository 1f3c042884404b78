/**
 * Reading llm-compressor's own checkpoints back as dense weights: the
 * perplexity of each decompressed reference checkpoint must reproduce the
 * value llm-compressor's decompression gave (../shared/golden/README.md).
 */

import { testEngine } from "../_engines.ts";
import assert from "node:assert/strict";

function assertClose(actual: number, expected: number, tol: number): void {
  assert.ok(Math.abs(actual - expected) <= tol, `expected ${expected} ± ${tol}, got ${actual}`);
}
import { CompressedCheckpoint } from "../../src/compress/compressed_checkpoint.ts";
import { loadEvaluationWindows } from "../../src/data/evaluation_windows.ts";
import { perplexity } from "../../src/data/perplexity.ts";
import { loadTokenizer } from "../../src/io/tokenizer.ts";
import { DecoderModel } from "../../src/model/decoder_model.ts";

const SHARED = new URL("../../../shared/", import.meta.url).pathname;
const MODEL = `${SHARED}models/stories260K`;

// Reference perplexities from ../shared/golden/README.md. The NVFP4 value was
// measured after compressed-tensors decompressed to bfloat16; llmc
// decompresses to float32, which moves it by about 0.04%, hence its wider bound.
const CASES: Array<[string, number, number]> = [
  ["a_rtn_w4a16_channel", 9.1939, 2e-4],
  ["a2_rtn_w4a16_asym_channel", 8.5202, 2e-4],
  ["k_w8a16", 7.7571, 2e-4],
  ["e_fp8_dynamic", 7.8197, 2e-4],
  ["g1b_nvfp4a16_skipdown", 8.5410, 1e-3],
];

Deno.test("decompressed llm-compressor checkpoints reproduce their reference perplexity", async (t) => {
  const tokenizer = await loadTokenizer(MODEL);
  const windows = await loadEvaluationWindows({
    path: `${SHARED}data/tinystories_eval.txt`,
    tokenizer,
    seqLen: 256,
    windows: 40,
  });
  for (const [folder, expected, relTol] of CASES) {
    await t.step(folder, async () => {
      const ckpt = await CompressedCheckpoint.open(`${SHARED}reference/${folder}`);
      assert(ckpt.isCompressed, "the reference checkpoint is stored compressed");
      const model = await DecoderModel.load(ckpt, await testEngine("webgpu"));
      try {
        const { ppl, tokens } = await perplexity(model, windows);
        assert.equal(tokens, 10200);
        assertClose(ppl, expected, expected * relTol);
      } finally {
        model.close();
        ckpt.close();
      }
    });
  }
});

Deno.test("an uncompressed model passes through unchanged", async () => {
  const ckpt = await CompressedCheckpoint.open(MODEL);
  try {
    assert(!ckpt.isCompressed);
    const name = "model.layers.0.self_attn.q_proj.weight";
    assert(ckpt.has(name));
    assert.equal(ckpt.config.hiddenSize, 64);
    assert.equal((await ckpt.readF32(name)).length, 64 * 64);
  } finally {
    ckpt.close();
  }
});

Deno.test("a compressed module's weight is decompressed to its dense shape", async () => {
  const ckpt = await CompressedCheckpoint.open(`${SHARED}reference/a_rtn_w4a16_channel`);
  try {
    const name = "model.layers.2.mlp.down_proj.weight";
    assert(ckpt.has(name), "weight is visible though stored as weight_packed");
    const w = await ckpt.readF32(name);
    assert.equal(w.length, 64 * 172);
    // int4 symmetric channel: every row takes at most 16 distinct values.
    const row = new Set(w.subarray(0, 172));
    assert(row.size <= 16, `row 0 has ${row.size} distinct values`);
  } finally {
    ckpt.close();
  }
});
