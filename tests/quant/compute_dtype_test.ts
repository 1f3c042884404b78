/**
 * The float16 rounding of quantization arithmetic (`rounderFor("F16")`, on
 * the float32's bits) gives the bits of io's c10 port
 * (`roundToF16`) on every float32 rounding case: each sign and exponent,
 * with the mantissa bits that decide the rounding (ties, sticky bits, the
 * float16 subnormal range, overflow to infinity) enumerated, NaNs and
 * infinities included.
 */

import assert from "node:assert/strict";
import { roundToF16 } from "../../src/io/floats.ts";
import { rounderFor, roundF16InPlace } from "../../src/quant/compute_dtype.ts";

Deno.test("rounderFor('F16') = roundToF16(fround(x)) on every float32 rounding case", () => {
  const r = rounderFor("F16");
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  const out = new Float32Array(2);
  const bits = new Uint32Array(out.buffer);
  // Bits 12..22 in every combination (every rounding position of a float16
  // normal or subnormal result), the 12 below as the patterns that decide a
  // rounding (zero, one, just under / at / over half, all ones).
  const low = [0, 1, 0x7ff, 0x800, 0x801, 0xfff];
  let checked = 0;
  for (let sign = 0; sign < 2; sign++) {
    for (let e = 0; e < 256; e++) {
      for (let hi = 0; hi < 2048; hi++) {
        for (const lo of low) {
          u[0] = ((sign << 31) | (e << 23) | (hi << 12) | lo) >>> 0;
          const x = f[0];
          out[0] = r(x);
          out[1] = roundToF16(x);
          if (bits[0] !== bits[1]) {
            assert.fail(`0x${u[0].toString(16)}: ${out[0]} vs c10's ${out[1]}`);
          }
          checked++;
        }
      }
    }
  }
  assert.equal(checked, 2 * 256 * 2048 * low.length);
  // Values between floats: rounded to float32 first, as the ops' results are.
  for (const x of [1 / 3, 65519.99, 65520.01, 2 ** -25 * 1.0000001, -(2 ** -24) * 1.5]) {
    out[0] = r(x);
    out[1] = roundToF16(Math.fround(x));
    assert.equal(bits[0], bits[1], `${x}`);
  }
});

Deno.test("roundF16InPlace rounds a run as rounderFor('F16') does, bit for bit", () => {
  const r = rounderFor("F16");
  // Every exponent and sign, each with the rounding patterns of the low 13 bits
  // and a few high mantissas: zeros, subnormals, normals, overflow, inf, NaN.
  const patterns: number[] = [];
  for (let sign = 0; sign < 2; sign++) {
    for (let e = 0; e < 256; e++) {
      for (const hi of [0, 1, 0x155, 0x3ff]) {
        for (const lo of [0, 1, 0xfff, 0x1000, 0x1001, 0x1fff]) {
          patterns.push(((sign << 31) | (e << 23) | (hi << 13) | lo) >>> 0);
        }
      }
    }
  }
  const values = new Float32Array(patterns.length + 2);
  const bits = new Int32Array(values.buffer);
  new Uint32Array(values.buffer).set(patterns, 1);
  const expected = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) expected[i] = r(values[i]);
  // The first and last elements lie outside the run and stay as they are.
  values[0] = 0.1;
  values[values.length - 1] = 0.1;
  roundF16InPlace(values, bits, 1, patterns.length);
  const want = new Int32Array(expected.buffer);
  for (let i = 1; i <= patterns.length; i++) {
    if (bits[i] !== want[i]) {
      assert.fail(`0x${patterns[i - 1].toString(16)}: ${values[i]} vs ${expected[i]}`);
    }
  }
  assert.equal(values[0], Math.fround(0.1));
  assert.equal(values[values.length - 1], Math.fround(0.1));
});
