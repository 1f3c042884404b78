// loadEvaluationWindows (src/data/evaluation_windows.ts): with a tokenizer whose newline cut is
// provably exact it encodes only a prefix, and its windows are exactly those of the whole file's
// ids; too few tokens still name the file's whole count.

import assert from "node:assert/strict";
import { loadEvaluationWindows } from "../../src/data/evaluation_windows.ts";
import { tokenWindows } from "../../src/data/token_windows.ts";
import { loadTokenizer } from "../../src/io/tokenizer.ts";
import { DatasetError } from "../../src/data/dataset_error.ts";

const SHARED = new URL("../../../shared/", import.meta.url);
const EVAL = new URL("data/tinystories_eval.txt", SHARED).pathname;

Deno.test("evaluation windows: a prefix's windows equal the whole file's", async () => {
  const tokenizer = await loadTokenizer(new URL("models/stories260K", SHARED).pathname);
  assert.equal(tokenizer.newlineCutIsExact, true);
  let encoded = 0;
  const counting = {
    ...tokenizer,
    encode: (text: string, options?: { addSpecialTokens?: boolean }) => {
      encoded += text.length;
      return tokenizer.encode(text, options);
    },
  };
  const text = await Deno.readTextFile(EVAL);
  const all = tokenizer.encode(text, { addSpecialTokens: false });
  for (const [seqLen, windows] of [[256, 40], [17, 3], [2, 1], [128, 200]]) {
    encoded = 0;
    const got = await loadEvaluationWindows({ path: EVAL, tokenizer: counting, seqLen, windows });
    assert.deepEqual(
      got,
      tokenWindows(all, seqLen, tokenizer.bosId, windows),
      `${seqLen}×${windows}`,
    );
    assert.ok(encoded < text.length / 2, `${seqLen}×${windows}: ${encoded} characters encoded`);
  }
  // Asking for more windows than the file holds: the whole file, and its count in the error.
  const per = 255;
  const tooMany = Math.floor(all.length / per) + 1;
  await assert.rejects(
    () => loadEvaluationWindows({ path: EVAL, tokenizer: counting, seqLen: 256, windows: tooMany }),
    (e) => e instanceof DatasetError && e.message.includes(`${all.length} tokens make only`),
  );
});
