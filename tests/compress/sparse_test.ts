import { assert, assertEquals, assertThrows } from "../quant/_assert.ts";
import {
  compressSparseBitmask,
  decompressSparseBitmask,
} from "../../src/compress/sparse_bitmask.ts";
import {
  compressSparse24Bitmask,
  decompressSparse24Bitmask,
} from "../../src/compress/sparse_24_bitmask.ts";
import {
  makeTensor,
  tensorFromValues,
  tensorValues,
} from "../../src/compress/compressed_tensor.ts";
import type { CompressedTensor } from "../../src/compress/compressed_tensor.ts";
import {
  applySparsityCompression,
  compressModule,
  decompressModule,
} from "../../src/compress/compress_module.ts";
import { CompressionError } from "../../src/compress/errors.ts";
import { presetScheme } from "../../src/quant/presets.ts";
import { rtnQuantizeModule } from "../../src/quant/rtn.ts";
import { fakeQuantize } from "../../src/quant/quantize.ts";
import { seededRandom } from "../../src/model/seeded_random.ts";
import type { DType } from "../../src/io/dtype.ts";

function sparseWeight(rows: number, cols: number, seed: number, keep: number): Float32Array {
  const rnd = seededRandom(seed);
  return Float32Array.from(
    { length: rows * cols },
    () => (rnd() < keep ? Math.fround(rnd() * 2 - 1) : 0),
  );
}

function twoFour(rows: number, cols: number, seed: number): Float32Array {
  const rnd = seededRandom(seed);
  const w = new Float32Array(rows * cols);
  for (let g = 0; g < w.length; g += 4) {
    const a = Math.floor(rnd() * 4);
    const b = (a + 1 + Math.floor(rnd() * 3)) % 4;
    w[g + a] = Math.fround(rnd() * 2 - 1 || 0.5);
    w[g + b] = Math.fround(rnd() * 2 - 1 || -0.5);
  }
  return w;
}

const byName = (ts: CompressedTensor[], suffix: string) => ts.find((t) => t.name.endsWith(suffix))!;

Deno.test("sparse-bitmask: tensor layout, little bit order, row offsets, round trip per dtype", () => {
  const rows = 37;
  const cols = 45;
  const w = sparseWeight(rows, cols, 1, 0.5);
  w[3] = -0; // -0.0 counts as zero
  for (const dtype of ["F32", "BF16", "F16", "F8_E4M3"] as DType[]) {
    const t = tensorFromValues("m.weight", dtype, [rows, cols], w);
    const ts = compressSparseBitmask("m", t);
    assertEquals(ts.map((x) => [x.name, x.dtype, x.shape]), [
      ["m.shape", "I64", [2]],
      ["m.compressed", dtype, [byName(ts, "compressed").shape[0]]],
      ["m.bitmask", "U8", [37, 6]],
      ["m.row_offsets", "I64", [37]],
    ]);
    const nnz = w.filter((v) =>
      tensorValues(tensorFromValues("x", dtype, [1], new Float32Array([v])))[0] !== 0
    ).length;
    assertEquals(byName(ts, "compressed").shape[0], nnz, dtype);
    const back = decompressSparseBitmask("m", ts);
    assertEquals(
      Array.from(tensorValues(back), (v) =>
        v + 0),
      Array.from(tensorValues(t), (v) => v + 0),
      dtype,
    );
  }
  const t = tensorFromValues("m.weight", "F32", [rows, cols], w);
  const ts = compressSparseBitmask("m", t);
  const bits = byName(ts, "bitmask").data;
  for (const [r, c] of [[0, 0], [5, 9], [36, 44], [12, 8]]) {
    const bit = (bits[r * 6 + (c >> 3)] >> (c % 8)) & 1;
    assertEquals(bit, w[r * cols + c] !== 0 ? 1 : 0, `bit [${r}, ${c}]`);
  }
  const offsets = new BigInt64Array(byName(ts, "row_offsets").data.slice().buffer);
  let acc = 0;
  for (let r = 0; r < rows; r++) {
    assertEquals(Number(offsets[r]), acc);
    for (let c = 0; c < cols; c++) if (w[r * cols + c] !== 0) acc++;
  }
});

Deno.test("sparse-24-bitmask: lossless on 2:4 weights, top-2 magnitude otherwise", () => {
  const w = twoFour(16, 24, 3);
  const t = tensorFromValues("m.weight", "BF16", [16, 24], w);
  const ts = compressSparse24Bitmask("m", t);
  assertEquals(ts.map((x) => [x.name, x.dtype, x.shape]), [
    ["m.shape", "I64", [2, 1]],
    ["m.compressed", "BF16", [16, 12]],
    ["m.bitmask", "U8", [16, 3]],
  ]);
  assertEquals(decompressSparse24Bitmask("m", ts).data, t.data);
  const dense = tensorFromValues(
    "m.weight",
    "F32",
    [1, 8],
    new Float32Array([1, -5, 3, 0.5, 0, 0, 0, 0]),
  );
  const c = compressSparse24Bitmask("m", dense);
  assertEquals(tensorValues(byName(c, "compressed")), [-5, 3, 0, 0]);
  assertEquals(byName(c, "bitmask").data, [0b00110110]);
});

