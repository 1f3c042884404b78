import assert from "node:assert/strict";
import {
  bf16BitsToF32,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
  f32ToF8E4M3Bits,
  f32ToF8E5M2Bits,
  f8E4M3BitsToF32,
  f8E5M2BitsToF32,
  fromBf16,
  fromF16,
  fromF8E4M3,
  fromF8E5M2,
  roundToBf16,
  roundToF16,
  roundToF8E4M3,
  roundToF8E5M2,
  toBf16,
  toF16,
  toF8E4M3,
  toF8E5M2,
} from "../../src/io/floats.ts";

// An independent, value-based reference: exact arithmetic on doubles (a float32
// divided by a power of two is exact), RNE by hand, then the format's code.
// It shares nothing with the bit-twiddling transliteration of c10 under test.
interface Format {
  e: number;
  m: number;
  fn: boolean; // "fn": no infinities, the all-ones code is NaN
  nan: (neg: boolean) => number;
}
const BF16: Format = { e: 8, m: 7, fn: false, nan: () => 0x7fc0 };
const F16: Format = { e: 5, m: 10, fn: false, nan: (n) => (n ? 0xfe00 : 0x7e00) };
const E4M3: Format = { e: 4, m: 3, fn: true, nan: (n) => (n ? 0xff : 0x7f) };
const E5M2: Format = { e: 5, m: 2, fn: false, nan: (n) => (n ? 0xff : 0x7f) };

function refEncode(x0: number, f: Format): number {
  const x = Math.fround(x0);
  const neg = x < 0 || Object.is(x, -0) || (Number.isNaN(x) && signOfNaN(x0));
  if (Number.isNaN(x)) return f.nan(neg);
  const signBit = 2 ** (f.e + f.m);
  const bias = 2 ** (f.e - 1) - 1;
  const emin = 1 - bias;
  const infCode = (2 ** f.e - 1) * 2 ** f.m;
  const maxCode = f.fn ? infCode + 2 ** f.m - 2 : infCode - 1;
  const overflowCode = f.fn ? infCode + 2 ** f.m - 1 : infCode;
  const a = Math.abs(x);
  let code: number;
  if (a === Infinity) {
    code = overflowCode;
  } else {
    let e = emin;
    while (2 ** (e + 1) <= a) e++;
    const n = a / 2 ** (e - f.m);
    let fl = Math.floor(n);
    const fr = n - fl;
    if (fr > 0.5 || (fr === 0.5 && fl % 2 === 1)) fl++;
    code = (e - emin) * 2 ** f.m + fl;
    if (code > maxCode) code = overflowCode;
  }
  return code + (neg ? signBit : 0);
}

function signOfNaN(x: number): boolean {
  const f = new Float32Array([x]);
  return (new Uint32Array(f.buffer)[0] >>> 31) === 1;
}

function f32FromBits(u: number): number {
  return new Float32Array(new Uint32Array([u]).buffer)[0];
}

const hex = (n: number) => "0x" + n.toString(16);

Deno.test("f8 e4m3fn: SPEC §1.3 examples", () => {
  const cases: Array<[number, number]> = [
    [1.0, 0x38],
    [0.5, 0x30],
    [240, 0x77],
    [64, 0x68],
    [-224, 0xf6],
    [3.5, 0x46],
    [0.1, 0x1d],
    [17, 0x58],
    [19, 0x5a],
    [-0.0, 0x80],
    [448, 0x7e],
  ];
  for (const [x, b] of cases) assert.equal(hex(f32ToF8E4M3Bits(x)), hex(b), `${x}`);
});

Deno.test("f8 e4m3fn: edge cases", () => {
  const cases: Array<[number, number]> = [
    [0, 0x00],
    [-0, 0x80],
    [2 ** -9, 0x01], // min subnormal
    [-(2 ** -9), 0x81],
    [2 ** -10, 0x00], // tie between 0 and min subnormal: to even (0)
    [-(2 ** -10), 0x80], // and the sign of zero survives
    [Math.fround(2 ** -10 * 1.0000001), 0x01], // just above the tie
    [1.5 * 2 ** -9, 0x02], // tie between 1 and 2 units: to even (2)
    [2.5 * 2 ** -9, 0x02], // tie between 2 and 3 units: to even (2)
    [7 * 2 ** -9, 0x07], // max subnormal
    [2 ** -6, 0x08], // min normal
    [7.5 * 2 ** -9, 0x08], // tie between max subnormal and min normal: to even
    [448, 0x7e], // max finite
    [-448, 0xfe],
    [464, 0x7e], // tie between 448 and the NaN code: to even (448)
    [Math.fround(464 * (1 + 2 ** -20)), 0x7f], // first float32 above the tie
    [479.99, 0x7f],
    [480, 0x7f],
    [-480, 0xff],
    [1e30, 0x7f],
    [Infinity, 0x7f],
    [-Infinity, 0xff],
    [NaN, 0x7f],
  ];
  for (const [x, b] of cases) assert.equal(hex(f32ToF8E4M3Bits(x)), hex(b), `${x}`);
  assert.ok(Number.isNaN(f8E4M3BitsToF32(0x7f)));
  assert.ok(Number.isNaN(f8E4M3BitsToF32(0xff)));
  assert.equal(f8E4M3BitsToF32(0x7e), 448);
  assert.equal(f8E4M3BitsToF32(0x01), 2 ** -9);
  assert.ok(Object.is(f8E4M3BitsToF32(0x80), -0));
  assert.equal(roundToF8E4M3(17), 16);
  assert.equal(roundToF8E4M3(0.1), 0.1015625);
});

