/**
 * Row-range reads: `SafetensorsFile.readRowsF32` and `HfModel.readRowsF32`
 * read only the rows asked for, convert them as readF32 does, and reject
 * rows outside the tensor with an error naming the file and the tensor.
 */

import assert from "node:assert/strict";
import { HfModel, HfModelError } from "../../src/io/hf_model.ts";
import { SafetensorsError, SafetensorsFile } from "../../src/io/safetensors_read.ts";
import { writeSafetensors } from "../../src/io/safetensors_write.ts";
import { f32ToBytes } from "../../src/io/tensor_bytes.ts";
import type { DType } from "../../src/io/dtype.ts";
import { seededRandom } from "../../src/model/seeded_random.ts";
import { STORIES_DIR, STORIES_FILE, withTempDir } from "./_helpers.ts";

const FLOAT_DTYPES: DType[] = ["F32", "F64", "F16", "BF16", "F8_E4M3", "F8_E5M2"];

/** Values in ±2 that every float dtype holds some rounding of (no F8 overflow). */
function values(n: number, seed: number): Float32Array {
  const random = seededRandom(seed);
  return Float32Array.from({ length: n }, () => (random() - 0.5) * 4);
}

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.slice().buffer));

Deno.test("readRowsF32 equals the rows of readF32, for every float dtype and rank", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/m.safetensors`;
    const shapes: Record<string, number[]> = { m: [7, 5], t: [6, 2, 3], v: [9] };
    const tensors = FLOAT_DTYPES.flatMap((dtype, d) =>
      Object.entries(shapes).map(([kind, shape], k) => ({
        name: `${kind}_${dtype}`,
        dtype,
        shape,
        data: f32ToBytes(dtype, values(shape.reduce((a, b) => a * b, 1), 10 * d + k)),
      }))
    );
    await writeSafetensors(path, tensors);
    const f = await SafetensorsFile.open(path);
    try {
      for (const { name, shape } of tensors) {
        const whole = await f.readF32(name);
        const row = whole.length / shape[0];
        for (const [row0, rows] of [[0, shape[0]], [0, 1], [2, 3], [shape[0] - 1, 1], [4, 0]]) {
          const got = await f.readRowsF32(name, row0, rows);
          assert.ok(got instanceof Float32Array);
          assert.deepEqual(
            bits(got),
            bits(whole.slice(row0 * row, (row0 + rows) * row)),
            `${name} rows ${row0}+${rows}`,
          );
        }
      }
      // Concurrent row reads share the one handle without mixing their bytes.
      const whole = await f.readF32("m_BF16");
      const blocks = await Promise.all(
        [0, 1, 2, 3, 4, 5, 6].map((r) => f.readRowsF32("m_BF16", r, 1)),
      );
      assert.deepEqual(bits(Float32Array.from(blocks.flatMap((b) => [...b]))), bits(whole));
    } finally {
      f.close();
    }
  });
});

Deno.test("readRowsF32 rejects rows outside the tensor, naming the file and the tensor", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/m.safetensors`;
    await writeSafetensors(path, [
      { name: "w", dtype: "F16", shape: [4, 3], data: f32ToBytes("F16", values(12, 1)) },
      { name: "s", dtype: "F32", shape: [], data: f32ToBytes("F32", values(1, 2)) },
    ]);
    const f = await SafetensorsFile.open(path);
    try {
      for (const [row0, rows] of [[3, 2], [4, 1], [-1, 1], [0, -1], [0.5, 1], [0, 1.5], [NaN, 1]]) {
        await assert.rejects(f.readRowsF32("w", row0, rows), (e: Error) => {
          assert.ok(e instanceof SafetensorsError, String(e));
          assert.equal(e.file, path);
          assert.match(e.message, /tensor 'w' \[4,3\]: .* not within its 4 rows/);
          return true;
        });
      }
      await assert.rejects(f.readRowsF32("s", 0, 1), /tensor 's' is a scalar: it has no rows/);
      await assert.rejects(f.readRowsF32("nope", 0, 1), /no tensor named 'nope'/);
      assert.deepEqual(Array.from(await f.readRowsF32("w", 4, 0)), []);
    } finally {
      f.close();
    }
    await assert.rejects(f.readRowsF32("w", 0, 1), /read of 'w' after close\(\)/);

    // A file cut short after opening: the error names the tensor.
    const g = await SafetensorsFile.open(path);
    try {
      const { byteOffset } = g.info("w");
      await Deno.truncate(path, byteOffset + 2 * 3 * 2 + 1);
      assert.equal((await g.readRowsF32("w", 1, 1)).length, 3);
      await assert.rejects(g.readRowsF32("w", 2, 1), /file ended .* tensor 'w'/);
    } finally {
      g.close();
    }
  });
});

Deno.test("HfModel.readRowsF32 reads from the shard that holds the tensor", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(
      `${dir}/config.json`,
      JSON.stringify({
        model_type: "llama",
        hidden_size: 4,
        intermediate_size: 8,
        num_hidden_layers: 1,
        num_attention_heads: 2,
        vocab_size: 6,
      }),
    );
    const embed = values(24, 3);
    await writeSafetensors(`${dir}/model-00001-of-00002.safetensors`, [
      {
        name: "model.norm.weight",
        dtype: "F32",
        shape: [4],
        data: f32ToBytes("F32", values(4, 4)),
      },
    ]);
    await writeSafetensors(`${dir}/model-00002-of-00002.safetensors`, [
      {
        name: "model.embed_tokens.weight",
        dtype: "BF16",
        shape: [6, 4],
        data: f32ToBytes("BF16", embed),
      },
    ]);
    await Deno.writeTextFile(
      `${dir}/model.safetensors.index.json`,
      JSON.stringify({
        weight_map: {
          "model.norm.weight": "model-00001-of-00002.safetensors",
          "model.embed_tokens.weight": "model-00002-of-00002.safetensors",
        },
      }),
    );
    const m = await HfModel.open(dir);
    try {
      const whole = await m.readF32("model.embed_tokens.weight");
      assert.deepEqual(
        bits(await m.readRowsF32("model.embed_tokens.weight", 2, 3)),
        bits(whole.slice(8, 20)),
      );
      await assert.rejects(m.readRowsF32("lm_head.weight", 0, 1), HfModelError);
      await assert.rejects(
        m.readRowsF32("model.embed_tokens.weight", 5, 2),
        (e: Error) =>
          e instanceof SafetensorsError && e.file === `${dir}/model-00002-of-00002.safetensors` &&
          e.message.includes("tensor 'model.embed_tokens.weight' [6,4]"),
      );
    } finally {
      m.close();
    }
  });
});

Deno.test("stories260K: embedding rows read alone equal the whole table's", async () => {
  const m = await HfModel.open(STORIES_DIR);
  const f = await SafetensorsFile.open(STORIES_FILE);
  try {
    const name = "model.embed_tokens.weight"; // [512, 64] F32
    const whole = await f.readF32(name);
    assert.deepEqual(bits(await m.readRowsF32(name, 100, 7)), bits(whole.slice(6400, 6848)));
    assert.deepEqual(bits(await m.readRowsF32(name, 511, 1)), bits(whole.slice(511 * 64)));
  } finally {
    m.close();
    f.close();
  }
});
