/**
 * marlin-24 is write-only upstream, so these tests check the layout by
 * inverting it: unpack and un-permute `weight_packed`, decode `meta` the way
 * CUTLASS's `sparse_semi_structured_to_dense_cutlass` does, and recover the
 * quantized weight and the fp16 scales exactly.
 */
import { decodeMarlin24 } from "./_marlin24.ts";
import { assert, assertEquals, assertThrows } from "../quant/_assert.ts";
import {
  compressMarlin24,
  cutlassCompress24,
  marlin24Permutations,
} from "../../src/compress/marlin_24.ts";
import { compressModule } from "../../src/compress/compress_module.ts";
import { CompressionError } from "../../src/compress/errors.ts";
import { bytesToTyped } from "../../src/io/tensor_bytes.ts";
import { roundToF16 } from "../../src/io/floats.ts";
import { parseQuantizationArgs } from "../../src/quant/args.ts";
import { parseQuantizationScheme } from "../../src/quant/scheme.ts";
import { quantize } from "../../src/quant/quantize.ts";
import { rtnQuantizeModule } from "../../src/quant/rtn.ts";
import { seededRandom } from "../../src/model/seeded_random.ts";

function twoFour(rows: number, cols: number, seed: number): Float32Array {
  const rnd = seededRandom(seed);
  const w = new Float32Array(rows * cols);
  for (let g = 0; g < w.length; g += 4) {
    for (const p of [0, 1, 2, 3].sort(() => rnd() - 0.5).slice(0, 1 + Math.floor(rnd() * 2))) {
      w[g + p] = rnd() * 2 - 1;
    }
  }
  return w;
}

Deno.test("permutations: the 1024-entry weight permutation is a permutation; scale orders", () => {
  for (const bits of [4, 8]) {
    const p = marlin24Permutations(bits);
    assertEquals([...p.weight].sort((a, b) => a - b), Array.from({ length: 1024 }, (_, i) => i));
    assertEquals(p.scaleGroup.slice(0, 16), [0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15]);
    assertEquals(p.scaleChannel, Array.from({ length: 64 }, (_, i) => i));
  }
  // first entries of the int4 permutation: perm1 of i = 0 is [0, 16, 128, 144, 4, 20, 132, 148]
  assertEquals(marlin24Permutations(4).weight.slice(0, 8), [0, 128, 4, 132, 16, 144, 20, 148]);
});

Deno.test("CUTLASS 2:4 metadata encodings (Espresso table)", () => {
  const table: [number[], number][] = [
    [[1, 1, 0, 0], 0b0100],
    [[1, 0, 1, 0], 0b1000],
    [[0, 1, 1, 0], 0b1001],
    [[1, 0, 0, 1], 0b1100],
    [[0, 1, 0, 1], 0b1101],
    [[0, 0, 1, 1], 0b1110],
    [[0, 0, 0, 0], 0b1110],
    [[0, 1, 0, 0], 0b1001],
    [[1, 0, 0, 0], 0b1000],
  ];
  for (const [mask, code] of table) {
    const dense = new Float32Array(32 * 16);
    dense.set(mask);
    const { meta } = cutlassCompress24(dense, 32, 16);
    // row 0, meta col 0 lands at offset 0 of the reordered matrix
    assertEquals(meta[0] & 0xf, code, `${mask}`);
  }
});

