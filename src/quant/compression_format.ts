/**
 * The compressed-tensors 0.13.0 `CompressionFormat` names.
 *
 * @module
 */

/** Every compression format string compressed-tensors 0.13.0 knows. */
export const COMPRESSION_FORMATS = [
  "dense",
  "sparse-bitmask",
  "sparse-24-bitmask",
  "int-quantized",
  "float-quantized",
  "naive-quantized",
  "pack-quantized",
  "marlin-24",
  "mixed-precision",
  "nvfp4-pack-quantized",
  "mxfp4-pack-quantized",
] as const;

/** A compression format name (`format` of a config group or of the whole config). */
export type CompressionFormat = typeof COMPRESSION_FORMATS[number];

/** A format a single module's weights can be stored in (everything but `mixed-precision`). */
export type ModuleFormat = Exclude<CompressionFormat, "mixed-precision">;

/**
 * Whether a value names a compression format.
 *
 * @param s any value
 * @returns true for one of {@link COMPRESSION_FORMATS}
 * @example
 * ```ts
 * import { isCompressionFormat } from "./compression_format.ts";
 * isCompressionFormat("pack-quantized"); // true
 * isCompressionFormat("packed"); // false
 * ```
 */
export function isCompressionFormat(s: unknown): s is CompressionFormat {
  return typeof s === "string" && (COMPRESSION_FORMATS as readonly string[]).includes(s);
}
