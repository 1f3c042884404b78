import assert from "node:assert/strict";
import {
  bytesToF32,
  bytesToTyped,
  f32ToBytes,
  TensorBytesError,
} from "../../src/io/tensor_bytes.ts";
import { DTYPES, isDType, isFloatDType } from "../../src/io/dtype.ts";

Deno.test("bytesToF32 decodes every dtype's little-endian bytes", () => {
  const le = (n: number, bytes: number) => {
    const out = new Uint8Array(8);
    new DataView(out.buffer).setBigUint64(0, BigInt.asUintN(64, BigInt(n)), true);
    return out.subarray(0, bytes);
  };
  assert.deepEqual(
    Array.from(bytesToF32("F64", new Uint8Array(new Float64Array([0.1, -2]).buffer))),
    [
      Math.fround(0.1),
      -2,
    ],
  );
  assert.deepEqual(Array.from(bytesToF32("F16", new Uint8Array([0x00, 0x3c, 0x00, 0xc0]))), [
    1,
    -2,
  ]);
  assert.deepEqual(Array.from(bytesToF32("BF16", new Uint8Array([0x80, 0x3f]))), [1]);
  assert.deepEqual(Array.from(bytesToF32("F8_E4M3", new Uint8Array([0x38, 0xf6]))), [1, -224]);
  assert.deepEqual(Array.from(bytesToF32("F8_E5M2", new Uint8Array([0x3c]))), [1]);
  assert.deepEqual(Array.from(bytesToF32("I64", le(-5, 8))), [-5]);
  assert.deepEqual(Array.from(bytesToF32("I32", le(-70000, 4))), [-70000]);
  assert.deepEqual(Array.from(bytesToF32("I16", le(-300, 2))), [-300]);
  assert.deepEqual(Array.from(bytesToF32("I8", new Uint8Array([0xff]))), [-1]);
  assert.deepEqual(Array.from(bytesToF32("U8", new Uint8Array([0xff]))), [255]);
  assert.deepEqual(Array.from(bytesToF32("BOOL", new Uint8Array([0, 1, 2]))), [0, 1, 1]);
});

Deno.test("bytesToTyped handles unaligned views and rejects partial elements", () => {
  const buf = new Uint8Array([9, 0x00, 0x00, 0x80, 0x3f]);
  const t = bytesToTyped("F32", buf.subarray(1));
  assert.ok(t instanceof Float32Array);
  assert.deepEqual(Array.from(t), [1]);
  assert.ok(bytesToTyped("BF16", new Uint8Array(2)) instanceof Uint16Array);
  assert.ok(bytesToTyped("F8_E4M3", new Uint8Array(2)) instanceof Uint8Array);
  assert.ok(bytesToTyped("I64", new Uint8Array(8)) instanceof BigInt64Array);
  assert.throws(() => bytesToTyped("F32", new Uint8Array(6)), TensorBytesError);
});

Deno.test("f32ToBytes round-trips through bytesToF32 for every dtype", () => {
  const values = new Float32Array([0, 1, -2, 3, 96, -128]); // exact in every dtype;
  for (const dtype of DTYPES) {
    const v = dtype === "U8" || dtype === "BOOL" ? values.map((x) => Math.abs(x) % 2) : values;
    assert.deepEqual(bytesToF32(dtype, f32ToBytes(dtype, v)), v, dtype);
  }
  assert.deepEqual(Array.from(f32ToBytes("BF16", new Float32Array([1]))), [0x80, 0x3f]);
  assert.throws(() => f32ToBytes("I8", new Float32Array([128])), /value 128 at index 0/);
  assert.throws(() => f32ToBytes("I32", new Float32Array([0.5])), TensorBytesError);
  assert.throws(() => f32ToBytes("U8", new Float32Array([-1])), TensorBytesError);
});

Deno.test("dtype helpers", () => {
  assert.ok(isDType("F8_E4M3"));
  assert.ok(!isDType("float32"));
  assert.ok(!isDType("toString"));
  assert.ok(!isDType(undefined));
  assert.deepEqual(DTYPES.filter(isFloatDType), [
    "F64",
    "F32",
    "F16",
    "BF16",
    "F8_E4M3",
    "F8_E5M2",
  ]);
});
