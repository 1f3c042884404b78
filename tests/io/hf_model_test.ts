import assert from "node:assert/strict";
import { auxiliaryFiles, HfModel, HfModelError } from "../../src/io/hf_model.ts";
import { ModelConfigError } from "../../src/io/model_config.ts";
import { SafetensorsError } from "../../src/io/safetensors_read.ts";
import { writeSafetensors } from "../../src/io/safetensors_write.ts";
import type { DType } from "../../src/io/dtype.ts";
import { STORIES_DIR, withTempDir } from "./_helpers.ts";

const CONFIG = {
  model_type: "llama",
  hidden_size: 4,
  intermediate_size: 8,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  vocab_size: 3,
};

const u8 = (name: string, values: number[]) => ({
  name,
  dtype: "U8" as DType,
  shape: [values.length],
  data: new Uint8Array(values),
});

async function shardedFolder(dir: string, weightMap: Record<string, string>): Promise<void> {
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(CONFIG));
  await writeSafetensors(`${dir}/model-00001-of-00002.safetensors`, [
    u8("a", [1]),
    u8("b", [2, 3]),
  ]);
  await writeSafetensors(`${dir}/model-00002-of-00002.safetensors`, [u8("c", [4])]);
  await Deno.writeTextFile(
    `${dir}/model.safetensors.index.json`,
    JSON.stringify({ metadata: { total_size: 4 }, weight_map: weightMap }),
  );
}

Deno.test("HfModel opens stories260K", async () => {
  const m = await HfModel.open(STORIES_DIR);
  try {
    assert.equal(m.dir, STORIES_DIR);
    assert.equal(m.config.numHiddenLayers, 5);
    assert.equal(m.tensorNames().length, 47);
    assert.deepEqual(m.files(), [`${STORIES_DIR}/model.safetensors`]);
    const info = m.info("model.norm.weight");
    assert.equal(info.file, `${STORIES_DIR}/model.safetensors`);
    assert.deepEqual(info.shape, [64]);
    assert.equal((await m.readF32("model.norm.weight"))[0], 2.4583089351654053);
    assert.equal((await m.readRaw("model.norm.weight")).length, 256);
    assert.ok(!m.has("lm_head.weight"));
    assert.throws(() => m.info("lm_head.weight"), HfModelError);
    await assert.rejects(m.readF32("lm_head.weight"), /no tensor named 'lm_head.weight'/);
    await assert.rejects(m.readRaw("lm_head.weight"), HfModelError);
  } finally {
    m.close();
  }
});

Deno.test("HfModel reads a sharded folder through its index", async () => {
  await withTempDir(async (dir) => {
    await shardedFolder(dir, {
      a: "model-00001-of-00002.safetensors",
      b: "model-00001-of-00002.safetensors",
      c: "model-00002-of-00002.safetensors",
    });
    const m = await HfModel.open(dir);
    try {
      assert.deepEqual(m.tensorNames(), ["a", "b", "c"]);
      assert.equal(m.files().length, 2);
      assert.deepEqual(Array.from(await m.readF32("b")), [2, 3]);
      assert.deepEqual(Array.from(await m.readF32("c")), [4]);
      assert.equal(m.info("c").file, `${dir}/model-00002-of-00002.safetensors`);
    } finally {
      m.close();
    }
  });
});

Deno.test("HfModel: missing shard and an index naming a tensor its shard lacks", async () => {
  await withTempDir(async (dir) => {
    await shardedFolder(dir, {
      a: "model-00001-of-00002.safetensors",
      x: "model-00009-of-00009.safetensors",
    });
    await assert.rejects(HfModel.open(dir), (e) => {
      assert.ok(e instanceof HfModelError);
      assert.equal(e.file, `${dir}/model.safetensors.index.json`);
      assert.match(
        e.message,
        /names shard 'model-00009-of-00009.safetensors', but .*model-00009-of-00009.safetensors does not exist/,
      );
      return true;
    });
  });
  await withTempDir(async (dir) => {
    await shardedFolder(dir, {
      a: "model-00001-of-00002.safetensors",
      c: "model-00001-of-00002.safetensors",
    });
    await assert.rejects(HfModel.open(dir), (e) => {
      assert.ok(e instanceof HfModelError);
      assert.match(
        e.message,
        /index\.json: maps tensor 'c' to .*model-00001-of-00002\.safetensors, which has no such tensor/,
      );
      return true;
    });
  });
  await withTempDir(async (dir) => {
    await shardedFolder(dir, { a: "../model-00001-of-00002.safetensors" });
    await assert.rejects(HfModel.open(dir), /expected a file name in the same folder/);
    await Deno.writeTextFile(`${dir}/model.safetensors.index.json`, '{"metadata":{}}');
    await assert.rejects(HfModel.open(dir), /no 'weight_map'/);
    await Deno.writeTextFile(`${dir}/model.safetensors.index.json`, "{oops");
    await assert.rejects(
      HfModel.open(dir),
      (e) => e instanceof HfModelError && /index\.json: is not valid JSON/.test(e.message),
    );
  });
});

Deno.test("HfModel: missing config, invalid config, no weights, malformed weights", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(HfModel.open(dir), (e) => {
      assert.ok(e instanceof HfModelError);
      assert.equal(e.file, `${dir}/config.json`);
      assert.match(e.message, /does not exist/);
      return true;
    });
    await Deno.writeTextFile(
      `${dir}/config.json`,
      JSON.stringify({ ...CONFIG, model_type: "gpt2" }),
    );
    await assert.rejects(
      HfModel.open(dir),
      (e) => e instanceof ModelConfigError && /'gpt2' is not supported/.test(e.message),
    );
    const partial: Record<string, unknown> = { ...CONFIG };
    delete partial.vocab_size;
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(partial));
    await assert.rejects(
      HfModel.open(dir),
      (e) => e instanceof ModelConfigError && e.field === "vocab_size",
    );
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(CONFIG));
    await assert.rejects(
      HfModel.open(dir),
      /neither model.safetensors nor model.safetensors.index.json/,
    );
    await Deno.writeFile(`${dir}/model.safetensors`, new Uint8Array([1, 2, 3]));
    await assert.rejects(HfModel.open(dir), SafetensorsError);
  });
});

Deno.test("auxiliaryFiles lists tokenizer, generation and code files only", async () => {
  assert.deepEqual(auxiliaryFiles(STORIES_DIR), [
    `${STORIES_DIR}/generation_config.json`,
    `${STORIES_DIR}/tokenizer.json`,
    `${STORIES_DIR}/tokenizer_config.json`,
  ]);
  await withTempDir(async (dir) => {
    for (
      const f of [
        "config.json",
        "model.safetensors",
        "special_tokens_map.json",
        "tokenizer.model",
        "chat_template.jinja",
        "vocab.json",
        "merges.txt",
        "modeling_custom.py",
        "README.md",
        "model.safetensors.index.json",
      ]
    ) await Deno.writeTextFile(`${dir}/${f}`, "");
    await Deno.mkdir(`${dir}/sub.py`);
    assert.deepEqual(auxiliaryFiles(dir).map((p) => p.slice(dir.length + 1)), [
      "chat_template.jinja",
      "merges.txt",
      "modeling_custom.py",
      "special_tokens_map.json",
      "tokenizer.model",
      "vocab.json",
    ]);
  });
  assert.deepEqual(auxiliaryFiles("/nonexistent/llmc"), []);
});
