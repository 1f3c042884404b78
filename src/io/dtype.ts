/**
 * The tensor element types llmc reads and writes, spelled as safetensors
 * spells them in a file header.
 *
 * @module
 */

/**
 * A safetensors dtype string. `F8_E4M3` is PyTorch's `float8_e4m3fn`
 * (no infinities), `F8_E5M2` is `float8_e5m2`.
 *
 * @example
 * ```ts
 * import type { DType } from "./dtype.ts";
 * const d: DType = "BF16";
 * ```
 */
export type DType =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "F8_E4M3"
  | "F8_E5M2"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U8"
  | "BOOL";

/**
 * Bytes per element of each dtype.
 *
 * @example
 * ```ts
 * import { DTYPE_BYTES } from "./dtype.ts";
 * const bytes = 4096 * 4096 * DTYPE_BYTES.BF16; // 32 MiB
 * ```
 */
export const DTYPE_BYTES: Readonly<Record<DType, number>> = Object.freeze({
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
});

/** Every supported dtype, in the order of {@link DType}. */
export const DTYPES: readonly DType[] = Object.freeze(Object.keys(DTYPE_BYTES) as DType[]);

/**
 * Whether a string names a supported dtype.
 *
 * @param s any value, typically a header's `dtype` field
 * @returns true when `s` is one of the {@link DType} strings
 * @example
 * ```ts
 * import { isDType } from "./dtype.ts";
 * isDType("BF16"); // true
 * isDType("bfloat16"); // false
 * ```
 */
export function isDType(s: unknown): s is DType {
  return typeof s === "string" && Object.hasOwn(DTYPE_BYTES, s);
}

/**
 * Whether a dtype holds floating-point values.
 *
 * @param d a dtype
 * @returns true for F64, F32, F16, BF16, F8_E4M3 and F8_E5M2
 * @example
 * ```ts
 * import { isFloatDType } from "./dtype.ts";
 * isFloatDType("F8_E4M3"); // true
 * isFloatDType("I8"); // false
 * ```
 */
export function isFloatDType(d: DType): boolean {
  return d[0] === "F" || d === "BF16";
}
