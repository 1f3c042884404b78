/**
 * The order in which tensors lie in a safetensors file written by Hugging
 * Face's `save_pretrained` (the Rust `safetensors` serializer): by dtype,
 * descending in the serializer's dtype enumeration, then by name. The
 * reference checkpoints llm-compressor writes show exactly this order
 * (`I64` weight_shape first, then `F32`, then `I32` packed weights, then
 * `F8_E4M3`, then `U8`), so llmc lays its output out the same way.
 *
 * @module
 */

import type { DType } from "../io/dtype.ts";

// safetensors' `Dtype` enum order (BOOL < … < U64); the serializer sorts by
// this, descending.
const DTYPE_RANK: Readonly<Record<DType, number>> = Object.freeze({
  BOOL: 0,
  U8: 4,
  I8: 5,
  F8_E5M2: 6,
  F8_E4M3: 7,
  I16: 9,
  F16: 11,
  BF16: 12,
  I32: 13,
  F32: 15,
  F64: 16,
  I64: 17,
});

function compareNames(a: string, b: string): number {
  // Rust compares names byte-wise; for the ASCII names of checkpoints this is
  // UTF-16 code unit order, and code point order keeps it right beyond.
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a.codePointAt(i)! - b.codePointAt(i)!;
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/**
 * Compares two tensors by their position in a file `save_pretrained`
 * writes: higher-ranked dtype first, then name.
 *
 * @param a first tensor (name and dtype)
 * @param b second tensor
 * @returns negative when `a` comes first, positive when `b` does, 0 when equal
 * @example
 * ```ts
 * import { compareSafetensorsOrder } from "./tensor_order.ts";
 * const ts = [
 *   { name: "b.weight_packed", dtype: "I32" as const },
 *   { name: "a.weight_scale", dtype: "F32" as const },
 *   { name: "b.weight_shape", dtype: "I64" as const },
 * ];
 * ts.sort(compareSafetensorsOrder).map((t) => t.name);
 * // ["b.weight_shape", "a.weight_scale", "b.weight_packed"]
 * ```
 */
export function compareSafetensorsOrder(
  a: { readonly name: string; readonly dtype: DType },
  b: { readonly name: string; readonly dtype: DType },
): number {
  return DTYPE_RANK[b.dtype] - DTYPE_RANK[a.dtype] || compareNames(a.name, b.name);
}
