/**
 * Helpers shared by the I/O tests: where the shared read-only data lives,
 * temporary folders, and hand-built safetensors bytes.
 *
 * @module
 */

import { SHARED_DIR, tempDirRunner, type WithTempDir } from "../_shared.ts";

/** The tiny real Llama used across the tests. */
export const STORIES_DIR = `${SHARED_DIR}models/stories260K`;

/** Its weights file. */
export const STORIES_FILE = `${STORIES_DIR}/model.safetensors`;

/** Runs `fn` with a fresh temporary folder (`llmc-io-test-*`), removed afterwards. */
export const withTempDir: WithTempDir = tempDirRunner("llmc-io-test-");

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
