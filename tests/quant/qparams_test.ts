import { assert, assertEquals, assertSameF32, assertThrows } from "./_assert.ts";
import { parseQuantizationArgs } from "../../src/quant/args.ts";
import {
  calculateQParams,
  globalScaleFor,
  roundHalfEven,
  roundToTorchDtype,
} from "../../src/quant/qparams.ts";
import { presetScheme } from "../../src/quant/presets.ts";
import { e8m0Byte, mxExponent, roundToPowerOf2 } from "../../src/quant/mx.ts";
import { castToFp4, fp4Nibble, fp4NibbleValue } from "../../src/quant/fp4.ts";
import { QuantizationConfigError } from "../../src/quant/errors.ts";
import { f32ToF8E4M3Bits } from "../../src/io/floats.ts";

const f32 = (...v: number[]) => new Float32Array(v);
const args = (raw: Record<string, unknown>) =>
  parseQuantizationArgs(raw, "test", { warn: () => {} });

Deno.test("roundHalfEven is torch.round", () => {
  const cases: [number, number][] = [
    [2.5, 2],
    [3.5, 4],
    [-7.5, -8],
    [-2.5, -2],
    [0.5, 0],
    [1.5, 2],
    [-0.5, -0],
    [
      2.4999,
      2,
    ],
    [-4.842, -5],
    [1e20, 1e20],
  ];
  for (const [x, y] of cases) assertEquals(roundHalfEven(x), y, String(x));
  assert(Number.isNaN(roundHalfEven(NaN)));
});

Deno.test("observer checks: 8-bit tensor [1,1,1,1,1] symmetric and asymmetric", () => {
  const sym = calculateQParams(f32(1), f32(1), args({ num_bits: 8 }));
  assertSameF32(sym.scale[0], Math.fround(1 / 127.5));
  assertEquals(Math.round(sym.scale[0] * 1e4) / 1e4, 0.0078);
  assertEquals(sym.zeroPoint[0], 0);
  const asym = calculateQParams(f32(1), f32(1), args({ num_bits: 8, symmetric: false }));
  assertSameF32(asym.scale[0], Math.fround(1 / 255));
  assertEquals(Math.round(asym.scale[0] * 1e4) / 1e4, 0.0039);
  assertEquals(asym.zeroPoint[0], -128);
});

Deno.test("worked int4 examples: symmetric 7.5/7.5, asymmetric zero point -5", () => {
  const w = [7.5, -7.5, 2.5, -2.5, 0.5, 1.5, 3.0, -0.49];
  const sym = calculateQParams(
    f32(Math.min(...w)),
    f32(Math.max(...w)),
    args({ num_bits: 4, group_size: 8 }),
  );
  assertEquals(sym.scale[0], 1);
  const a = [0, 1, 2, 3, -1, 0.5, 2.5, 3.75];
  const asym = calculateQParams(
    f32(-1),
    f32(3.75),
    args({ num_bits: 4, group_size: 8, symmetric: false }),
  );
  assertSameF32(asym.scale[0], Math.fround(4.75 / 15));
  assertEquals(asym.zeroPoint[0], -5);
  assertEquals(a.length, 8);
});

Deno.test("range always includes 0; zero range gets eps", () => {
  const q = calculateQParams(f32(2), f32(3), args({ num_bits: 8 }));
  assertSameF32(q.scale[0], Math.fround(3 / 127.5));
  const z = calculateQParams(f32(0), f32(0), args({ num_bits: 8 }));
  assertSameF32(z.scale[0], 2 ** -23);
  const zb = calculateQParams(f32(0), f32(0), args({ num_bits: 8 }), null, "BF16");
  assertEquals(zb.scale[0], 2 ** -7);
  const za = calculateQParams(f32(0), f32(0), args({ num_bits: 8, symmetric: false }));
  assertEquals([za.scale[0], za.zeroPoint[0]], [2 ** -23, 0], "0/0 zero point casts to 0");
  const fp8 = calculateQParams(f32(-0.5), f32(224), args({ num_bits: 8, type: "float" }));
  assertEquals(fp8.scale[0], 0.5);
});

Deno.test("zero points stay within the int range", () => {
  const a = args({ num_bits: 4, symmetric: false });
  for (const [lo, hi] of [[-1, 100], [-100, 1], [-3, 3], [-1e-3, 5]]) {
    const q = calculateQParams(f32(lo), f32(hi), a);
    assert(q.zeroPoint[0] >= -8 && q.zeroPoint[0] <= 7);
    // |scale·(max − zp) − x_max| < scale, as compressed-tensors' test_helpers asserts
    assert(Math.abs(q.scale[0] * (7 - q.zeroPoint[0]) - hi) < q.scale[0] * 1.0001, `${lo} ${hi}`);
  }
  assertThrows(
    () => calculateQParams(f32(-1), f32(1), args({ num_bits: 4, type: "float", symmetric: false })),
    QuantizationConfigError,
    "asymmetric quantization is not supported for FP4",
  );
});

