import assert from "node:assert/strict";
import { DTYPE_BYTES, DTYPES } from "../../src/io/dtype.ts";
import type { DType } from "../../src/io/dtype.ts";
import { SafetensorsError, SafetensorsFile } from "../../src/io/safetensors_read.ts";
import {
  ShardedSafetensorsWriter,
  writePlannedSafetensors,
  writeSafetensors,
} from "../../src/io/safetensors_write.ts";
import type { TensorToWrite } from "../../src/io/safetensors_write.ts";
import { HfModel } from "../../src/io/hf_model.ts";
import { CompressionError } from "../../src/compress/errors.ts";
import { seededRandom } from "../../src/model/seeded_random.ts";
import { STORIES_DIR, withTempDir } from "./_helpers.ts";

function randomBytes(n: number, next: () => number): Uint8Array {
  return Uint8Array.from({ length: n }, () => Math.floor(next() * 256));
}

function tensorsOfEveryDtype(seed: number): TensorToWrite[] {
  const next = seededRandom(seed);
  // Odd shapes so offsets land on every alignment.
  return DTYPES.map((dtype, i) => {
    const shape = [1 + (i % 3), 3 + i];
    const n = shape[0] * shape[1] * DTYPE_BYTES[dtype];
    const data = randomBytes(n, next);
    if (dtype === "BOOL") data.forEach((b, k) => (data[k] = b & 1));
    return { name: `t.${dtype}`, dtype, shape, data };
  });
}

Deno.test("writeSafetensors round trip for every dtype, aligned, with metadata", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/all.safetensors`;
    const tensors = tensorsOfEveryDtype(1);
    await writeSafetensors(path, tensors, { metadata: { note: "x" } });
    const bytes = await Deno.readFile(path);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal((8 + n) % 8, 0, "data section starts 8-byte aligned");
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    assert.match(text, /^\{"__metadata__":\{"format":"pt","note":"x"\}/);
    assert.match(text, / *$/);
    const f = await SafetensorsFile.open(path);
    try {
      assert.deepEqual(f.metadata, { format: "pt", note: "x" });
      assert.deepEqual(f.names(), tensors.map((t) => t.name)); // laid out in the given order
      for (const t of tensors) {
        const info = f.info(t.name);
        assert.equal(info.dtype, t.dtype);
        assert.deepEqual(info.shape, t.shape);
        assert.deepEqual(await f.readRaw(t.name), t.data, t.name);
      }
    } finally {
      f.close();
    }
    // The header JSON matches what the reference writer would emit for the same layout.
    const parsed = JSON.parse(text);
    let off = 0;
    for (const t of tensors) {
      assert.deepEqual(parsed[t.name].data_offsets, [off, off + t.data.length]);
      off += t.data.length;
    }
  });
});

Deno.test("writeSafetensors: default metadata, empty tensors and an empty file", async () => {
  await withTempDir(async (dir) => {
    await writeSafetensors(`${dir}/a.safetensors`, [
      { name: "z", dtype: "F32", shape: [0, 4], data: new Uint8Array(0) },
      { name: "s", dtype: "F64", shape: [], data: new Uint8Array(8).fill(0x3f, 6) },
    ]);
    const f = await SafetensorsFile.open(`${dir}/a.safetensors`);
    assert.deepEqual(f.metadata, { format: "pt" });
    assert.deepEqual(f.info("s").shape, []);
    assert.equal((await f.readF32("z")).length, 0);
    f.close();
    await writeSafetensors(`${dir}/e.safetensors`, []);
    const e = await SafetensorsFile.open(`${dir}/e.safetensors`);
    assert.deepEqual(e.names(), []);
    e.close();
  });
});

Deno.test("writeSafetensors refuses to overwrite unless asked", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/x.safetensors`;
    const one = [{ name: "a", dtype: "U8" as DType, shape: [1], data: new Uint8Array([1]) }];
    const two = [{ name: "a", dtype: "U8" as DType, shape: [1], data: new Uint8Array([2]) }];
    await writeSafetensors(path, one);
    await assert.rejects(writeSafetensors(path, two), (e) => {
      assert.ok(e instanceof SafetensorsError);
      assert.match(e.message, /already exists/);
      return true;
    });
    let f = await SafetensorsFile.open(path);
    assert.deepEqual(Array.from(await f.readTyped("a") as Uint8Array), [1]);
    f.close();
    await writeSafetensors(path, two, { overwrite: true });
    f = await SafetensorsFile.open(path);
    assert.deepEqual(Array.from(await f.readTyped("a") as Uint8Array), [2]);
    f.close();
  });
});

