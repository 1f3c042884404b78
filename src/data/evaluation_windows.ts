/**
 * The perplexity evaluation set: llmc's (and the golden reference's)
 * windowing of a text file.
 *
 * @module
 */

import { DatasetError } from "./dataset_error.ts";
import { readTextFile } from "./read_text_file.ts";
import type { TextTokenizer } from "../io/tokenizer.ts";
import { tokenWindows } from "./token_windows.ts";
import { newlineCutTokenIds } from "./_leading_ids.ts";

/** Arguments of {@link loadEvaluationWindows}. */
export interface EvaluationWindowsArgs {
  /** A UTF-8 text file. */
  path: string;
  /** The model's tokenizer. */
  tokenizer: Pick<TextTokenizer, "encode" | "bosId" | "newlineCutIsExact">;
  /** L, the ids per window including BOS. */
  seqLen: number;
  /** N, how many windows from the start of the file. */
  windows: number;
}

/**
 * Tokenizes the file without special tokens, cuts consecutive windows of
 * L−1 tokens, puts BOS in front of each and keeps the first N. Only the
 * N·(L−1) leading ids are needed: a tokenizer whose cut after a newline is
 * provably exact (`newlineCutIsExact`) encodes just a prefix that holds them
 * (the same ids as the whole file's first ones); any other encodes the whole
 * file.
 *
 * @param args the file, tokenizer, L and N
 * @returns N windows of L ids each
 * @throws {DatasetError} when the file is unreadable, empty, not UTF-8, or
 *   holds fewer than N·(L−1) tokens
 * @example
 * ```ts ignore
 * import { loadEvaluationWindows } from "./evaluation_windows.ts";
 * import { loadTokenizer } from "../io/tokenizer.ts";
 * const tokenizer = await loadTokenizer("models/stories260K");
 * const windows = await loadEvaluationWindows({
 *   path: "data/tinystories_eval.txt", tokenizer, seqLen: 256, windows: 40,
 * });
 * ```
 */
export async function loadEvaluationWindows(args: EvaluationWindowsArgs): Promise<Int32Array[]> {
  const { path, tokenizer, seqLen, windows } = args;
  if (!Number.isInteger(seqLen) || seqLen < 2) {
    throw new DatasetError(`${path}: max sequence length must be an integer >= 2, got ${seqLen}`);
  }
  if (!Number.isInteger(windows) || windows < 1) {
    throw new DatasetError(
      `${path}: the number of windows must be a positive integer, got ${windows}`,
    );
  }
  const text = await readTextFile(path);
  const per = tokenizer.bosId === null ? seqLen : seqLen - 1;
  // Fewer than needed only when the whole text was encoded, so the error's count is the file's.
  const ids =
    (tokenizer.newlineCutIsExact === true
      ? newlineCutTokenIds(tokenizer, text, windows * per)
      : null) ?? tokenizer.encode(text, { addSpecialTokens: false });
  const out = tokenWindows(ids, seqLen, tokenizer.bosId, windows);
  if (out.length < windows) {
    throw new DatasetError(
      `${path}: ${ids.length} tokens make only ${out.length} windows of ${seqLen}; ` +
        `${windows} windows need ${windows * per} tokens`,
    );
  }
  return out;
}
