/**
 * Views and conversions between a tensor's raw little-endian bytes and
 * JavaScript typed arrays.
 *
 * Typed arrays use the platform's byte order; safetensors is little-endian.
 * Every platform Deno ships for is little-endian, and the check below makes
 * a big-endian one fail loudly instead of reading garbage.
 *
 * @module
 */

import type { DType } from "./dtype.ts";
import { DTYPE_BYTES } from "./dtype.ts";
import {
  fromBf16,
  fromF16,
  fromF8E4M3,
  fromF8E5M2,
  toBf16,
  toF16,
  toF8E4M3,
  toF8E5M2,
} from "./floats.ts";
import { LlmcError } from "../errors.ts";

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new LlmcError("llmc needs a little-endian platform: safetensors data is little-endian");
}

/**
 * The natural JavaScript view of a tensor: F16/BF16 as raw 16-bit patterns,
 * F8 as raw bytes, BOOL as bytes.
 */
export type TypedTensor =
  | Float32Array
  | Float64Array
  | Int32Array
  | BigInt64Array
  | Int16Array
  | Int8Array
  | Uint8Array
  | Uint16Array;

/** An error converting between bytes and values (length or dtype mismatch). */
export class TensorBytesError extends LlmcError {}

function aligned(bytes: Uint8Array, dtype: DType): Uint8Array {
  const size = DTYPE_BYTES[dtype];
  if (bytes.byteLength % size !== 0) {
    throw new TensorBytesError(
      `${bytes.byteLength} bytes is not a whole number of ${dtype} elements (${size} bytes each)`,
    );
  }
  // A view needs an aligned start; copying is the only way to get one.
  return bytes.byteOffset % size === 0 ? bytes : bytes.slice();
}

/**
 * Views raw bytes as the dtype's natural typed array (no copy when aligned).
 *
 * @param dtype the tensor's dtype
 * @param bytes its little-endian bytes
 * @returns a typed array over the same memory, or over an aligned copy
 * @example
 * ```ts
 * import { bytesToTyped } from "./tensor_bytes.ts";
 * const v = bytesToTyped("I16", new Uint8Array([1, 0, 255, 255])); // Int16Array [1, -1]
 * ```
 */
export function bytesToTyped(dtype: DType, bytes: Uint8Array): TypedTensor {
  const b = aligned(bytes, dtype);
  const n = b.byteLength / DTYPE_BYTES[dtype];
  switch (dtype) {
    case "F64":
      return new Float64Array(b.buffer, b.byteOffset, n);
    case "F32":
      return new Float32Array(b.buffer, b.byteOffset, n);
    case "F16":
    case "BF16":
      return new Uint16Array(b.buffer, b.byteOffset, n);
    case "I64":
      return new BigInt64Array(b.buffer, b.byteOffset, n);
    case "I32":
      return new Int32Array(b.buffer, b.byteOffset, n);
    case "I16":
      return new Int16Array(b.buffer, b.byteOffset, n);
    case "I8":
      return new Int8Array(b.buffer, b.byteOffset, n);
    case "F8_E4M3":
    case "F8_E5M2":
    case "U8":
    case "BOOL":
      return b;
  }
}

/**
 * Converts raw bytes of any dtype to float32 values: floats are widened
 * (F64 rounded to nearest), integers converted as numbers, BOOL as 0/1.
 *
 * @param dtype the tensor's dtype
 * @param bytes its little-endian bytes
 * @returns a new Float32Array (never aliasing `bytes`)
 * @example
 * ```ts
 * import { bytesToF32 } from "./tensor_bytes.ts";
 * bytesToF32("BF16", new Uint8Array([0x80, 0x3f])); // Float32Array [1]
 * ```
 */
export function bytesToF32(dtype: DType, bytes: Uint8Array): Float32Array {
  const t = bytesToTyped(dtype, bytes);
  switch (dtype) {
    case "F32":
      return (t as Float32Array).slice();
    case "F16":
      return fromF16(t as Uint16Array);
    case "BF16":
      return fromBf16(t as Uint16Array);
    case "F8_E4M3":
      return fromF8E4M3(t as Uint8Array);
    case "F8_E5M2":
      return fromF8E5M2(t as Uint8Array);
    case "BOOL": {
      const out = new Float32Array(t.length);
      for (let i = 0; i < t.length; i++) out[i] = t[i] ? 1 : 0;
      return out;
    }
    case "I64": {
      const s = t as BigInt64Array;
      const out = new Float32Array(s.length);
      for (let i = 0; i < s.length; i++) out[i] = Number(s[i]);
      return out;
    }
    default:
      return Float32Array.from(t as ArrayLike<number>);
  }
}

/**
 * Encodes float32 values as raw bytes of a float dtype (PyTorch rounding:
 * RNE, see floats.ts) or of an integer dtype (values must already be
 * integers in range; they are written as they are, not rounded).
 *
 * @param dtype the target dtype
 * @param values the values
 * @returns new little-endian bytes, `values.length × DTYPE_BYTES[dtype]` long
 * @throws {TensorBytesError} when an integer dtype gets a non-integer or out-of-range value
 * @example
 * ```ts
 * import { f32ToBytes } from "./tensor_bytes.ts";
 * f32ToBytes("BF16", new Float32Array([1])); // Uint8Array [0x80, 0x3f]
 * ```
 */
export function f32ToBytes(dtype: DType, values: Float32Array): Uint8Array {
  const asBytes = (t: TypedTensor) => new Uint8Array(t.buffer, t.byteOffset, t.byteLength);
  switch (dtype) {
    case "F32":
      return asBytes(values.slice());
    case "F64":
      return asBytes(Float64Array.from(values));
    case "F16":
      return asBytes(toF16(values));
    case "BF16":
      return asBytes(toBf16(values));
    case "F8_E4M3":
      return toF8E4M3(values);
    case "F8_E5M2":
      return toF8E5M2(values);
    case "I64": {
      // 2^63 - 1 is not a double; 2^63 - 1024 is the largest one below 2^63.
      checkIntegers(dtype, values, -(2 ** 63), 2 ** 63 - 1024);
      return asBytes(BigInt64Array.from(values, (v) => BigInt(v)));
    }
    case "I32":
      checkIntegers(dtype, values, -(2 ** 31), 2 ** 31 - 1);
      return asBytes(Int32Array.from(values));
    case "I16":
      checkIntegers(dtype, values, -(2 ** 15), 2 ** 15 - 1);
      return asBytes(Int16Array.from(values));
    case "I8":
      checkIntegers(dtype, values, -128, 127);
      return asBytes(Int8Array.from(values));
    case "U8":
      checkIntegers(dtype, values, 0, 255);
      return Uint8Array.from(values);
    case "BOOL":
      checkIntegers(dtype, values, 0, 1);
      return Uint8Array.from(values);
  }
}

function checkIntegers(dtype: DType, values: Float32Array, lo: number, hi: number): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isInteger(v) || v < lo || v > hi) {
      throw new TensorBytesError(
        `value ${v} at index ${i} is not an integer in [${lo}, ${hi}] as ${dtype} needs`,
      );
    }
  }
}