Deno.test("writeSafetensors rejects bad tensors before writing anything", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/bad.safetensors`;
    const cases: Array<[TensorToWrite[], RegExp]> = [
      [
        [{ name: "a", dtype: "F32", shape: [2], data: new Uint8Array(4) }],
        /tensor 'a'.*needs 8 bytes, got 4/,
      ],
      [
        [{ name: "a", dtype: "Q4" as DType, shape: [1], data: new Uint8Array(1) }],
        /tensor 'a': dtype/,
      ],
      [[{ name: "a", dtype: "U8", shape: [-1], data: new Uint8Array(0) }], /tensor 'a': shape/],
      [
        [{ name: "__metadata__", dtype: "U8", shape: [1], data: new Uint8Array(1) }],
        /non-empty name/,
      ],
      [[
        { name: "a", dtype: "U8", shape: [1], data: new Uint8Array(1) },
        { name: "a", dtype: "U8", shape: [1], data: new Uint8Array(1) },
      ], /tensor 'a' is given twice/],
    ];
    for (const [tensors, pattern] of cases) {
      await assert.rejects(writeSafetensors(path, tensors), (e) => {
        assert.ok(e instanceof SafetensorsError, String(e));
        assert.match(e.message, pattern);
        return true;
      });
    }
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  });
});

Deno.test("writeSafetensors is atomic: a failure midway leaves no file, old or temporary", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/m.safetensors`;
    let reads = 0;
    const good = new Uint8Array(1 << 20);
    // A source that fails while its bytes are being written, after the header.
    const failing = {
      name: "late",
      dtype: "U8" as DType,
      shape: [4],
      get data(): Uint8Array {
        if (++reads > 3) throw new Error("producer failed");
        return new Uint8Array(4);
      },
    };
    await assert.rejects(
      writeSafetensors(path, [
        { name: "big", dtype: "U8", shape: [good.length], data: good },
        failing,
      ]),
      (e) => e instanceof SafetensorsError && /producer failed/.test(e.message),
    );
    assert.ok(reads > 3, "the failure happened during the write, not in validation");
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), []);
    // With overwrite, the old file survives a failed replacement.
    await writeSafetensors(path, [{
      name: "a",
      dtype: "U8",
      shape: [1],
      data: new Uint8Array([9]),
    }]);
    reads = 0;
    await assert.rejects(writeSafetensors(path, [failing], { overwrite: true }));
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["m.safetensors"]);
    const f = await SafetensorsFile.open(path);
    assert.deepEqual(Array.from(await f.readTyped("a") as Uint8Array), [9]);
    f.close();
  });
});

async function writeStoriesSharded(dir: string, maxShardBytes: number) {
  const src = await HfModel.open(STORIES_DIR);
  const w = new ShardedSafetensorsWriter(dir, { maxShardBytes });
  try {
    for (const name of src.tensorNames()) {
      const info = src.info(name);
      await w.add(name, info.dtype, info.shape, await src.readRaw(name));
    }
    return { result: await w.finish(), src };
  } catch (e) {
    src.close();
    await w.abort();
    throw e;
  }
}

Deno.test("ShardedSafetensorsWriter: stories260K in shards of ≤ 200 kB, read back via HfModel", async () => {
  await withTempDir(async (dir) => {
    const { result, src } = await writeStoriesSharded(dir, 200_000);
    try {
      const n = result.files.length;
      assert.ok(n > 1);
      const names = result.files.map((f) => f.slice(dir.length + 1));
      assert.deepEqual(
        names,
        Array.from(
          { length: n },
          (_, k) =>
            `model-${String(k + 1).padStart(5, "0")}-of-${String(n).padStart(5, "0")}.safetensors`,
        ),
      );
      assert.equal(result.totalSize, 1040128); // the stories260K data section
      const index = JSON.parse(await Deno.readTextFile(`${dir}/model.safetensors.index.json`));
      assert.deepEqual(index.metadata, { total_size: 1040128 });
      assert.deepEqual(index.weight_map, result.weightMap);
      assert.deepEqual(Object.keys(index.weight_map), Object.keys(index.weight_map).sort());
      // No shard over the bound unless a single tensor is bigger than it.
      for (const f of result.files) {
        const sf = await SafetensorsFile.open(f);
        const bytes = sf.names().reduce((a, t) => a + sf.info(t).byteLength, 0);
        assert.ok(bytes <= 200_000 || sf.names().length === 1, `${f}: ${bytes}`);
        sf.close();
      }
      // No spill files left behind.
      const left = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
      assert.deepEqual(left, [...names, "model.safetensors.index.json"].sort());

      await Deno.copyFile(`${STORIES_DIR}/config.json`, `${dir}/config.json`);
      const m = await HfModel.open(dir);
      try {
        assert.deepEqual(m.tensorNames().sort(), src.tensorNames().sort());
        assert.equal(m.files().length, n);
        for (const name of src.tensorNames()) {
          assert.deepEqual(await m.readF32(name), await src.readF32(name), name);
          assert.equal(m.info(name).file.slice(dir.length + 1), result.weightMap[name]);
        }
      } finally {
        m.close();
      }
    } finally {
      src.close();
    }
  });
});