Deno.test("f8 e5m2: edge cases", () => {
  const cases: Array<[number, number]> = [
    [1, 0x3c],
    [-0, 0x80],
    [2 ** -16, 0x01], // min subnormal
    [2 ** -17, 0x00], // tie to even (0)
    [3 * 2 ** -16, 0x03], // max subnormal
    [2 ** -14, 0x04], // min normal
    [57344, 0x7b], // max finite
    [-57344, 0xfb],
    [Math.fround(61440 * (1 - 2 ** -24)), 0x7b], // just below the tie
    [61440, 0x7c], // tie between max finite (odd) and inf: to even (inf)
    [65536, 0x7c],
    [Infinity, 0x7c],
    [-Infinity, 0xfc],
    [NaN, 0x7f],
    [1.125, 0x3c], // tie: to even (1.0)
    [1.375, 0x3e], // tie: to even (1.5)
  ];
  for (const [x, b] of cases) assert.equal(hex(f32ToF8E5M2Bits(x)), hex(b), `${x}`);
  assert.equal(f8E5M2BitsToF32(0x7c), Infinity);
  assert.equal(f8E5M2BitsToF32(0xfc), -Infinity);
  assert.ok(Number.isNaN(f8E5M2BitsToF32(0x7d)));
  assert.equal(roundToF8E5M2(0.3), 0.3125);
});

Deno.test("f16: edge cases", () => {
  const cases: Array<[number, number]> = [
    [1, 0x3c00],
    [-2, 0xc000],
    [-0, 0x8000],
    [2 ** -24, 0x0001], // min subnormal
    [2 ** -25, 0x0000], // tie to even
    [1.5 * 2 ** -24, 0x0002],
    [1023 * 2 ** -24, 0x03ff], // max subnormal
    [2 ** -14, 0x0400], // min normal
    [65504, 0x7bff], // max finite
    [Math.fround(65520 * (1 - 2 ** -24)), 0x7bff],
    [65520, 0x7c00], // tie: to even (inf)
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
    [NaN, 0x7e00],
    [1 + 2 ** -11, 0x3c00], // tie: to even
    [1 + 3 * 2 ** -11, 0x3c02], // tie: to even
    [0.1, 0x2e66],
  ];
  for (const [x, b] of cases) assert.equal(hex(f32ToF16Bits(x)), hex(b), `${x}`);
  assert.equal(f16BitsToF32(0x7bff), 65504);
  assert.equal(roundToF16(0.1), 0.0999755859375);
});

Deno.test("bf16: edge cases", () => {
  const cases: Array<[number, number]> = [
    [1, 0x3f80],
    [-0, 0x8000],
    [1 + 2 ** -8, 0x3f80], // tie: to even
    [1 + 3 * 2 ** -8, 0x3f82], // tie: to even
    [f32FromBits(0x7f7fffff), 0x7f80], // float32 max rounds up to inf
    [f32FromBits(0x7f7f7fff), 0x7f7f], // just below the tie: max finite bf16
    [f32FromBits(0x7f7f8000), 0x7f80], // the tie: to even (inf)
    [f32FromBits(0x00000001), 0x0000], // smallest float32 subnormal
    [f32FromBits(0x00008000), 0x0000], // tie: to even
    [f32FromBits(0x00018000), 0x0002], // tie: to even
    [f32FromBits(0x00010000), 0x0001], // min bf16 subnormal
    [Infinity, 0x7f80],
    [-Infinity, 0xff80],
    [NaN, 0x7fc0],
    [f32FromBits(0xffc00001), 0x7fc0], // negative NaN, payload: still 0x7FC0
  ];
  for (const [x, b] of cases) assert.equal(hex(f32ToBf16Bits(x)), hex(b), `${x}`);
  assert.equal(bf16BitsToF32(0x3f80), 1);
  assert.equal(roundToBf16(Math.PI), 3.140625);
});

Deno.test("encoders round the number to float32 first", () => {
  // 1 + 2^-8 + 2^-30 is above the bf16 tie as a double, exactly on it as a float32.
  assert.equal(f32ToBf16Bits(1 + 2 ** -8 + 2 ** -30), 0x3f80);
  assert.equal(f32ToF8E4M3Bits(1.0625 + 2 ** -40), 0x38);
});

