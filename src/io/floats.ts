/**
 * Conversions between float32 and the narrow float formats of checkpoints
 * (bfloat16, float16, float8_e4m3fn, float8_e5m2), bit-identical to PyTorch's
 * c10 casts: round to nearest, ties to even.
 *
 * Every encoder first rounds its JavaScript number to float32
 * (`Math.fround`), because PyTorch casts from a float32 tensor; a double that
 * is not a float32 would otherwise round once instead of twice.
 *
 * The encoders are transliterations of c10's integer algorithms
 * (`round_to_nearest_even`, `fp16_ieee_from_fp32_value`,
 * `fp8e4m3fn_from_fp32_value`, `fp8e5m2_from_fp32_value`) so NaN, overflow
 * and subnormal handling match PyTorch code for code, not only in value.
 *
 * @module
 */

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

function f32Bits(x: number): number {
  scratchF32[0] = x;
  return scratchU32[0];
}

function bitsF32(b: number): number {
  scratchU32[0] = b;
  return scratchF32[0];
}

function u32View(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

// ---------------------------------------------------------------- bfloat16

function bf16FromU32(u: number): number {
  // c10 returns the quiet NaN 0x7FC0 regardless of sign or payload.
  if ((u & 0x7fffffff) > 0x7f800000) return 0x7fc0;
  return ((u + (((u >>> 16) & 1) + 0x7fff)) >>> 16) & 0xffff;
}

/**
 * Encodes a number as bfloat16 bits (PyTorch `tensor.to(torch.bfloat16)`).
 *
 * @param x the value; rounded to float32 first
 * @returns the 16-bit pattern: RNE, overflow to ±inf, any NaN to 0x7FC0
 * @example
 * ```ts
 * import { f32ToBf16Bits } from "./floats.ts";
 * f32ToBf16Bits(1.0); // 0x3f80
 * ```
 */
export function f32ToBf16Bits(x: number): number {
  return bf16FromU32(f32Bits(x));
}

/**
 * Decodes bfloat16 bits.
 *
 * @param b the 16-bit pattern
 * @returns its exact value
 * @example
 * ```ts
 * import { bf16BitsToF32 } from "./floats.ts";
 * bf16BitsToF32(0x3f80); // 1
 * ```
 */
export function bf16BitsToF32(b: number): number {
  return bitsF32(((b & 0xffff) << 16) >>> 0);
}

/**
 * The value of `x` after a float32 → bfloat16 → float32 round trip.
 *
 * @param x the value
 * @returns the nearest bfloat16 value (ties to even)
 * @example
 * ```ts
 * import { roundToBf16 } from "./floats.ts";
 * roundToBf16(1 + 2 ** -8); // 1 (a tie, to the even mantissa)
 * ```
 */
export function roundToBf16(x: number): number {
  return bf16BitsToF32(f32ToBf16Bits(x));
}

/**
 * Encodes a float32 array as bfloat16 bits.
 *
 * @param a the values
 * @returns one 16-bit pattern per value
 * @example
 * ```ts
 * import { toBf16 } from "./floats.ts";
 * toBf16(new Float32Array([1, -2])); // Uint16Array [0x3f80, 0xc000]
 * ```
 */
export function toBf16(a: Float32Array): Uint16Array {
  const u = u32View(a);
  const out = new Uint16Array(u.length);
  for (let i = 0; i < u.length; i++) out[i] = bf16FromU32(u[i]);
  return out;
}

/**
 * Decodes bfloat16 bits into float32 values (exact).
 *
 * @param u the 16-bit patterns
 * @returns the values
 * @example
 * ```ts
 * import { fromBf16 } from "./floats.ts";
 * fromBf16(new Uint16Array([0x3f80])); // Float32Array [1]
 * ```
 */
export function fromBf16(u: Uint16Array): Float32Array {
  const out = new Float32Array(u.length);
  const o = u32View(out);
  for (let i = 0; i < u.length; i++) o[i] = u[i] << 16;
  return out;
}

// ----------------------------------------------------------------- float16

const TWO_112 = 2 ** 112;
const TWO_M110 = 2 ** -110;

function f16FromU32(w: number): number {
  // c10 fp16_ieee_from_fp32_value: the float additions below let the FPU do
  // the rounding, in float32 (Math.fround after each op).
  const f = bitsF32(w);
  let base = Math.fround(Math.fround(Math.abs(f) * TWO_112) * TWO_M110);
  const shl1 = (w * 2) % 0x100000000;
  const sign = (w >>> 16) & 0x8000;
  let bias = shl1 - (shl1 % 0x1000000); // shl1 & 0xFF000000, unsigned
  if (bias < 0x71000000) bias = 0x71000000;
  base = Math.fround(bitsF32((bias / 2) + 0x07800000) + base);
  const bits = f32Bits(base);
  const nonsign = ((bits >>> 13) & 0x7c00) + (bits & 0x0fff);
  return sign | (shl1 > 0xff000000 ? 0x7e00 : nonsign);
}

let f16Table: Float32Array | undefined;

function f16Decode(h: number): number {
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  const s = h & 0x8000 ? -1 : 1;
  if (e === 0x1f) return m === 0 ? s * Infinity : NaN;
  if (e === 0) return s * m * 2 ** -24;
  return s * (1024 + m) * 2 ** (e - 25);
}

function f16TableGet(): Float32Array {
  if (f16Table === undefined) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16Decode(h);
  }
  return f16Table;
}