Deno.test("ShardedSafetensorsWriter: one shard is model.safetensors without an index", async () => {
  await withTempDir(async (dir) => {
    const { result, src } = await writeStoriesSharded(dir, 5e9);
    src.close();
    assert.deepEqual(result.files, [`${dir}/model.safetensors`]);
    assert.equal(result.indexFile, null);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["model.safetensors"]);
    // Byte-identical data section to the source (same order, same bytes).
    const ours = await Deno.readFile(`${dir}/model.safetensors`);
    const theirs = await Deno.readFile(`${STORIES_DIR}/model.safetensors`);
    const n1 = Number(new DataView(ours.buffer).getBigUint64(0, true));
    const n2 = Number(new DataView(theirs.buffer).getBigUint64(0, true));
    assert.deepEqual(ours.subarray(8 + n1), theirs.subarray(8 + n2));
  });
});

Deno.test("ShardedSafetensorsWriter: a shard starts when the next tensor would exceed the bound", async () => {
  await withTempDir(async (dir) => {
    const w = new ShardedSafetensorsWriter(dir, { maxShardBytes: 10 });
    await w.add("a", "U8", [6], new Uint8Array(6).fill(1));
    await w.add("b", "U8", [4], new Uint8Array(4).fill(2)); // 10: still fits
    await w.add("c", "U8", [1], new Uint8Array(1).fill(3)); // 11: new shard
    await w.add("d", "U8", [20], new Uint8Array(20).fill(4)); // too big alone: own shard
    // transformers' rule: a non-empty shard at or past the bound starts a new one.
    await w.add("e", "U8", [0], new Uint8Array(0));
    const r = await w.finish();
    assert.equal(r.files.length, 4);
    assert.deepEqual(r.weightMap, {
      a: "model-00001-of-00004.safetensors",
      b: "model-00001-of-00004.safetensors",
      c: "model-00002-of-00004.safetensors",
      d: "model-00003-of-00004.safetensors",
      e: "model-00004-of-00004.safetensors",
    });
    assert.equal(r.totalSize, 31);
    const f = await SafetensorsFile.open(r.files[2]);
    assert.deepEqual(f.metadata, { format: "pt" });
    assert.deepEqual(Array.from(await f.readTyped("d") as Uint8Array), new Array(20).fill(4));
    f.close();
    await assert.rejects(w.add("f", "U8", [1], new Uint8Array(1)), /done/);
  });
});

Deno.test("ShardedSafetensorsWriter: duplicates, bad tensors and abort", async () => {
  await withTempDir(async (dir) => {
    const w = new ShardedSafetensorsWriter(dir, { maxShardBytes: 4 });
    await w.add("a", "U8", [4], new Uint8Array(4));
    await w.add("b", "U8", [4], new Uint8Array(4));
    await assert.rejects(w.add("a", "U8", [1], new Uint8Array(1)), (e) => {
      assert.ok(e instanceof SafetensorsError);
      assert.match(e.message, /tensor 'a' was already added/);
      return true;
    });
    await assert.rejects(w.add("c", "F32", [2], new Uint8Array(4)), /needs 8 bytes/);
    assert.ok([...Deno.readDirSync(dir)].length > 0, "spill files exist while open");
    await w.abort();
    assert.deepEqual([...Deno.readDirSync(dir)], []);
    await assert.rejects(w.finish(), /aborted/);
  });
  assert.throws(() => new ShardedSafetensorsWriter("x", { maxShardBytes: 0 }), SafetensorsError);
});

