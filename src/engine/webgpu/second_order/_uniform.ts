/**
 * Packing of kernel uniform structs: u32 fields first, then f32 fields,
 * padded to 16 bytes (every Params struct in kernels/gptq_* and friends is
 * laid out that way).
 *
 * @module
 */

/**
 * Packs the fields of a uniform struct.
 *
 * @param u32 the leading u32 fields, in declaration order
 * @param f32 the f32 fields that follow them
 * @returns the bytes, as a fresh Uint32Array (never reused: batches keep a reference)
 *
 * @example
 * ```ts
 * import { packUniform } from "./_uniform.ts";
 * const u = packUniform([1, 2], [0.5]);
 * console.assert(u.length === 4 && new Float32Array(u.buffer)[2] === 0.5);
 * ```
 */
export function packUniform(u32: readonly number[], f32: readonly number[] = []): Uint32Array {
  const words = Math.ceil((u32.length + f32.length) / 4) * 4;
  const out = new Uint32Array(Math.max(4, words));
  out.set(u32);
  new Float32Array(out.buffer).set(f32, u32.length);
  return out;
}
