import { assert, assertEquals, assertThrows } from "../quant/_assert.ts";
import { compressModule, decompressModule } from "../../src/compress/compress_module.ts";
import type { ModuleQParams } from "../../src/compress/compress_module.ts";
import type { CompressedTensor } from "../../src/compress/compressed_tensor.ts";
import { CompressionError } from "../../src/compress/errors.ts";
import { presetScheme } from "../../src/quant/presets.ts";
import { parseQuantizationScheme } from "../../src/quant/scheme.ts";
import type { QuantizationScheme } from "../../src/quant/scheme.ts";
import { rtnQuantizeModule } from "../../src/quant/rtn.ts";
import { fakeQuantize } from "../../src/quant/quantize.ts";
import { inferFormat } from "../../src/quant/format.ts";
import type { ModuleFormat } from "../../src/quant/compression_format.ts";
import type { ComputeDType } from "../../src/quant/compute_dtype.ts";
import { QuantizationShapeError } from "../../src/quant/errors.ts";
import { seededRandom } from "../../src/model/seeded_random.ts";
import { roundToBf16, roundToF16 } from "../../src/io/floats.ts";

function randomWeight(rows: number, cols: number, seed: number, dtype: ComputeDType): Float32Array {
  const rnd = seededRandom(seed);
  const round = dtype === "BF16" ? roundToBf16 : dtype === "F16" ? roundToF16 : Math.fround;
  return Float32Array.from(
    { length: rows * cols },
    () => round((rnd() * 2 - 1) * 0.05 * (1 + 4 * rnd() ** 12)),
  );
}

function randomGIdx(cols: number, groupSize: number, seed: number): Int32Array {
  const rnd = seededRandom(seed);
  const perm = Array.from({ length: cols }, (_, i) => i);
  for (let i = cols - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [perm[i], perm[j]] = [perm[j], perm[i]];
  }
  const g = new Int32Array(cols);
  perm.forEach((c, pos) => (g[c] = Math.floor(pos / groupSize)));
  return g;
}

interface Case {
  scheme: QuantizationScheme;
  shape: [number, number];
  dtype: ComputeDType;
  format?: ModuleFormat;
  gIdx?: boolean;
  input?: ModuleQParams["input"];
  expect: [string, string, number[]][];
}

const s = (raw: Record<string, unknown>) =>
  parseQuantizationScheme({ targets: ["Linear"], ...raw }, "test");

