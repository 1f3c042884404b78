/**
 * Reads a dataset file as strict UTF-8.
 *
 * @module
 */

import { DatasetError } from "./dataset_error.ts";

/**
 * Reads a whole file as UTF-8, rejecting invalid byte sequences rather than
 * replacing them (a replacement character would silently change the tokens).
 * A leading byte-order mark is dropped.
 *
 * @param path the file
 * @returns its text
 * @throws {DatasetError} when the file cannot be read, is empty, or is not valid UTF-8
 * @example
 * ```ts ignore
 * import { readTextFile } from "./read_text_file.ts";
 * const text = await readTextFile("data/tinystories_eval.txt");
 * ```
 */
export async function readTextFile(path: string): Promise<string> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (cause) {
    throw new DatasetError(`${path}: cannot read the dataset: ${(cause as Error).message}`, {
      cause,
    });
  }
  if (bytes.length === 0) throw new DatasetError(`${path}: the dataset file is empty`);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (cause) {
    throw new DatasetError(`${path}: the dataset is not valid UTF-8 text`, { cause });
  }
}