const formats: Array<{
  name: string;
  f: Format;
  enc: (x: number) => number;
  dec: (b: number) => number;
  codes: number;
}> = [
  { name: "bf16", f: BF16, enc: f32ToBf16Bits, dec: bf16BitsToF32, codes: 65536 },
  { name: "f16", f: F16, enc: f32ToF16Bits, dec: f16BitsToF32, codes: 65536 },
  { name: "e4m3", f: E4M3, enc: f32ToF8E4M3Bits, dec: f8E4M3BitsToF32, codes: 256 },
  { name: "e5m2", f: E5M2, enc: f32ToF8E5M2Bits, dec: f8E5M2BitsToF32, codes: 256 },
];

function sameValue(a: number, b: number): boolean {
  return Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));
}

for (const { name, enc, dec, codes } of formats) {
  Deno.test(`${name}: decode(encode(decode(b))) == decode(b) for all ${codes} codes`, () => {
    for (let b = 0; b < codes; b++) {
      const v = dec(b);
      const back = enc(v);
      if (!sameValue(dec(back), v)) assert.fail(`${name} code ${hex(b)} → ${v} → ${hex(back)}`);
      // Every non-NaN code is canonical: it is its own encoding.
      if (!Number.isNaN(v) && back !== b) {
        assert.fail(`${name} code ${hex(b)} re-encodes ${hex(back)}`);
      }
    }
  });
}

for (const { name, f, enc, dec, codes } of formats) {
  Deno.test(`${name}: matches the value-based RNE reference at every code boundary`, () => {
    // Around each pair of neighbouring codes, probe the midpoint and the float32
    // values one ulp either side of it: ties and near-ties are where bugs live.
    const probe = new Float32Array(1);
    const probeBits = new Uint32Array(probe.buffer);
    const half = codes / 2;
    for (let b = 0; b < half - 1; b++) {
      const lo = dec(b);
      const hi = dec(b + 1);
      if (!Number.isFinite(lo) || !Number.isFinite(hi)) continue;
      const mid = Math.fround((lo + hi) / 2);
      probe[0] = mid;
      const midBits = probeBits[0];
      for (const d of [-1, 0, 1]) {
        for (const s of [0, 0x80000000]) {
          probeBits[0] = (midBits + d + s) >>> 0;
          const x = probe[0];
          const got = enc(x);
          const want = refEncode(x, f);
          if (got !== want) assert.fail(`${name}(${x}) = ${hex(got)}, want ${hex(want)}`);
        }
      }
    }
  });

  Deno.test(`${name}: matches the reference on 200k random float32 bit patterns`, () => {
    let seed = 0x9e3779b9;
    const probe = new Float32Array(1);
    const probeBits = new Uint32Array(probe.buffer);
    for (let i = 0; i < 200_000; i++) {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      // Half the draws keep the exponent near the format's range.
      probeBits[0] = i % 2 === 0 ? seed : (seed & 0x807fffff) | ((100 + (seed % 60)) << 23);
      const x = probe[0];
      const got = enc(x);
      const want = refEncode(x, f);
      if (got !== want) assert.fail(`${name}(${x}) = ${hex(got)}, want ${hex(want)}`);
    }
  });
}

Deno.test("f16 agrees with the runtime's Float16Array on finite values", () => {
  const a = new Float32Array(100_000);
  const u = new Uint32Array(a.buffer);
  let seed = 12345;
  for (let i = 0; i < u.length; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    u[i] = (seed & 0x807fffff) | ((95 + (seed % 50)) << 23);
  }
  const want = new Uint16Array(new Float16Array(a).buffer);
  assert.deepEqual(toF16(a), want);
});

Deno.test("array forms agree with the scalar forms", () => {
  const a = new Float32Array(4096);
  const u = new Uint32Array(a.buffer);
  let seed = 7;
  for (let i = 0; i < u.length; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    u[i] = seed;
  }
  // A view at a non-zero byte offset must read its own elements only.
  const sub = a.subarray(3, 4000);
  const pairs: Array<[(x: Float32Array) => ArrayLike<number>, (x: number) => number]> = [
    [toBf16, f32ToBf16Bits],
    [toF16, f32ToF16Bits],
    [toF8E4M3, f32ToF8E4M3Bits],
    [toF8E5M2, f32ToF8E5M2Bits],
  ];
  for (const [arr, scalar] of pairs) {
    const out = arr(sub);
    assert.equal(out.length, sub.length);
    for (let i = 0; i < sub.length; i++) assert.equal(out[i], scalar(sub[i]));
  }
  const c16 = new Uint16Array(65536).map((_, i) => i);
  const c8 = new Uint8Array(256).map((_, i) => i);
  const decs: Array<[Float32Array, (b: number) => number]> = [
    [fromBf16(c16), bf16BitsToF32],
    [fromF16(c16), f16BitsToF32],
    [fromF8E4M3(c8), f8E4M3BitsToF32],
    [fromF8E5M2(c8), f8E5M2BitsToF32],
  ];
  for (const [out, scalar] of decs) {
    for (let i = 0; i < out.length; i++) {
      assert.ok(sameValue(out[i], Math.fround(scalar(i))), `code ${hex(i)}`);
    }
  }
});
