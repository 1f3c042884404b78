/**
 * The fuzz suite: seeded mutations of every input format llmc parses
 * (safetensors headers, config.json, tokenizer.json, recipes in YAML and
 * JSON with anchors and aliases, calibration datasets), a few thousand cases
 * per parser, and a replay of the corpus of cases that once failed
 * (`corpus/<target>/`). Every case must succeed or throw a project error
 * naming the input, within the memory budget (see `_fuzz.ts`). Bigger runs:
 * `deno task fuzz --cases 10000`.
 */

import assert from "node:assert/strict";
import { fuzzContext, fuzzTarget, replayCorpus, TARGETS } from "./_fuzz.ts";

/** Cases per target in CI; the parsers differ a lot in cost per case. */
const CASES: Record<string, number> = {
  "safetensors-header": 3000,
  "config.json": 2000,
  "tokenizer.json": 1000,
  "recipe": 1200,
  "recipe.json": 800,
  "dataset.jsonl": 2000,
  "dataset.txt": 400,
};
const SEED = 20261206;

const ctx = await fuzzContext();

for (const target of TARGETS) {
  Deno.test(`fuzz ${target.name}: corpus replay and ${CASES[target.name]} seeded cases`, async () => {
    const corpus = await replayCorpus(target, ctx);
    assert.deepEqual(corpus.failures, [], `corpus cases of ${target.name} fail`);
    const r = await fuzzTarget(target, CASES[target.name] ?? 1000, SEED, ctx);
    console.log(
      `${target.name}: ${corpus.files} corpus files; ${r.cases} cases, ${r.ok} ok, ` +
        `${r.projectErrors} project errors, max RSS growth ${(r.maxRssGrowth / 1e6).toFixed(0)} MB`,
    );
    assert.equal(r.cases, CASES[target.name] ?? 1000);
    assert.deepEqual(r.failures.slice(0, 3), [], `${r.failures.length} failing cases`);
    // A suite whose mutations never get past the parser tests nothing.
    assert.ok(r.ok > 0 && r.projectErrors > 0, "both outcomes occur");
  });
}

Deno.test("fuzz: scratch folder removed", async () => {
  await Deno.remove(ctx.dir, { recursive: true });
});
