import assert from "node:assert/strict";
import { SafetensorsError, SafetensorsFile } from "../../src/io/safetensors_read.ts";
import { SHARED_DIR } from "../_shared.ts";
import { STORIES_FILE, withTempDir } from "./_helpers.ts";

// Read with python3 + struct from the shared file (not via llmc):
//   struct.unpack('<f', b[8 + n + begin + 4*i : ... + 4]) and raw[::-1].hex()
const SPOT_VALUES: Array<[string, number, number, number]> = [
  // [tensor, flat index, float32 bits, value as python printed it]
  ["model.embed_tokens.weight", 0, 0xbe96e950, -0.29474878311157227],
  ["model.embed_tokens.weight", 1, 0x3f0fd864, 0.5618956089019775],
  ["model.embed_tokens.weight", 32767, 0xbed91acd, -0.424032598733902],
  ["model.layers.2.mlp.down_proj.weight", 11007, 0x3dd14af5, 0.10219375044107437],
  ["model.layers.0.self_attn.q_proj.weight", 65, 0x3da5e7ee, 0.08100877702236176],
  ["model.layers.4.self_attn.k_proj.weight", 2047, 0xbe87bf24, -0.2651301622390747],
  ["model.norm.weight", 0, 0x401d54ef, 2.4583089351654053],
  ["model.layers.3.post_attention_layernorm.weight", 17, 0x3f8527e1, 1.040279507637024],
];

function expectedNames(): Array<[string, number[]]> {
  const out: Array<[string, number[]]> = [["model.embed_tokens.weight", [512, 64]]];
  for (let l = 0; l < 5; l++) {
    const p = `model.layers.${l}.`;
    out.push(
      [`${p}input_layernorm.weight`, [64]],
      [`${p}self_attn.q_proj.weight`, [64, 64]],
      [`${p}self_attn.k_proj.weight`, [32, 64]],
      [`${p}self_attn.v_proj.weight`, [32, 64]],
      [`${p}self_attn.o_proj.weight`, [64, 64]],
      [`${p}post_attention_layernorm.weight`, [64]],
      [`${p}mlp.gate_proj.weight`, [172, 64]],
      [`${p}mlp.up_proj.weight`, [172, 64]],
      [`${p}mlp.down_proj.weight`, [64, 172]],
    );
  }
  out.push(["model.norm.weight", [64]]);
  return out;
}

Deno.test("stories260K: names, dtypes and shapes of all 47 tensors", async () => {
  const f = await SafetensorsFile.open(STORIES_FILE);
  try {
    const want = expectedNames();
    assert.equal(want.length, 47);
    assert.deepEqual(f.names(), want.map(([n]) => n));
    for (const [name, shape] of want) {
      const info = f.info(name);
      assert.equal(info.dtype, "F32");
      assert.deepEqual(info.shape, shape);
      assert.equal(info.byteLength, shape.reduce((a, b) => a * b, 1) * 4);
    }
    assert.deepEqual(f.metadata, { format: "pt" });
    assert.ok(f.has("model.norm.weight"));
    assert.ok(!f.has("lm_head.weight"));
    assert.throws(() => f.info("lm_head.weight"), SafetensorsError);
    await assert.rejects(f.readRaw("lm_head.weight"), SafetensorsError);
  } finally {
    f.close();
  }
});

Deno.test("stories260K: every value equals an independent DataView decode of the file", async () => {
  // The test's own minimal parser: length, JSON, offsets; nothing from src/.
  const bytes = await Deno.readFile(STORIES_FILE);
  const dv = new DataView(bytes.buffer);
  const n = Number(dv.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const f = await SafetensorsFile.open(STORIES_FILE);
  try {
    let checked = 0;
    for (const [name, entry] of Object.entries(header)) {
      if (name === "__metadata__") continue;
      const [begin, end] = (entry as { data_offsets: [number, number] }).data_offsets;
      const got = await f.readF32(name);
      assert.equal(got.length, (end - begin) / 4, name);
      assert.equal(f.info(name).byteOffset, 8 + n + begin, name);
      for (let i = 0; i < got.length; i++) {
        const want = dv.getFloat32(8 + n + begin + 4 * i, true);
        if (!Object.is(got[i], want)) assert.fail(`${name}[${i}] = ${got[i]}, want ${want}`);
      }
      const raw = await f.readRaw(name);
      assert.deepEqual(raw, bytes.subarray(8 + n + begin, 8 + n + end));
      const typed = await f.readTyped(name);
      assert.ok(typed instanceof Float32Array);
      assert.deepEqual(typed, got);
      checked++;
    }
    assert.equal(checked, 47);
  } finally {
    f.close();
  }
});

Deno.test("stories260K: spot values obtained with python struct", async () => {
  const f = await SafetensorsFile.open(STORIES_FILE);
  try {
    for (const [name, i, bits, value] of SPOT_VALUES) {
      const v = (await f.readF32(name))[i];
      const vb = new Uint32Array(new Float32Array([v]).buffer)[0];
      assert.equal(vb.toString(16), bits.toString(16), `${name}[${i}] bits`);
      assert.equal(v, value, `${name}[${i}]`);
    }
  } finally {
    f.close();
  }
});

Deno.test("concurrent reads on one handle return each tensor's own bytes", async () => {
  const f = await SafetensorsFile.open(STORIES_FILE);
  try {
    const names = f.names();
    const [all, ...again] = await Promise.all([
      Promise.all(names.map((n) => f.readF32(n))),
      ...names.map((n) => f.readF32(n)),
    ]);
    for (let k = 0; k < names.length; k++) assert.deepEqual(again[k], all[k], names[k]);
  } finally {
    f.close();
  }
});

Deno.test("golden ids are I64 and read as BigInt64Array and as numbers", async () => {
  const f = await SafetensorsFile.open(`${SHARED_DIR}golden/stories260K_golden.safetensors`);
  try {
    const info = f.info("ids_b");
    assert.equal(info.dtype, "I64");
    const typed = await f.readTyped("ids_b");
    assert.ok(typed instanceof BigInt64Array);
    const ids = Array.from(typed as BigInt64Array, Number);
    // README: b = [1, 3, 4, ..., 129]
    assert.deepEqual(ids, [1, ...Array.from({ length: 127 }, (_, i) => i + 3)]);
    assert.deepEqual(Array.from(await f.readF32("ids_b")), ids);
  } finally {
    f.close();
  }
});

Deno.test("reads after close() and opening a missing file are SafetensorsErrors", async () => {
  const f = await SafetensorsFile.open(STORIES_FILE);
  f.close();
  f.close();
  await assert.rejects(f.readRaw("model.norm.weight"), SafetensorsError);
  await withTempDir(async (dir) => {
    await assert.rejects(SafetensorsFile.open(`${dir}/nope.safetensors`), (e) => {
      assert.ok(e instanceof SafetensorsError);
      assert.equal(e.file, `${dir}/nope.safetensors`);
      return true;
    });
  });
});

Deno.test("a file truncated after opening gives a SafetensorsError on read", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/t.safetensors`;
    await Deno.copyFile(STORIES_FILE, path);
    const f = await SafetensorsFile.open(path);
    try {
      await Deno.truncate(path, 200_000);
      await assert.rejects(f.readRaw("model.norm.weight"), /file ended/);
      await f.readRaw("model.embed_tokens.weight"); // still within the file
    } finally {
      f.close();
    }
  });
});
