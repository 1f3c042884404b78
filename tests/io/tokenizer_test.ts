import assert from "node:assert/strict";
import { loadTokenizer, TokenizerError } from "../../src/io/tokenizer.ts";
import { SafetensorsFile } from "../../src/io/safetensors_read.ts";
import { SHARED_DIR } from "../_shared.ts";
import { STORIES_DIR, withTempDir } from "./_helpers.ts";

const LILY = "Once upon a time, there was a little girl named Lily.";
const LILY_IDS = [403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426];

Deno.test("stories260K: encode, decode and special tokens", async () => {
  const tok = await loadTokenizer(STORIES_DIR);
  assert.deepEqual(tok.encode(LILY, { addSpecialTokens: false }), LILY_IDS);
  assert.deepEqual(tok.encode(LILY), [1, ...LILY_IDS]); // the post-processor adds BOS
  assert.equal(tok.decode(LILY_IDS), LILY);
  assert.equal(tok.decode([1, ...LILY_IDS, 2], { skipSpecialTokens: true }), LILY);
  assert.equal(tok.decode([1, ...LILY_IDS, 2]), `<s> ${LILY}</s>`);
  assert.equal(tok.bosId, 1);
  assert.equal(tok.eosId, 2);
  assert.equal(tok.vocabSize, 512);
});

Deno.test("stories260K: golden ids_a is BOS + the first 200 characters of the eval text", async () => {
  const tok = await loadTokenizer(STORIES_DIR);
  const golden = JSON.parse(await Deno.readTextFile(`${SHARED_DIR}golden/stories260K_golden.json`));
  const evalText = await Deno.readTextFile(`${SHARED_DIR}data/tinystories_eval.txt`);
  const first200 = evalText.slice(0, 200);
  assert.equal(golden.first_200_chars, first200);
  const f = await SafetensorsFile.open(`${SHARED_DIR}golden/stories260K_golden.safetensors`);
  try {
    const ids = Array.from(await f.readTyped("ids_a") as BigInt64Array, Number);
    assert.deepEqual([1, ...tok.encode(first200, { addSpecialTokens: false })], ids);
    assert.equal(tok.decode(ids.slice(1)), first200);
  } finally {
    f.close();
  }
});

Deno.test("missing or invalid tokenizer files name the file", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(loadTokenizer(dir), (e) => {
      assert.ok(e instanceof TokenizerError);
      assert.equal(e.file, `${dir}/tokenizer.json`);
      assert.match(e.message, /does not exist/);
      return true;
    });
    await Deno.writeTextFile(`${dir}/tokenizer.json`, "{not json");
    await assert.rejects(loadTokenizer(dir), /tokenizer\.json: is not valid JSON/);
    await Deno.writeTextFile(`${dir}/tokenizer.json`, "[]");
    await assert.rejects(loadTokenizer(dir), /tokenizer\.json: is not a JSON object/);
    await Deno.writeTextFile(`${dir}/tokenizer.json`, '{"model": {"type": "Nonsense"}}');
    await assert.rejects(
      loadTokenizer(dir),
      (e) => e instanceof TokenizerError && e.file === `${dir}/tokenizer.json`,
    );
    await Deno.copyFile(`${STORIES_DIR}/tokenizer.json`, `${dir}/tokenizer.json`);
    await Deno.writeTextFile(`${dir}/tokenizer_config.json`, "{");
    await assert.rejects(loadTokenizer(dir), /tokenizer_config\.json: is not valid JSON/);
  });
});

Deno.test("special tokens come from special_tokens_map.json when the config lacks them", async () => {
  await withTempDir(async (dir) => {
    await Deno.copyFile(`${STORIES_DIR}/tokenizer.json`, `${dir}/tokenizer.json`);
    const none = await loadTokenizer(dir);
    assert.equal(none.bosId, null);
    assert.equal(none.eosId, null);
    await Deno.writeTextFile(
      `${dir}/special_tokens_map.json`,
      JSON.stringify({ bos_token: { content: "<s>" }, eos_token: "</s>" }),
    );
    const t = await loadTokenizer(dir);
    assert.equal(t.bosId, 1);
    assert.equal(t.eosId, 2);
  });
});

