/**
 * The leading token ids of a text without tokenizing all of it, for
 * tokenizers whose prefix cut right after a newline provably gives the whole
 * text's ids (`TextTokenizer.newlineCutIsExact`, see io/_newline_cut.ts).
 * Used by the calibration samples and the evaluation windows.
 *
 * @module
 */

import type { TextTokenizer } from "../io/tokenizer.ts";

/** Characters of the first prefix, whose ids give the characters-per-token rate. */
const FIRST_CUT_CHARS = 4096;

/**
 * The leading token ids of `text`, at least `needed` of them when the text has
 * that many, for a tokenizer whose prefix cut right after a newline is exact
 * (`newlineCutIsExact`): a short prefix gives the characters-per-token rate,
 * then the prefix through the first newline past the estimated length is
 * encoded once (growing only if that fell short). Each encode's ids are the
 * whole text's leading ids, so no second encode is needed to confirm them.
 * Returns null when the text has no newline where a cut is wanted; the caller
 * then takes the general path.
 *
 * @param tokenizer one whose `newlineCutIsExact` is true (the caller checks)
 * @param text the whole text
 * @param needed how many leading ids are wanted
 * @returns the first `needed` ids (all of them when the text has fewer), or null
 * @example
 * ```ts ignore
 * const ids = newlineCutTokenIds(tokenizer, text, 64 * 255) ?? tokenizer.encode(text);
 * ```
 */
export function newlineCutTokenIds(
  tokenizer: Pick<TextTokenizer, "encode">,
  text: string,
  needed: number,
): number[] | null {
  const encode = (t: string) => tokenizer.encode(t, { addSpecialTokens: false });
  // The index just past the first newline at or after `at`; the text's end when `at` reaches it.
  const cutAt = (at: number): number => {
    if (at >= text.length) return text.length;
    const nl = text.indexOf("\n", at);
    return nl < 0 ? -1 : nl + 1;
  };
  let end = cutAt(Math.min(FIRST_CUT_CHARS, text.length));
  if (end < 0) return null;
  let ids = encode(text.slice(0, end));
  while (ids.length < needed && end < text.length) {
    const charsPerToken = end / Math.max(ids.length, 1);
    end = cutAt(Math.max(end + 1, Math.ceil(needed * charsPerToken * 1.05) + 256));
    if (end < 0) return null;
    ids = encode(text.slice(0, end));
  }
  return ids.length > needed ? ids.slice(0, needed) : ids;
}
