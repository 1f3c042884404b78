/**
 * Cuts one long token stream into fixed-length model inputs.
 *
 * @module
 */

/**
 * Consecutive windows of a token stream, each with BOS in front: window i is
 * `[bos, ids[i·(L−1)], …, ids[(i+1)·(L−1) − 1]]`, so every window holds
 * `seqLen` = L ids. A trailing partial window is dropped. With no BOS
 * (`bosId` null) the windows are L consecutive tokens instead.
 *
 * This is llmc's evaluation convention (see shared/golden/README.md) and how
 * plain-text calibration samples are built.
 *
 * @param ids the whole tokenized text, without special tokens
 * @param seqLen L, the ids per window (BOS included)
 * @param bosId the BOS id, or null
 * @param limit at most this many windows (default: all)
 * @returns the windows, in order
 * @example
 * ```ts
 * import { tokenWindows } from "./token_windows.ts";
 * tokenWindows([5, 6, 7, 8, 9], 3, 1); // [Int32Array [1, 5, 6], Int32Array [1, 7, 8]]
 * ```
 */
export function tokenWindows(
  ids: ArrayLike<number>,
  seqLen: number,
  bosId: number | null,
  limit = Infinity,
): Int32Array[] {
  if (!Number.isInteger(seqLen) || seqLen < 2) {
    throw new RangeError(`tokenWindows: seqLen must be an integer >= 2, got ${seqLen}`);
  }
  const body = bosId === null ? seqLen : seqLen - 1;
  const count = Math.min(Math.floor(ids.length / body), limit);
  const out: Int32Array[] = [];
  for (let w = 0; w < count; w++) {
    const win = new Int32Array(seqLen);
    let j = 0;
    if (bosId !== null) win[j++] = bosId;
    for (let i = w * body; i < (w + 1) * body; i++) win[j++] = ids[i];
    out.push(win);
  }
  return out;
}