Deno.test("newlineCutIsExact: true for stories260K, false where a merge or pre-tokenizer crosses a newline", async () => {
  assert.equal((await loadTokenizer(STORIES_DIR)).newlineCutIsExact, true);
  const json = JSON.parse(await Deno.readTextFile(`${STORIES_DIR}/tokenizer.json`));
  const text = "Tom ran.\nOnce upon a time.";
  const variants: Array<[string, (j: typeof json) => void]> = [
    // A merge of "\n" with the next letter: the prefix through the newline
    // really does encode differently from the whole text's start.
    ["a merge across the newline", (j) => {
      j.model.vocab["\n"] = 512;
      j.model.vocab["\nO"] = 513;
      j.model.merges.unshift(["\n", "O"]);
    }],
    ["a pre-tokenizer", (j) => j.pre_tokenizer = { type: "Whitespace" }],
    [
      "a regex normalizer",
      (j) =>
        j.normalizer.normalizers.push({
          type: "Replace",
          pattern: { Regex: "\\s+" },
          content: " ",
        }),
    ],
    ["a left-stripping added token", (j) => j.added_tokens[2].lstrip = true],
    ["ignore_merges", (j) => j.model.ignore_merges = true],
  ];
  for (const [what, mutate] of variants) {
    await withTempDir(async (dir) => {
      const copy = structuredClone(json);
      mutate(copy);
      await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(copy));
      const tok = await loadTokenizer(dir);
      assert.equal(tok.newlineCutIsExact, false, what);
      if (what === "a merge across the newline") {
        const whole = tok.encode(text, { addSpecialTokens: false });
        const prefix = tok.encode(text.slice(0, text.indexOf("\n") + 1), {
          addSpecialTokens: false,
        });
        assert.notDeepEqual(whole.slice(0, prefix.length), prefix);
      }
    });
  }
});

Deno.test("newlineCutIsExact: false when tokenizer_config.json or a normalizer's string makes the cut inexact", async () => {
  // A tiny BPE with no pre-tokenizer whose only merge is "a" + " ".
  const base = {
    version: "1.0",
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: null,
    post_processor: null,
    decoder: null,
    model: {
      type: "BPE",
      vocab: { a: 0, b: 1, " ": 2, "a ": 3, "\n": 4, c: 5, d: 6 },
      merges: [["a", " "]],
    },
  };
  const cases: Array<[string, Record<string, unknown>, Record<string, unknown>, string]> = [
    // remove_space (read by the tokenizer library from tokenizer_config.json)
    // trims the prefix's newline and turns the whole text's into a space that merges.
    ["remove_space", {}, { remove_space: true }, "a\nb"],
    // String.replaceAll reads "$'" in a Replace content as the text after the match.
    [
      "a Replace content with $'",
      { normalizer: { type: "Replace", pattern: { String: "b" }, content: "$'" } },
      {},
      "ab\ncd",
    ],
    // A normalized added token's content is normalized too: with a newline
    // prepended it matches across the cut ("\nab" in "\nx\nab").
    [
      "a Prepend with a newline",
      {
        normalizer: { type: "Prepend", prepend: "\n" },
        added_tokens: [{ id: 9, content: "ab", normalized: true, special: false }],
        model: { ...base.model, vocab: { ...base.model.vocab, x: 8, ab: 9 } },
      },
      {},
      "x\nab",
    ],
    // The tokenizer library appends continuing_subword_suffix to every token
    // of a word but its last, and the prefix's last token is not the whole text's.
    [
      "continuing_subword_suffix",
      {
        model: {
          ...base.model,
          vocab: { ...base.model.vocab, "a@@": 7, "\n@@": 8 },
          merges: [],
          continuing_subword_suffix: "@@",
        },
      },
      {},
      "a\nb",
    ],
  ];
  for (const [what, patch, cfg, text] of cases) {
    await withTempDir(async (dir) => {
      await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify({ ...base, ...patch }));
      await Deno.writeTextFile(`${dir}/tokenizer_config.json`, JSON.stringify(cfg));
      const tok = await loadTokenizer(dir);
      const whole = tok.encode(text, { addSpecialTokens: false });
      const prefix = tok.encode(text.slice(0, text.indexOf("\n") + 1), { addSpecialTokens: false });
      assert.notDeepEqual(
        whole.slice(0, prefix.length),
        prefix,
        `${what}: the cut really is inexact`,
      );
      assert.equal(tok.newlineCutIsExact, false, what);
    });
  }
});