const CASES: Case[] = [
  {
    scheme: presetScheme("W4A16", ["Linear"]),
    shape: [256, 384],
    dtype: "F32",
    expect: [["weight_packed", "I32", [256, 48]], ["weight_shape", "I64", [2]], [
      "weight_scale",
      "F32",
      [256, 3],
    ]],
  },
  {
    scheme: presetScheme("W4A16", ["Linear"]),
    shape: [64, 256],
    dtype: "BF16",
    expect: [["weight_packed", "I32", [64, 32]], ["weight_shape", "I64", [2]], [
      "weight_scale",
      "BF16",
      [64, 2],
    ]],
  },
  {
    scheme: s({ weights: { num_bits: 4, strategy: "channel", symmetric: false } }),
    shape: [830, 545],
    dtype: "F32",
    expect: [
      ["weight_packed", "I32", [830, 69]],
      ["weight_shape", "I64", [2]],
      ["weight_scale", "F32", [830, 1]],
      ["weight_zero_point", "I32", [104, 1]],
    ],
  },
  {
    scheme: s({ weights: { num_bits: 4, group_size: 32, symmetric: false, actorder: "group" } }),
    shape: [72, 256],
    dtype: "BF16",
    gIdx: true,
    expect: [
      ["weight_packed", "I32", [72, 32]],
      ["weight_shape", "I64", [2]],
      ["weight_scale", "BF16", [72, 8]],
      ["weight_zero_point", "I32", [9, 8]],
      ["weight_g_idx", "I32", [256]],
    ],
  },
  {
    scheme: presetScheme("W8A16", ["Linear"]),
    shape: [830, 545],
    dtype: "F16",
    expect: [["weight_packed", "I32", [830, 137]], ["weight_shape", "I64", [2]], [
      "weight_scale",
      "F16",
      [830, 1],
    ]],
  },
  {
    scheme: presetScheme("W3A16", ["Linear"]),
    shape: [64, 128],
    dtype: "F32",
    expect: [["weight", "I8", [64, 128]], ["weight_scale", "F32", [64, 1]]],
  },
  {
    scheme: presetScheme("W3A16", ["Linear"]),
    shape: [64, 128],
    dtype: "F32",
    format: "pack-quantized",
    expect: [["weight_packed", "I32", [64, 13]], ["weight_shape", "I64", [2]], [
      "weight_scale",
      "F32",
      [64, 1],
    ]],
  },
  {
    scheme: presetScheme("W8A8", ["Linear"]),
    shape: [96, 130],
    dtype: "BF16",
    expect: [["weight", "I8", [96, 130]], ["weight_scale", "BF16", [96, 1]]],
  },
  {
    scheme: s({
      weights: { num_bits: 8, strategy: "tensor", symmetric: false },
      input_activations: { num_bits: 8, strategy: "tensor", symmetric: false },
    }),
    shape: [33, 65],
    dtype: "F32",
    input: { scale: new Float32Array([0.03]), zeroPoint: new Float32Array([-7]) },
    expect: [
      ["weight", "I8", [33, 65]],
      ["weight_scale", "F32", [1]],
      ["weight_zero_point", "I8", [1]],
      ["input_scale", "F32", [1]],
      ["input_zero_point", "I8", [1]],
    ],
  },
  {
    scheme: presetScheme("FP8", ["Linear"]),
    shape: [64, 96],
    dtype: "BF16",
    input: { scale: new Float32Array([0.0123]) },
    expect: [["weight", "F8_E4M3", [64, 96]], ["weight_scale", "BF16", [1]], [
      "input_scale",
      "BF16",
      [1],
    ]],
  },
  {
    scheme: presetScheme("FP8_DYNAMIC", ["Linear"]),
    shape: [830, 545],
    dtype: "F32",
    expect: [["weight", "F8_E4M3", [830, 545]], ["weight_scale", "F32", [830, 1]]],
  },
  {
    scheme: presetScheme("FP8_BLOCK", ["Linear"]),
    shape: [256, 384],
    dtype: "BF16",
    expect: [["weight", "F8_E4M3", [256, 384]], ["weight_scale", "BF16", [2, 3]]],
  },
  {
    scheme: presetScheme("NVFP4A16", ["Linear"]),
    shape: [64, 176],
    dtype: "F32",
    expect: [["weight_packed", "U8", [64, 88]], ["weight_scale", "F8_E4M3", [64, 11]], [
      "weight_global_scale",
      "F32",
      [1],
    ]],
  },
  {
    scheme: presetScheme("NVFP4", ["Linear"]),
    shape: [48, 64],
    dtype: "BF16",
    input: { globalScale: 1234.5 },
    expect: [
      ["weight_packed", "U8", [48, 32]],
      ["weight_scale", "F8_E4M3", [48, 4]],
      ["weight_global_scale", "F32", [1]],
      ["input_global_scale", "F32", [1]],
    ],
  },
  {
    scheme: presetScheme("MXFP4A16", ["Linear"]),
    shape: [40, 128],
    dtype: "BF16",
    expect: [["weight_packed", "U8", [40, 64]], ["weight_scale", "U8", [40, 4]]],
  },
  {
    scheme: presetScheme("MXFP4", ["Linear"]),
    shape: [40, 96],
    dtype: "F32",
    expect: [["weight_packed", "U8", [40, 48]], ["weight_scale", "U8", [40, 3]]],
  },
  {
    scheme: presetScheme("W4A16", ["Linear"]),
    shape: [32, 128],
    dtype: "BF16",
    format: "dense",
    expect: [["weight", "BF16", [32, 128]], ["weight_scale", "BF16", [32, 1]], [
      "weight_zero_point",
      "I8",
      [32, 1],
    ]],
  },
];

function describe(ts: readonly CompressedTensor[], prefix: string): [string, string, number[]][] {
  return ts.map((t) => [t.name.slice(prefix.length + 1), t.dtype, [...t.shape]]);
}

Deno.test("every format: tensor names/dtypes/shapes and compress → decompress == fakeQuantize", () => {
  CASES.forEach((c, i) => {
    const prefix = `model.layers.${i}.mlp.up_proj`;
    const args = c.scheme.weights!;
    const w = randomWeight(c.shape[0], c.shape[1], 100 + i, c.dtype);
    const gIdx = c.gIdx ? randomGIdx(c.shape[1], args.groupSize!, 7 + i) : null;
    const rtn = rtnQuantizeModule(w, c.shape, args, { dtype: c.dtype, gIdx, where: prefix });
    const qp = {
      scale: rtn.scale,
      zeroPoint: args.symmetric ? null : rtn.zeroPoint,
      globalScale: rtn.globalScale,
      gIdx,
    };
    const format = c.format ?? inferFormat(c.scheme)!;
    const stored = format === "dense" ? fakeQuantize(w, c.shape, qp, args, { dtype: c.dtype }) : w;
    const tensors = compressModule(
      prefix,
      stored,
      c.shape,
      c.scheme,
      { weight: qp, input: c.input },
      c.dtype,
      format,
    );
    const label = `${i}: ${format} ${c.dtype} [${c.shape}]`;
    assertEquals(describe(tensors, prefix), c.expect, label);
    const { weight, shape } = decompressModule(prefix, tensors, c.scheme, format, {
      dtype: c.dtype,
    });
    assertEquals(shape, c.shape, label);
    const expected = fakeQuantize(w, c.shape, qp, args, { dtype: c.dtype });
    let mismatches = 0;
    for (let k = 0; k < expected.length; k++) {
      if (!Object.is(weight[k] + 0, expected[k] + 0)) mismatches++;
    }
    assertEquals(mismatches, 0, label);
  });
});