/**
 * Encodes a number as IEEE float16 bits (PyTorch `tensor.to(torch.float16)`).
 *
 * @param x the value; rounded to float32 first
 * @returns the 16-bit pattern: RNE, overflow to ±inf, NaN to 0x7E00 with the sign
 * @example
 * ```ts
 * import { f32ToF16Bits } from "./floats.ts";
 * f32ToF16Bits(65520); // 0x7c00 (+inf: the tie rounds up past 65504)
 * ```
 */
export function f32ToF16Bits(x: number): number {
  return f16FromU32(f32Bits(x));
}

/**
 * Decodes IEEE float16 bits.
 *
 * @param b the 16-bit pattern
 * @returns its exact value
 * @example
 * ```ts
 * import { f16BitsToF32 } from "./floats.ts";
 * f16BitsToF32(0x3c00); // 1
 * ```
 */
export function f16BitsToF32(b: number): number {
  return f16Decode(b & 0xffff);
}

/**
 * The value of `x` after a float32 → float16 → float32 round trip.
 *
 * @param x the value
 * @returns the nearest float16 value (ties to even), ±inf beyond the range
 * @example
 * ```ts
 * import { roundToF16 } from "./floats.ts";
 * roundToF16(0.1); // 0.0999755859375
 * ```
 */
export function roundToF16(x: number): number {
  return f16Decode(f32ToF16Bits(x));
}

/**
 * Encodes a float32 array as float16 bits.
 *
 * @param a the values
 * @returns one 16-bit pattern per value
 * @example
 * ```ts
 * import { toF16 } from "./floats.ts";
 * toF16(new Float32Array([1])); // Uint16Array [0x3c00]
 * ```
 */
export function toF16(a: Float32Array): Uint16Array {
  const u = u32View(a);
  const out = new Uint16Array(u.length);
  for (let i = 0; i < u.length; i++) out[i] = f16FromU32(u[i]);
  return out;
}

/**
 * Decodes float16 bits into float32 values (exact).
 *
 * @param u the 16-bit patterns
 * @returns the values
 * @example
 * ```ts
 * import { fromF16 } from "./floats.ts";
 * fromF16(new Uint16Array([0x3c00])); // Float32Array [1]
 * ```
 */
export function fromF16(u: Uint16Array): Float32Array {
  const t = f16TableGet();
  const out = new Float32Array(u.length);
  for (let i = 0; i < u.length; i++) out[i] = t[u[i]];
  return out;
}

// ----------------------------------------------------------- float8_e4m3fn

const E4M3_MAX_BITS = 1087 << 20; // 480.0f: from here on the result is NaN
const E4M3_DENORM_MASK = 141 << 23;
const E4M3_MIN_NORMAL_BITS = 121 << 23; // 2^-6