for (
  const [bits, strategy, shape] of [
    [4, "group", [64, 256]],
    [4, "channel", [128, 64]],
    [8, "group", [128, 512]],
    [8, "channel", [64, 128]],
  ] as [number, string, [number, number]][]
) {
  Deno.test(`int${bits} ${strategy} [${shape}]: layout inverts to the quantized weight and scales`, () => {
    const [out, inF] = shape;
    const args = parseQuantizationArgs({
      num_bits: bits,
      strategy,
      ...(strategy === "group" ? { group_size: 128 } : {}),
    }, "w");
    const w = twoFour(out, inF, bits * 7 + out);
    const rtn = rtnQuantizeModule(w, shape, args);
    const ts = compressMarlin24("m", w, shape, args, rtn);
    const groups = strategy === "group" ? inF / 128 : 1;
    const pf = 32 / bits;
    assertEquals(ts.map((t) => [t.name, t.dtype, t.shape]), [
      ["m.weight_packed", "I32", [inF / 32, (out * 16) / pf]],
      ["m.scale_packed", "F16", [groups, out]],
      ["m.meta", "I16", [inF / 32, 2 * out]],
    ]);
    const decoded = decodeMarlin24(
      bytesToTyped("I32", ts[0].data) as Int32Array,
      bytesToTyped("I16", ts[2].data) as Int16Array,
      bytesToTyped("F16", ts[1].data) as Uint16Array,
      shape,
      bits,
      strategy === "group" ? 128 : null,
    );
    const s16 = rtn.scale.map(roundToF16);
    const codes = quantize(w.map(roundToF16), shape, { scale: s16 }, args, { dtype: "F16" });
    assertEquals(Array.from(decoded.codes, (v) => v + 0), Array.from(codes, (v) => v + 0));
    assertEquals(Array.from(decoded.scale), Array.from(s16));
  });
}

Deno.test("marlin-24 preconditions are checked with clear errors", () => {
  const g = parseQuantizationArgs({ num_bits: 4, group_size: 128 }, "w");
  const ok = twoFour(64, 256, 1);
  const rtn = rtnQuantizeModule(ok, [64, 256], g);
  const cases: [() => unknown, string][] = [
    [
      () =>
        compressMarlin24(
          "m",
          ok,
          [64, 256],
          parseQuantizationArgs({ num_bits: 4, group_size: 128, symmetric: false }, "w"),
          rtn,
        ),
      "symmetric",
    ],
    [
      () =>
        compressMarlin24(
          "m",
          ok,
          [64, 256],
          parseQuantizationArgs({ num_bits: 4, group_size: 64 }, "w"),
          rtn,
        ),
      "group_size 128",
    ],
    [
      () => compressMarlin24("m", ok, [64, 256], parseQuantizationArgs({ num_bits: 4 }, "w"), rtn),
      "channel or group",
    ],
    [
      () =>
        compressMarlin24(
          "m",
          ok,
          [64, 256],
          parseQuantizationArgs({ num_bits: 3, group_size: 128 }, "w"),
          rtn,
        ),
      "int4 or int8",
    ],
    [
      () =>
        compressMarlin24(
          "m",
          twoFour(48, 256, 1),
          [48, 256],
          g,
          rtnQuantizeModule(twoFour(48, 256, 1), [48, 256], g),
        ),
      "divisible by 32",
    ],
    [() => {
      const c = parseQuantizationArgs({ num_bits: 4, strategy: "channel" }, "w");
      const w = twoFour(96, 64, 2);
      return compressMarlin24("m", w, [96, 64], c, rtnQuantizeModule(w, [96, 64], c));
    }, "groups·out divisible by 64, got 96"],
  ];
  for (const [fn, msg] of cases) assertThrows(fn, CompressionError, msg);
  const dense = Float32Array.from({ length: 64 * 256 }, (_, i) => ((i * 7919) % 13) / 13 + 0.1);
  const e = assertThrows(
    () => compressMarlin24("m.q_proj", dense, [64, 256], g, rtnQuantizeModule(dense, [64, 256], g)),
    CompressionError,
    "m.q_proj: marlin-24 needs 2:4-sparse quantized weights; row 0",
  );
  assert(e.message.includes("columns 0…3"));
  const withInputs = parseQuantizationScheme({
    targets: ["Linear"],
    weights: { num_bits: 4, group_size: 128 },
    input_activations: { num_bits: 8, strategy: "token", dynamic: true },
  }, "g");
  assertThrows(
    () => compressModule("m", ok, [64, 256], withInputs, { weight: rtn }, "F16", "marlin-24"),
    CompressionError,
    "weight-only",
  );
});