Deno.test("asymmetric pack-quantized zero points decode to the observed ones", () => {
  const scheme = presetScheme("W4A16_ASYM", ["Linear"]);
  const w = randomWeight(20, 256, 3, "F32");
  const rtn = rtnQuantizeModule(w, [20, 256], scheme.weights!);
  const t = compressModule("m", w, [20, 256], scheme, { weight: rtn }, "F32", "pack-quantized");
  const zp = t.find((x) => x.name === "m.weight_zero_point")!;
  assertEquals([zp.dtype, zp.shape], ["I32", [3, 2]]);
  assert(rtn.zeroPoint.some((z) => z !== 0));
});

Deno.test("errors come before any output, name the module and what was expected", () => {
  const w4 = presetScheme("W4A16", ["Linear"]);
  const w = randomWeight(64, 172, 1, "F32");
  const e = assertThrows(
    () => rtnQuantizeModule(w, [64, 172], w4.weights!, { where: "model.layers.0.mlp.down_proj" }),
    QuantizationShapeError,
    "model.layers.0.mlp.down_proj: 172 columns (in_features) are not divisible by group_size 128",
  );
  assert(e.message.includes('"re:.*down_proj$"'));
  assertThrows(
    () =>
      compressModule(
        "model.layers.0.mlp.down_proj",
        w,
        [64, 172],
        w4,
        { weight: { scale: new Float32Array(64) } },
        "F32",
        "pack-quantized",
      ),
    QuantizationShapeError,
    "not divisible by group_size 128",
  );
  const block = presetScheme("FP8_BLOCK", ["Linear"]);
  assertThrows(
    () =>
      rtnQuantizeModule(randomWeight(100, 256, 2, "F32"), [100, 256], block.weights!, {
        where: "m.o_proj",
      }),
    QuantizationShapeError,
    "m.o_proj: block_structure [128, 128] does not tile the weight [100, 256]",
  );
  // FP4 with an odd column count (group size 3 → 9 columns)
  const odd = s({
    weights: {
      num_bits: 4,
      type: "float",
      strategy: "tensor_group",
      group_size: 3,
      scale_dtype: "float8_e4m3fn",
    },
  });
  const wo = randomWeight(4, 9, 3, "F32");
  const rtn = rtnQuantizeModule(wo, [4, 9], odd.weights!);
  assertThrows(
    () =>
      compressModule("m.q_proj", wo, [4, 9], odd, { weight: rtn }, "F32", "nvfp4-pack-quantized"),
    CompressionError,
    "m.q_proj: nvfp4-pack-quantized needs an even column count, got 9",
  );
  assertThrows(
    () => compressModule("m", w, [64, 172], w4, {}, "F32", "pack-quantized"),
    CompressionError,
    "m: weight qparams are missing",
  );
  assertThrows(
    () =>
      compressModule(
        "m",
        randomWeight(8, 16, 1, "F32"),
        [8, 16],
        presetScheme("FP8", ["Linear"]),
        {
          weight: { scale: new Float32Array([0.01]) },
        },
        "F32",
        "float-quantized",
      ),
    CompressionError,
    "m: static input activations need an observed input_scale",
  );
  assertThrows(
    () =>
      compressModule(
        "m",
        randomWeight(8, 16, 1, "F32"),
        [8, 16],
        presetScheme("FP8", ["Linear"]),
        {
          weight: { scale: new Float32Array([0.01]) },
        },
        "F32",
        "pack-quantized",
      ),
    CompressionError,
    "pack-quantized packs int weights",
  );
  assertThrows(
    () => decompressModule("m", [], presetScheme("W4A16", ["Linear"]), "marlin-24"),
    CompressionError,
    "write-only",
  );
});

Deno.test("weight-less schemes are saved dense: weight as is, every static input qparam", () => {
  const scheme = s({ input_activations: { num_bits: 8, type: "float" } });
  const w = randomWeight(4, 8, 9, "BF16");
  const t = compressModule(
    "m",
    w,
    [4, 8],
    scheme,
    { input: { scale: new Float32Array([0.5]) } },
    "BF16",
    null,
  );
  assertEquals(describe(t, "m"), [
    ["weight", "BF16", [4, 8]],
    ["input_scale", "BF16", [1]],
    ["input_zero_point", "F8_E4M3", [1]],
  ]);
  assertEquals(decompressModule("m", t, scheme, null).weight, w);
});

Deno.test("FP8 codes keep the sign of zero: a tiny negative weight is stored as 0x80", () => {
  const scheme = presetScheme("FP8_DYNAMIC", ["Linear"]);
  const w = new Float32Array([448, -1e-6, 1e-6, 0]);
  const t = compressModule(
    "m",
    w,
    [1, 4],
    scheme,
    { weight: { scale: new Float32Array([1]) } },
    "F32",
    "float-quantized",
  );
  assertEquals(t[0].data, [0x7e, 0x80, 0x00, 0x00]);
});
