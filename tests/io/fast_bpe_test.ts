// installFastBpe (src/io/_fast_bpe.ts) gives @huggingface/tokenizers' own BPE result, token for
// token: on the real stories260K tokenizer over real text, and on random merge tables (duplicate
// pairs, merges whose result is another merge's symbol, characters no merge mentions) over random
// words, against a second instance that keeps the library's loop.

import assert from "node:assert/strict";
import { Tokenizer } from "@huggingface/tokenizers";
import { installFastBpe } from "../../src/io/_fast_bpe.ts";

const SHARED = new URL("../../../shared/", import.meta.url);
const STORIES = new URL("models/stories260K/", SHARED);

type Json = Record<string, unknown>;
type Model = { bpe(token: string): string[]; clear_cache(): void };

function pair(json: Json): { ref: Model; fast: Model; refTok: Tokenizer; fastTok: Tokenizer } {
  const refTok = new Tokenizer(json, {});
  const fastTok = new Tokenizer(json, {});
  const fast = (fastTok as unknown as { model: Model }).model;
  assert.equal(installFastBpe(fast), true);
  return { ref: (refTok as unknown as { model: Model }).model, fast, refTok, fastTok };
}

/** A deterministic generator (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("fast BPE: the library's ids for the real tokenizer on real and odd text", async () => {
  const json = JSON.parse(await Deno.readTextFile(new URL("tokenizer.json", STORIES)));
  const { refTok, fastTok } = pair(json);
  const calib = await Deno.readTextFile(new URL("data/tinystories_calib.txt", SHARED));
  const texts = [
    calib.slice(0, 60_000),
    "",
    "a",
    "  leading spaces and trailing  \n\n\tTabs\r\nCRLF",
    "émoji 🙂👩‍👩‍👧 CJK 漢字 combining e\u0301 and <s> </s> <unk> literals",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "the the the the then there their thee",
  ];
  for (const text of texts) {
    const want = refTok.encode(text, { add_special_tokens: true }).ids;
    const got = fastTok.encode(text, { add_special_tokens: true }).ids;
    assert.deepEqual(got, want, JSON.stringify(text.slice(0, 40)));
  }
});

Deno.test("fast BPE: random merge tables and words give the library's merges", async () => {
  const base = JSON.parse(await Deno.readTextFile(new URL("tokenizer.json", STORIES)));
  const alphabet = ["a", "b", "c", "d", "▁", "é", "🙂"];
  for (let seed = 1; seed <= 40; seed++) {
    const rand = rng(seed);
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)];
    const symbols = [...alphabet];
    const merges: [string, string][] = [];
    const count = 5 + Math.floor(rand() * 60);
    for (let i = 0; i < count; i++) {
      // Sometimes a pair listed again (the library keeps its last rank).
      const m: [string, string] = merges.length > 0 && rand() < 0.1
        ? [...pick(merges)]
        : [pick(symbols), pick(symbols)];
      merges.push(m);
      if (!symbols.includes(m[0] + m[1])) symbols.push(m[0] + m[1]);
    }
    const vocab: Record<string, number> = { "<unk>": 0 };
    for (const s of symbols) vocab[s] ??= Object.keys(vocab).length;
    const json = {
      ...base,
      added_tokens: [],
      normalizer: null,
      pre_tokenizer: null,
      post_processor: null,
      model: { ...base.model, vocab, merges, byte_fallback: false },
    };
    const { ref, fast } = pair(json);
    // "x" is in no merge and no vocabulary entry.
    const letters = [...alphabet, "x"];
    for (let w = 0; w < 60; w++) {
      const length = Math.floor(rand() * (w < 50 ? 40 : 600));
      const word = Array.from({ length }, () => pick(letters)).join("");
      ref.clear_cache();
      fast.clear_cache();
      assert.deepEqual(fast.bpe(word), ref.bpe(word), `seed ${seed}, word ${JSON.stringify(word)}`);
    }
  }
});

Deno.test("fast BPE: left alone where the loop would differ or the model is not BPE", async () => {
  const base = JSON.parse(await Deno.readTextFile(new URL("tokenizer.json", STORIES)));
  const suffixed = new Tokenizer({
    ...base,
    model: { ...base.model, continuing_subword_suffix: "##" },
  }, {});
  const model = (suffixed as unknown as { model: { bpe: unknown } }).model;
  const before = model.bpe;
  assert.equal(installFastBpe(model), false);
  assert.equal(model.bpe, before);
  assert.equal(installFastBpe(null), false);
  assert.equal(installFastBpe({ merges: [["a", "b"]] }), false);
  assert.equal(
    installFastBpe({ bpe: () => [], bpe_ranks: new Map(), merges: [["a", "b", "c"]] }),
    false,
  );
});

Deno.test("fast BPE: merge lists in the old string form, and a string among pairs", async () => {
  const base = JSON.parse(await Deno.readTextFile(new URL("tokenizer.json", STORIES)));
  const vocab = { "<unk>": 0, a: 1, b: 2, c: 3, ab: 4, bc: 5, abc: 6 };
  const forms = [
    ["a b", "ab c", "b c"],
    [["b", "c"], "a b", ["a", "bc"]],
  ];
  for (const merges of forms) {
    const json = {
      ...base,
      added_tokens: [],
      normalizer: null,
      pre_tokenizer: null,
      post_processor: null,
      model: { ...base.model, vocab, merges, byte_fallback: false },
    };
    const { ref, fast } = pair(json);
    for (const word of ["abc", "aabbcc", "cba", "abcabc", "bcab"]) {
      assert.deepEqual(fast.bpe(word), ref.bpe(word), `${JSON.stringify(merges)}: ${word}`);
    }
  }
});

Deno.test("fast BPE: random text over the real tokenizer's pieces, and long runs of one character", async () => {
  const json = JSON.parse(await Deno.readTextFile(new URL("tokenizer.json", STORIES)));
  const { refTok, fastTok, ref, fast } = pair(json);
  const pieces = Object.keys(json.model.vocab);
  // Every character of the vocabulary, and some no piece holds (a lone surrogate among them).
  const chars = [...new Set(pieces.flatMap((p) => Array.from(p)))];
  chars.push("🙂", "é", "\u0301", "\ud800", "x", " ", "\n", "\t");
  const rand = rng(7);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)];
  const texts: string[] = [];
  for (let t = 0; t < 60; t++) {
    // Past the library's 256-character cache limit for some.
    const length = Math.floor(rand() * (t < 50 ? 120 : 700));
    texts.push(Array.from({ length }, () => rand() < 0.3 ? pick(pieces) : pick(chars)).join(""));
  }
  for (const c of ["a", "▁", " ", "e", "🙂", "\n"]) {
    for (const n of [2, 3, 255, 256, 257, 1000]) texts.push(c.repeat(n));
  }
  for (const text of texts) {
    ref.clear_cache();
    fast.clear_cache();
    const want = refTok.encode(text, { add_special_tokens: true }).ids;
    assert.deepEqual(
      fastTok.encode(text, { add_special_tokens: true }).ids,
      want,
      JSON.stringify(text.slice(0, 40)),
    );
    // Again from the cache the loop fills.
    assert.deepEqual(fastTok.encode(text, { add_special_tokens: true }).ids, want);
  }
});
