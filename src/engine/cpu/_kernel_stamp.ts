/**
 * Stamps of the CPU kernels' sources: the first 32 bits of the SHA-256 of
 * each C source and the headers it includes (carriage returns dropped, so a
 * checkout with CRLF line ends stamps the same). `deno task build-wasm`
 * compiles a source's stamp into its builds; the loaders compare a build's
 * stamp with {@linkcode KERNEL_STAMPS} and refuse one built from other source,
 * whose op numbers may mean other things; tests/engine compares the committed
 * sources with the stamps, so changed C that was not rebuilt fails there.
 *
 * @module
 */

import { KERNEL_STAMPS } from "./_kernel_stamps.ts";

export { KERNEL_STAMPS };

/** A stamped build: its file in `kernels/` and the files its stamp covers. */
export interface StampedSource {
  /** The main source, the key of {@linkcode KERNEL_STAMPS}. */
  readonly source: keyof typeof KERNEL_STAMPS;
  /** The sources the stamp covers, in order: the main source, then the headers it includes. */
  readonly files: readonly string[];
}

/** Every stamped source. */
export const STAMPED_SOURCES: readonly StampedSource[] = [
  { source: "gemm.c", files: ["gemm.c", "_simd128_x86.h"] },
  { source: "block_transform.c", files: ["block_transform.c"] },
];

/**
 * The stamp of some source files' texts: the first 32 bits of the SHA-256 of
 * their concatenation, carriage returns removed.
 *
 * @param texts the files' contents, in {@linkcode StampedSource.files} order
 * @returns the stamp, an unsigned 32-bit integer
 * @example
 * ```ts
 * import { sourceStamp } from "./_kernel_stamp.ts";
 * const stamp = await sourceStamp(["int x;\n"]);
 * console.assert(stamp === await sourceStamp(["int x;\r\n"]));
 * ```
 */
export async function sourceStamp(texts: readonly string[]): Promise<number> {
  const bytes = new TextEncoder().encode(texts.join("").replaceAll("\r", ""));
  const digest = new DataView(await crypto.subtle.digest("SHA-256", bytes));
  return digest.getUint32(0);
}

/**
 * Why a build's stamp is not the one this TypeScript expects, or null when it is.
 *
 * @param build the build's file name, for the message
 * @param source its source
 * @param stamp the stamp the build reports
 * @returns the reason, naming the build, both stamps and the fix
 * @example
 * ```ts
 * import { KERNEL_STAMPS, stampMismatch } from "./_kernel_stamp.ts";
 * console.assert(stampMismatch("gemm_simd.wasm", "gemm.c", KERNEL_STAMPS["gemm.c"]) === null);
 * ```
 */
export function stampMismatch(
  build: string,
  source: keyof typeof KERNEL_STAMPS,
  stamp: number,
): string | null {
  const expected = KERNEL_STAMPS[source];
  if (stamp >>> 0 === expected) return null;
  const hex = (v: number) => `0x${v.toString(16).padStart(8, "0")}`;
  return `${build} was built from another ${source} (stamp ${hex(stamp >>> 0)}, expected ` +
    `${hex(expected)}); rebuild the kernels with \`deno task build-wasm\``;
}