Deno.test("sparse-24-bitmask ranks FP8 by the int8 view of its bytes (compressed-tensors quirk)", () => {
  // 8.0 (0x50 → 80), -0.5 (0xB0 → -80 → 80), 7.5 (0x4F → 79): keeps 8.0 and -0.5, drops 7.5
  const t = makeTensor("m.weight", "F8_E4M3", [1, 4], new Uint8Array([0x50, 0xb0, 0x4f, 0x00]));
  const c = compressSparse24Bitmask("m", t);
  assertEquals(byName(c, "compressed").data, [0x50, 0xb0]);
  // -0.0 (0x80 → int8 -128, whose abs stays -128) ranks below +0
  const z = makeTensor("m.weight", "F8_E4M3", [1, 4], new Uint8Array([0x80, 0x00, 0x38, 0x80]));
  assertEquals(byName(compressSparse24Bitmask("m", z), "compressed").data, [0x00, 0x38]);
});

Deno.test("sparse-24-bitmask keeps the first two of each group sorted by magnitude, ties by position, on every pattern of ties", () => {
  // Every group of four magnitudes from {0, 1, 2, NaN (ranked as infinite)}, with mixed signs.
  const levels = [0, 1, -1, 2, -2, NaN, Infinity];
  const groups: number[][] = [];
  for (let c = 0; c < levels.length ** 4; c++) {
    groups.push(
      [0, 1, 2, 3].map((j) => levels[Math.floor(c / levels.length ** j) % levels.length]),
    );
  }
  const t = tensorFromValues(
    "m.weight",
    "F32",
    [groups.length, 4],
    new Float32Array(groups.flat()),
  );
  const bitmask = byName(compressSparse24Bitmask("m", t), "bitmask").data;
  groups.forEach((g, r) => {
    const rank = (v: number) => (Number.isNaN(v) ? Infinity : Math.abs(v));
    const order = [0, 1, 2, 3].sort((a, b) => rank(g[b]) - rank(g[a]) || a - b);
    const expected = (1 << order[0]) | (1 << order[1]);
    assertEquals(bitmask[r], expected, `group ${g.join(", ")}`);
  });
});

Deno.test("FP8 W8A8 + 2:4: quantization compression then sparsity; decompress restores fake-quant", () => {
  const scheme = presetScheme("FP8_DYNAMIC", ["Linear"]);
  const w = twoFour(32, 64, 9);
  const rtn = rtnQuantizeModule(w, [32, 64], scheme.weights!);
  const q = compressModule("m", w, [32, 64], scheme, { weight: rtn }, "F32", "float-quantized");
  const sparse = applySparsityCompression("m", q, "sparse-24-bitmask");
  assertEquals(sparse.map((t) => t.name), [
    "m.shape",
    "m.compressed",
    "m.bitmask",
    "m.weight_scale",
  ]);
  assertEquals(byName(sparse, "compressed").dtype, "F8_E4M3");
  const back = decompressModule("m", sparse, scheme, "float-quantized");
  const expected = fakeQuantize(w, [32, 64], rtn, scheme.weights!);
  assertEquals(Array.from(back.weight, (v) => v + 0), Array.from(expected, (v) => v + 0));
  // a sparsity-only dense module
  const d = compressModule(
    "m",
    w,
    [32, 64],
    presetScheme("UNQUANTIZED", ["Linear"]),
    {},
    "F32",
    "sparse-bitmask",
  );
  assert(d.some((t) => t.name === "m.row_offsets"));
  assertEquals(
    decompressModule("m", d, presetScheme("UNQUANTIZED", ["Linear"]), "sparse-bitmask").weight,
    w,
  );
});

Deno.test("sparse errors", () => {
  assertThrows(
    () =>
      compressSparse24Bitmask(
        "m",
        tensorFromValues("m.weight", "F32", [1, 6], new Float32Array(6)),
      ),
    CompressionError,
    "multiple of 4",
  );
  assertThrows(
    () => compressSparseBitmask("m", tensorFromValues("m.weight", "F32", [4], new Float32Array(4))),
    CompressionError,
    "2-D",
  );
  const w4 = presetScheme("W4A16", ["Linear"]);
  const w = twoFour(8, 128, 1);
  const packed = compressModule(
    "m",
    w,
    [8, 128],
    w4,
    { weight: rtnQuantizeModule(w, [8, 128], w4.weights!) },
    "F32",
    "pack-quantized",
  );
  assertThrows(
    () => applySparsityCompression("m", packed, "sparse-24-bitmask"),
    CompressionError,
    "marlin-24",
  );
});