function e4m3FromU32(w: number): number {
  const sign = (w >>> 24) & 0x80;
  const f = (w & 0x7fffffff) >>> 0;
  let result: number;
  if (f >= E4M3_MAX_BITS) {
    // No infinities in e4m3fn: overflow, inf and NaN all become NaN.
    result = 0x7f;
  } else if (f < E4M3_MIN_NORMAL_BITS) {
    // Adding 2^7 (as float32) makes the FPU round the subnormal with RNE.
    const sum = f32Bits(Math.fround(bitsF32(f) + bitsF32(E4M3_DENORM_MASK)));
    result = (sum - E4M3_DENORM_MASK) & 0xff;
  } else {
    const mantOdd = (f >>> 20) & 1;
    result = ((f - (120 << 23) + 0x7ffff + mantOdd) >>> 20) & 0xff;
  }
  return result | sign;
}

function e4m3Decode(b: number): number {
  const s = b & 0x80 ? -1 : 1;
  const e = (b >>> 3) & 0xf;
  const m = b & 7;
  if (e === 0xf && m === 7) return NaN;
  if (e === 0) return s * m * 2 ** -9;
  return s * (8 + m) * 2 ** (e - 10);
}

const E4M3_TABLE = (() => {
  const t = new Float32Array(256);
  for (let b = 0; b < 256; b++) t[b] = e4m3Decode(b);
  return t;
})();

/**
 * Encodes a number as float8_e4m3fn bits (PyTorch `tensor.to(torch.float8_e4m3fn)`).
 *
 * @param x the value; rounded to float32 first
 * @returns the byte: RNE; |x| ≥ 480, ±inf and NaN give NaN (0x7F | sign); ±0 keeps its sign
 * @example
 * ```ts
 * import { f32ToF8E4M3Bits } from "./floats.ts";
 * f32ToF8E4M3Bits(1.0); // 0x38
 * f32ToF8E4M3Bits(464); // 0x7e (448: the tie goes to the even mantissa)
 * ```
 */
export function f32ToF8E4M3Bits(x: number): number {
  return e4m3FromU32(f32Bits(x));
}

/**
 * Decodes float8_e4m3fn bits.
 *
 * @param b the byte
 * @returns its exact value; 0x7F and 0xFF are NaN
 * @example
 * ```ts
 * import { f8E4M3BitsToF32 } from "./floats.ts";
 * f8E4M3BitsToF32(0x7e); // 448
 * ```
 */
export function f8E4M3BitsToF32(b: number): number {
  return E4M3_TABLE[b & 0xff];
}

/**
 * The value of `x` after a float32 → float8_e4m3fn → float32 round trip.
 *
 * @param x the value
 * @returns the nearest e4m3fn value (ties to even); NaN when |x| ≥ 480
 * @example
 * ```ts
 * import { roundToF8E4M3 } from "./floats.ts";
 * roundToF8E4M3(17); // 16 (a tie, to the even mantissa)
 * ```
 */
export function roundToF8E4M3(x: number): number {
  return E4M3_TABLE[f32ToF8E4M3Bits(x)];
}

/**
 * Encodes a float32 array as float8_e4m3fn bytes.
 *
 * @param a the values
 * @returns one byte per value
 * @example
 * ```ts
 * import { toF8E4M3 } from "./floats.ts";
 * toF8E4M3(new Float32Array([1, -224])); // Uint8Array [0x38, 0xf6]
 * ```
 */
export function toF8E4M3(a: Float32Array): Uint8Array {
  const u = u32View(a);
  const out = new Uint8Array(u.length);
  for (let i = 0; i < u.length; i++) out[i] = e4m3FromU32(u[i]);
  return out;
}

/**
 * Decodes float8_e4m3fn bytes into float32 values (exact).
 *
 * @param u the bytes
 * @returns the values
 * @example
 * ```ts
 * import { fromF8E4M3 } from "./floats.ts";
 * fromF8E4M3(new Uint8Array([0x38])); // Float32Array [1]
 * ```
 */
export function fromF8E4M3(u: Uint8Array): Float32Array {
  const out = new Float32Array(u.length);
  for (let i = 0; i < u.length; i++) out[i] = E4M3_TABLE[u[i]];
  return out;
}

// ------------------------------------------------------------- float8_e5m2