Deno.test("NVFP4 worked example: global 224, local scales 448 and 44", () => {
  const g = globalScaleFor(12);
  assertEquals(g, 224);
  // amax_tensor ≈ 448·6 / global_scale
  for (const amax of [3.7, 0.0123, 250]) {
    assert(Math.abs(448 * 6 / globalScaleFor(amax) - amax) < amax * 1e-6, String(amax));
  }
  const nv = presetScheme("NVFP4A16", ["Linear"]).weights!;
  const q = calculateQParams(f32(-6, -1.2), f32(12, 0.3), nv, g);
  assertEquals(Array.from(q.scale), [448, 44]);
  assertEquals(Array.from(q.zeroPoint), [0, 0]);
  // an all-zero group rounds to scale 0 in FP8 and is replaced by FP8's eps 0.125
  const z = calculateQParams(f32(0), f32(0), nv, g);
  assertEquals(z.scale[0], 0.125);
  assertEquals(globalScaleFor(0), Math.fround(2688 / 2 ** -126));
});

Deno.test("MX: round_to_power_2 table and exponents", () => {
  const table: [number, number][] = [
    [5.6879, 4],
    [-8.2916, -8],
    [-1.5403, -1],
    [0.9653, 1],
    [-6.9441, -4],
    [7.2902, 8],
    [2.4857, 2],
  ];
  for (const [x, p] of table) {
    assertEquals(roundToPowerOf2(Math.fround(x)), p, `F32 ${x}`);
    assertEquals(roundToPowerOf2(x, "BF16"), p, `BF16 ${x}`);
    assertEquals(roundToPowerOf2(x, "F16"), p, `F16 ${x}`);
  }
  // the MX exponent equals floor(log2(p2(amax))) − 2 (+127)
  for (const [x, p] of table) {
    assertEquals(mxExponent(Math.abs(x)) - 127, Math.log2(Math.abs(p)) - 2);
  }
  const mx = presetScheme("MXFP4A16", ["Linear"]).weights!;
  const q = calculateQParams(f32(-5.6879, 0, -7.2902), f32(1, 0, 0), mx);
  assertEquals(Array.from(q.scale), [1, 2 ** -127, 2]);
  assertEquals(e8m0Byte(1), 127);
  assertEquals(e8m0Byte(2 ** -127), 0);
  assertEquals(e8m0Byte(0.25), 125);
});

Deno.test("FP4 rounding boundaries (test_fp4_quant)", () => {
  const cases: [number, number][] = [
    [0.25, 0],
    [0.75, 1],
    [1.25, 1],
    [1.75, 2],
    [2.5, 2],
    [3.5, 4],
    [5.0, 4],
    [0.3, 0.5],
    [0.6, 0.5],
    [0.9, 1],
    [1.3, 1.5],
    [1.8, 2],
    [2.7, 3],
    [4.5, 4],
    [7.0, 6],
  ];
  for (const [x, y] of cases) {
    assertEquals(castToFp4(x), y, String(x));
    assertEquals(castToFp4(-x), -y, String(-x));
  }
  assert(Object.is(castToFp4(-0.1), -0));
  assert(Object.is(castToFp4(-0), 0), "torch.sign(-0) is 0");
  assertEquals(fp4Nibble(-0), 8);
  assertEquals(fp4Nibble(0), 0);
  for (let n = 0; n < 16; n++) assertEquals(fp4Nibble(fp4NibbleValue(n)), n);
});

Deno.test("scale_dtype casts: float8 RNE after clamp, ints round half even", () => {
  assertEquals(roundToTorchDtype(44.8, "float8_e4m3fn"), 44);
  assertEquals(roundToTorchDtype(17, "float8_e4m3fn"), 16);
  assertEquals(roundToTorchDtype(1000, "float8_e4m3fn"), 448);
  assertEquals(f32ToF8E4M3Bits(roundToTorchDtype(-1000, "float8_e4m3fn")), 0xfe);
  assertEquals(roundToTorchDtype(300.5, "uint8"), 255);
  assertEquals(roundToTorchDtype(-4.5, "int8"), -4);
  assertEquals(roundToTorchDtype(NaN, "int8"), 0);
  assert(Object.is(roundToTorchDtype(-0.2, "int8"), 0));
});

Deno.test("BF16 emulation rounds every op to bfloat16", () => {
  const q = calculateQParams(f32(-1), f32(1), args({ num_bits: 4 }), null, "BF16");
  // 1 / 7.5 = 0.1333… = 1.0667·2^-3 → 137/128·2^-3 in bf16
  assertEquals(q.scale[0], 0.1337890625);
});
