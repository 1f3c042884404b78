/**
 * Helpers shared by the I/O tests: where the shared read-only data lives,
 * temporary folders, and hand-built safetensors bytes.
 *
 * @module
 */

/** The project's shared data folder (`../shared` beside the repo root). */
export const SHARED_DIR = decodeURIComponent(new URL("../../../shared/", import.meta.url).pathname);

/** The tiny real Llama used across the tests. */
export const STORIES_DIR = `${SHARED_DIR}models/stories260K`;

/** Its weights file. */
export const STORIES_FILE = `${STORIES_DIR}/model.safetensors`;

/**
 * Runs `fn` with a fresh temporary folder, removed afterwards.
 *
 * @param fn the body, given the folder's path
 * @returns what `fn` returns
 */
export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "llmc-io-test-" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Builds safetensors bytes from header text (or an object to stringify) and
 * a data section, with an optional lie in the length field.
 *
 * @param header the JSON header
 * @param data the data section
 * @param lengthField the value for the 8-byte length, default the true one
 * @returns the file's bytes
 */
export function buildFile(
  header: string | Record<string, unknown>,
  data: Uint8Array,
  lengthField?: bigint,
): Uint8Array {
  const text = typeof header === "string" ? header : JSON.stringify(header);
  const json = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lengthField ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/**
 * A deterministic pseudo-random generator (mulberry32).
 *
 * @param seed the seed
 * @returns a function giving floats in [0, 1)
 */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