const E5M2_MAX_BITS = 143 << 23; // 65536.0f: from here on the result is inf
const F32_INF_BITS = 255 << 23;
const E5M2_DENORM_MASK = 134 << 23;
const E5M2_MIN_NORMAL_BITS = 113 << 23; // 2^-14

function e5m2FromU32(w: number): number {
  const sign = (w >>> 24) & 0x80;
  const f = (w & 0x7fffffff) >>> 0;
  let result: number;
  if (f >= E5M2_MAX_BITS) {
    result = f > F32_INF_BITS ? 0x7f : 0x7c;
  } else if (f < E5M2_MIN_NORMAL_BITS) {
    const sum = f32Bits(Math.fround(bitsF32(f) + bitsF32(E5M2_DENORM_MASK)));
    result = (sum - E5M2_DENORM_MASK) & 0xff;
  } else {
    const mantOdd = (f >>> 21) & 1;
    result = ((f - (112 << 23) + 0xfffff + mantOdd) >>> 21) & 0xff;
  }
  return result | sign;
}

function e5m2Decode(b: number): number {
  const s = b & 0x80 ? -1 : 1;
  const e = (b >>> 2) & 0x1f;
  const m = b & 3;
  if (e === 0x1f) return m === 0 ? s * Infinity : NaN;
  if (e === 0) return s * m * 2 ** -16;
  return s * (4 + m) * 2 ** (e - 17);
}

const E5M2_TABLE = (() => {
  const t = new Float32Array(256);
  for (let b = 0; b < 256; b++) t[b] = e5m2Decode(b);
  return t;
})();

/**
 * Encodes a number as float8_e5m2 bits (PyTorch `tensor.to(torch.float8_e5m2)`).
 *
 * @param x the value; rounded to float32 first
 * @returns the byte: RNE; overflow to ±inf (0x7C | sign); NaN to 0x7F | sign
 * @example
 * ```ts
 * import { f32ToF8E5M2Bits } from "./floats.ts";
 * f32ToF8E5M2Bits(1.0); // 0x3c
 * ```
 */
export function f32ToF8E5M2Bits(x: number): number {
  return e5m2FromU32(f32Bits(x));
}

/**
 * Decodes float8_e5m2 bits.
 *
 * @param b the byte
 * @returns its exact value
 * @example
 * ```ts
 * import { f8E5M2BitsToF32 } from "./floats.ts";
 * f8E5M2BitsToF32(0x7b); // 57344
 * ```
 */
export function f8E5M2BitsToF32(b: number): number {
  return E5M2_TABLE[b & 0xff];
}

/**
 * The value of `x` after a float32 → float8_e5m2 → float32 round trip.
 *
 * @param x the value
 * @returns the nearest e5m2 value (ties to even), ±inf beyond the range
 * @example
 * ```ts
 * import { roundToF8E5M2 } from "./floats.ts";
 * roundToF8E5M2(0.3); // 0.3125
 * ```
 */
export function roundToF8E5M2(x: number): number {
  return E5M2_TABLE[f32ToF8E5M2Bits(x)];
}

/**
 * Encodes a float32 array as float8_e5m2 bytes.
 *
 * @param a the values
 * @returns one byte per value
 * @example
 * ```ts
 * import { toF8E5M2 } from "./floats.ts";
 * toF8E5M2(new Float32Array([1])); // Uint8Array [0x3c]
 * ```
 */
export function toF8E5M2(a: Float32Array): Uint8Array {
  const u = u32View(a);
  const out = new Uint8Array(u.length);
  for (let i = 0; i < u.length; i++) out[i] = e5m2FromU32(u[i]);
  return out;
}

/**
 * Decodes float8_e5m2 bytes into float32 values (exact).
 *
 * @param u the bytes
 * @returns the values
 * @example
 * ```ts
 * import { fromF8E5M2 } from "./floats.ts";
 * fromF8E5M2(new Uint8Array([0x3c])); // Float32Array [1]
 * ```
 */
export function fromF8E5M2(u: Uint8Array): Float32Array {
  const out = new Float32Array(u.length);
  for (let i = 0; i < u.length; i++) out[i] = E5M2_TABLE[u[i]];
  return out;
}