Deno.test("ShardedSafetensorsWriter: a failing finish cleans up after itself", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/model-00002-of-00002.safetensors`, "in the way");
    const w = new ShardedSafetensorsWriter(dir, { maxShardBytes: 1 });
    await w.add("a", "U8", [1], new Uint8Array(1));
    await w.add("b", "U8", [1], new Uint8Array(1));
    await assert.rejects(w.finish(), /already exists/);
    const left = [...Deno.readDirSync(dir)].map((e) => e.name);
    assert.deepEqual(left, ["model-00002-of-00002.safetensors"]);
  });
});

Deno.test("ShardedSafetensorsWriter: concurrent add() calls are serialised", async () => {
  await withTempDir(async (dir) => {
    const w = new ShardedSafetensorsWriter(dir, { maxShardBytes: 64 });
    const next = seededRandom(3);
    const tensors = Array.from({ length: 40 }, (_, i) => ({
      name: `t${i}`,
      data: randomBytes(1 + (i % 13), next),
    }));
    await Promise.all(tensors.map((t) => w.add(t.name, "U8", [t.data.length], t.data)));
    const r = await w.finish();
    for (const t of tensors) {
      const f = await SafetensorsFile.open(`${dir}/${r.weightMap[t.name]}`);
      assert.deepEqual(await f.readRaw(t.name), t.data, t.name);
      f.close();
    }
  });
});

/** Every file of a folder, name → bytes. */
async function folderBytes(dir: string): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (const e of [...Deno.readDirSync(dir)].sort((a, b) => a.name.localeCompare(b.name))) {
    out.set(e.name, await Deno.readFile(`${dir}/${e.name}`));
  }
  return out;
}

Deno.test("writePlannedSafetensors writes the files ShardedSafetensorsWriter writes", async () => {
  await withTempDir(async (dir) => {
    const next = seededRandom(7);
    // Small tensors gathered in the write buffer, one larger than the buffer
    // (4 MiB), empty ones, every dtype.
    const tensors: TensorToWrite[] = [
      ...tensorsOfEveryDtype(2),
      { name: "big", dtype: "U8", shape: [5 << 20], data: new Uint8Array(5 << 20).fill(7) },
      { name: "empty", dtype: "F32", shape: [0, 3], data: new Uint8Array(0) },
      { name: "small", dtype: "I32", shape: [3], data: randomBytes(12, next) },
    ];
    for (const maxShardBytes of [1, 100, 3 << 20, 5e9]) {
      const streamed = `${dir}/streamed-${maxShardBytes}`;
      const planned = `${dir}/planned-${maxShardBytes}`;
      await Deno.mkdir(streamed);
      await Deno.mkdir(planned);
      const w = new ShardedSafetensorsWriter(streamed, { maxShardBytes });
      for (const t of tensors) await w.add(t.name, t.dtype, t.shape, t.data);
      const a = await w.finish();
      const reads: string[] = [];
      const b = await writePlannedSafetensors(
        planned,
        tensors.map((t) => ({
          name: t.name,
          dtype: t.dtype,
          shape: t.shape,
          read: () => {
            reads.push(t.name);
            return Promise.resolve(t.data);
          },
        })),
        { maxShardBytes },
      );
      assert.deepEqual(reads, tensors.map((t) => t.name), "each tensor read once, in order");
      assert.deepEqual(await folderBytes(planned), await folderBytes(streamed), `${maxShardBytes}`);
      assert.deepEqual(b.weightMap, a.weightMap);
      assert.equal(b.totalSize, a.totalSize);
      assert.deepEqual(
        b.files.map((f) => f.slice(planned.length)),
        a.files.map((f) => f.slice(streamed.length)),
      );
      assert.equal(b.indexFile === null, a.indexFile === null);
    }
  });
});

Deno.test("writePlannedSafetensors: bad tensors, short reads and failed reads leave no file", async () => {
  await withTempDir(async (dir) => {
    const u8 = (name: string, n: number, read = () => Promise.resolve(new Uint8Array(n))) => ({
      name,
      dtype: "U8" as DType,
      shape: [n],
      read,
    });
    await assert.rejects(
      writePlannedSafetensors(dir, [u8("a", 1), u8("a", 1)]),
      /tensor 'a' is given twice/,
    );
    await assert.rejects(
      writePlannedSafetensors(dir, [
        u8("a", 2),
        u8("b", 4, () => Promise.resolve(new Uint8Array(3))),
      ], {
        maxShardBytes: 2,
      }),
      (e) => {
        assert.ok(e instanceof SafetensorsError);
        assert.match(
          e.message,
          /model-00002-of-00002\.safetensors: tensor 'b': read 3 bytes, its dtype and shape need 4/,
        );
        return true;
      },
    );
    await assert.rejects(
      writePlannedSafetensors(dir, [
        u8("a", 2),
        u8("b", 4, () => Promise.reject(new Error("gone"))),
      ]),
      /model\.safetensors: tensor 'b': reading its bytes failed: gone/,
    );
    // llmc's own errors (they name their file or tensor) come through as they are.
    const own = new SafetensorsError("work.safetensors", "tensor 'b': truncated");
    await assert.rejects(
      writePlannedSafetensors(dir, [u8("a", 2), u8("b", 4, () => Promise.reject(own))]),
      (e) => e === own,
    );
    // Any of llmc's errors, not only the safetensors ones (a transform's source reads its
    // tensors through the engine and the model's files).
    const other = new CompressionError("model.layers.0.mlp.up_proj: not 2:4 sparse");
    await assert.rejects(
      writePlannedSafetensors(dir, [u8("a", 2), u8("b", 4, () => Promise.reject(other))]),
      (e) => e === other,
    );
    assert.deepEqual([...Deno.readDirSync(dir)], []);
    await assert.rejects(writePlannedSafetensors(dir, [], { maxShardBytes: 0 }), /positive/);
  });
});
