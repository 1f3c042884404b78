/**
 * `CompressedTensor`: one tensor as it will be written to safetensors (name,
 * dtype, shape, little-endian bytes), and the small helpers every format
 * file uses to build and read them.
 *
 * @module
 */

import type { DType } from "../io/dtype.ts";
import { DTYPE_BYTES } from "../io/dtype.ts";
import { bytesToF32, bytesToTyped, f32ToBytes } from "../io/tensor_bytes.ts";
import { CompressionError } from "./errors.ts";

/** A tensor ready to be written: full name, dtype, shape and little-endian bytes. */
export interface CompressedTensor {
  /** Full tensor name, e.g. `model.layers.0.mlp.up_proj.weight_packed`. */
  readonly name: string;
  /** safetensors dtype. */
  readonly dtype: DType;
  /** Shape (row-major). */
  readonly shape: readonly number[];
  /** `product(shape) × DTYPE_BYTES[dtype]` bytes, little-endian. */
  readonly data: Uint8Array;
}

/**
 * Builds a tensor after checking that the bytes fit the shape.
 *
 * @param name full tensor name
 * @param dtype safetensors dtype
 * @param shape shape
 * @param data little-endian bytes
 * @returns the tensor
 * @throws {CompressionError} when the byte length does not match
 * @example
 * ```ts
 * import { makeTensor } from "./compressed_tensor.ts";
 * makeTensor("x.weight", "U8", [2], new Uint8Array([1, 2])).shape; // [2]
 * ```
 */
export function makeTensor(
  name: string,
  dtype: DType,
  shape: readonly number[],
  data: Uint8Array,
): CompressedTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  if (n * DTYPE_BYTES[dtype] !== data.byteLength) {
    throw new CompressionError(
      `${name}: ${data.byteLength} bytes do not hold a ${dtype} tensor of shape [${
        shape.join(", ")
      }]`,
    );
  }
  return Object.freeze({ name, dtype, shape: Object.freeze([...shape]), data });
}

/**
 * A tensor from float values, encoded to `dtype` (floats: PyTorch RNE;
 * integer dtypes: values must be integers in range).
 *
 * @param name full tensor name
 * @param dtype target dtype
 * @param shape shape
 * @param values the values
 * @returns the tensor
 * @example
 * ```ts
 * import { tensorFromValues } from "./compressed_tensor.ts";
 * tensorFromValues("p.weight_scale", "BF16", [1], new Float32Array([1])).data; // [0x80, 0x3f]
 * ```
 */
export function tensorFromValues(
  name: string,
  dtype: DType,
  shape: readonly number[],
  values: Float32Array,
): CompressedTensor {
  return makeTensor(name, dtype, shape, f32ToBytes(dtype, values));
}

/**
 * An I32 tensor from 32-bit integers.
 *
 * @param name full tensor name
 * @param shape shape
 * @param values the integers
 * @returns the tensor
 * @example
 * ```ts
 * import { int32Tensor } from "./compressed_tensor.ts";
 * int32Tensor("p.weight_packed", [1, 1], new Int32Array([9])).dtype; // "I32"
 * ```
 */
export function int32Tensor(
  name: string,
  shape: readonly number[],
  values: Int32Array,
): CompressedTensor {
  return makeTensor(
    name,
    "I32",
    shape,
    new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
  );
}

/**
 * An I64 tensor from safe integers (shapes, offsets).
 *
 * @param name full tensor name
 * @param shape shape
 * @param values the integers
 * @returns the tensor
 * @example
 * ```ts
 * import { int64Tensor } from "./compressed_tensor.ts";
 * int64Tensor("p.weight_shape", [2], [830, 545]).data.length; // 16
 * ```
 */
export function int64Tensor(
  name: string,
  shape: readonly number[],
  values: readonly number[],
): CompressedTensor {
  const big = BigInt64Array.from(values, (v) => BigInt(v));
  return makeTensor(name, "I64", shape, new Uint8Array(big.buffer));
}

/**
 * The values of a tensor as float32 (any dtype; I64 through Number).
 *
 * @param t the tensor
 * @returns a new Float32Array
 * @example
 * ```ts
 * import { tensorValues, tensorFromValues } from "./compressed_tensor.ts";
 * tensorValues(tensorFromValues("s", "F16", [1], new Float32Array([0.5])))[0]; // 0.5
 * ```
 */
export function tensorValues(t: CompressedTensor): Float32Array {
  return bytesToF32(t.dtype, t.data);
}

/**
 * The integers of an I32 tensor.
 *
 * @param t an I32 tensor
 * @returns its values
 * @throws {CompressionError} for another dtype
 * @example
 * ```ts
 * import { int32Values, int32Tensor } from "./compressed_tensor.ts";
 * int32Values(int32Tensor("p", [1], new Int32Array([-1])))[0]; // -1
 * ```
 */
export function int32Values(t: CompressedTensor): Int32Array {
  if (t.dtype !== "I32") throw new CompressionError(`${t.name}: expected I32, got ${t.dtype}`);
  return bytesToTyped("I32", t.data) as Int32Array;
}

/**
 * The integers of an I64 tensor as numbers.
 *
 * @param t an I64 tensor
 * @returns its values
 * @throws {CompressionError} for another dtype or a value beyond 2^53
 * @example
 * ```ts
 * import { int64Values, int64Tensor } from "./compressed_tensor.ts";
 * int64Values(int64Tensor("p", [2], [3, 4])); // [3, 4]
 * ```
 */
export function int64Values(t: CompressedTensor): number[] {
  if (t.dtype !== "I64") throw new CompressionError(`${t.name}: expected I64, got ${t.dtype}`);
  const big = bytesToTyped("I64", t.data) as BigInt64Array;
  return Array.from(big, (b) => {
    const n = Number(b);
    if (!Number.isSafeInteger(n)) throw new CompressionError(`${t.name}: value ${b} is too large`);
    return n;
  });
}

/**
 * Looks a tensor up by name.
 *
 * @param tensors the tensors of a module (or more)
 * @param name the full name
 * @returns the tensor
 * @throws {CompressionError} naming the missing tensor
 * @example
 * ```ts
 * import { requireTensor, int32Tensor } from "./compressed_tensor.ts";
 * requireTensor([int32Tensor("a", [1], new Int32Array(1))], "a").dtype; // "I32"
 * ```
 */
export function requireTensor(
  tensors: readonly CompressedTensor[],
  name: string,
): CompressedTensor {
  const t = tensors.find((x) => x.name === name);
  if (t === undefined) throw new CompressionError(`${name}: tensor missing`);
  return t;
}

/**
 * Looks a tensor up by name, or returns undefined.
 *
 * @param tensors the tensors
 * @param name the full name
 * @returns the tensor or undefined
 * @example
 * ```ts
 * import { findTensor } from "./compressed_tensor.ts";
 * findTensor([], "a"); // undefined
 * ```
 */
export function findTensor(
  tensors: readonly CompressedTensor[],
  name: string,
): CompressedTensor | undefined {
  return tensors.find((x) => x.name === name);
}
