import assert from "node:assert/strict";
import { LlmcError } from "../../src/errors.ts";
import { HfModel, HfModelError } from "../../src/io/hf_model.ts";
import {
  findDepthExcess,
  MAX_CONFIG_BYTES,
  MAX_JSON_DEPTH,
  nestsDeeperThan,
} from "../../src/io/json_limits.ts";
import { loadTokenizer, TokenizerError } from "../../src/io/tokenizer.ts";
import { writeSyntheticModel } from "../../src/model/synthetic_model.ts";
import { modelFreePtq } from "../../src/model_free/model_free_ptq.ts";
import { parsePythonJson, PythonJsonError } from "../../src/quant/python_json.ts";
import type { JsonValue } from "../../src/quant/python_json.ts";
import { stableStringify } from "../../src/quant/stable_stringify.ts";
import { withTempDir } from "./_helpers.ts";

const deep = (n: number) => "[".repeat(n) + "]".repeat(n);

Deno.test("findDepthExcess counts brackets outside strings only", () => {
  assert.equal(findDepthExcess('{"a": "[[[[[[", "b": [1]}', 2), null);
  assert.deepEqual(findDepthExcess('{"a":\n [[1]]}', 2), { depth: 3, offset: 8, line: 2 });
  assert.equal(findDepthExcess(deep(MAX_JSON_DEPTH), MAX_JSON_DEPTH), null);
  assert.equal(findDepthExcess(deep(MAX_JSON_DEPTH + 1), MAX_JSON_DEPTH)?.depth, 65);
  // Escaped quotes do not end a string.
  assert.equal(findDepthExcess('["\\"[[[["]', 1), null);
});

Deno.test("nestsDeeperThan is iterative and handles shared nodes", () => {
  let v: unknown = 1;
  for (let i = 0; i < 100_000; i++) v = [v];
  assert.ok(nestsDeeperThan(v, 64));
  const shared = { a: 1 };
  assert.ok(!nestsDeeperThan({ x: shared, y: [shared] }, 3));
});

Deno.test("a deeply nested config.json is refused when the model is opened, naming the file", async () => {
  const m = await writeSyntheticModel({
    modelType: "llama",
    hidden: 16,
    layers: 1,
    heads: 2,
    kvHeads: 1,
    intermediate: 32,
    vocab: 32,
    tied: true,
  });
  try {
    const path = `${m.dir}/config.json`;
    const cfg = JSON.parse(await Deno.readTextFile(path));
    const good = JSON.stringify(cfg);
    await Deno.writeTextFile(path, good.slice(0, -1) + `, "junk": ${deep(5000)}}`);
    await assert.rejects(HfModel.open(m.dir), (e) => {
      assert.ok(e instanceof HfModelError);
      assert.match(e.message, new RegExp(`^${path}: nests deeper than 64 levels`));
      return true;
    });
    // model-free PTQ reads config.json as text: refused before any output exists.
    const out = `${m.dir}-out`;
    await assert.rejects(modelFreePtq(m.dir, out, "FP8_DYNAMIC"), (e) => {
      assert.ok(e instanceof LlmcError);
      assert.match(e.message, new RegExp(`${path}: nests deeper than 64 levels`));
      return true;
    });
    await assert.rejects(Deno.stat(out), Deno.errors.NotFound);
    // Over the size limit: refused from the file's size, before it is read.
    await Deno.writeTextFile(
      path,
      good.slice(0, -1) + `, "pad": "${"x".repeat(MAX_CONFIG_BYTES)}"}`,
    );
    await assert.rejects(HfModel.open(m.dir), (e) => {
      assert.ok(e instanceof HfModelError);
      assert.match(
        e.message,
        new RegExp(`^${path}: is \\d+ bytes; the limit is ${MAX_CONFIG_BYTES}`),
      );
      return true;
    });
  } finally {
    await m.remove();
  }
});

Deno.test("tokenizer.json and its config get the same depth limit", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/tokenizer.json`, `{"model": ${deep(10_000)}}`);
    await assert.rejects(loadTokenizer(dir), (e) => {
      assert.ok(e instanceof TokenizerError);
      assert.match(e.message, /tokenizer\.json: nests deeper than 64 levels/);
      return true;
    });
  });
});

Deno.test("the config writers cannot overflow the stack on what the readers accept", () => {
  assert.throws(() => parsePythonJson(`{"a": ${deep(100_000)}}`, "config.json"), (e) => {
    assert.ok(e instanceof PythonJsonError);
    assert.match(e.message, /^config\.json: nests deeper than 64 levels/);
    return true;
  });
  // The deepest value a reader accepts round-trips.
  const ok = parsePythonJson(`{"a": ${deep(MAX_JSON_DEPTH - 1)}}`, "config.json");
  assert.equal(stableStringify(ok).split("\n").length, 2 * MAX_JSON_DEPTH - 1);
  // A value built in code that is far deeper gets a clear error, not a RangeError.
  let v: JsonValue = 1;
  for (let i = 0; i < 100_000; i++) v = [v];
  assert.throws(() => stableStringify(v), (e) => {
    assert.ok(e instanceof LlmcError);
    assert.match(e.message, /nested deeper than 1000 levels/);
    return true;
  });
});
