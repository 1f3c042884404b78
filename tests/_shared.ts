/**
 * Helpers every test area uses: where the shared read-only data lives,
 * temporary folders, and whether a path exists. Seeded random numbers come
 * from `src/model/seeded_random.ts` (`seededRandom`, mulberry32).
 *
 * @module
 */

/** The project's shared data folder (`../shared` beside the repository root), ending in `/`. */
export const SHARED_DIR = decodeURIComponent(new URL("../../shared/", import.meta.url).pathname);

/** Runs a body with a fresh temporary folder, removed afterwards; see {@link tempDirRunner}. */
export type WithTempDir = <T>(fn: (dir: string) => Promise<T>) => Promise<T>;

/**
 * A `withTempDir` for one test area: each call runs `fn` with a fresh
 * temporary folder whose name starts with `prefix`, removed afterwards
 * (recursively) whether `fn` returns or throws.
 *
 * @param prefix the folder name's prefix, naming the area (e.g. `llmc-io-test-`)
 * @returns the runner; it returns what `fn` returns
 * @example
 * ```ts
 * import { tempDirRunner } from "../_shared.ts";
 * export const withTempDir = tempDirRunner("llmc-io-test-");
 * await withTempDir(async (dir) => await Deno.writeTextFile(`${dir}/a.txt`, "a"));
 * ```
 */
export function tempDirRunner(prefix: string): WithTempDir {
  return async <T>(fn: (dir: string) => Promise<T>): Promise<T> => {
    const dir = await Deno.makeTempDir({ prefix });
    try {
      return await fn(dir);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  };
}

/**
 * Whether a path exists (a broken link counts: it is `lstat`ed, not followed).
 *
 * @param p the path
 * @returns true when something is there
 */
export async function exists(p: string): Promise<boolean> {
  try {
    await Deno.lstat(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * Asserts two float arrays hold the same bits, naming the first difference
 * (assert.deepEqual's diff of long arrays can exhaust memory).
 */
export function assertSameBits(
  got: Float32Array | Float64Array,
  expected: Float32Array | Float64Array,
  label: string,
): void {
  if (got.length !== expected.length || got.constructor !== expected.constructor) {
    throw new Error(
      `${label}: ${got.constructor.name}(${got.length}), expected ${expected.constructor.name}(${expected.length})`,
    );
  }
  const words = got instanceof Float64Array ? 2 : 1;
  const a = new Uint32Array(got.buffer, got.byteOffset, got.length * words);
  const b = new Uint32Array(expected.buffer, expected.byteOffset, expected.length * words);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) {
      const at = Math.floor(i / words);
      throw new Error(`${label}: element ${at} is ${got[at]}, expected ${expected[at]}`);
    }
  }
}
