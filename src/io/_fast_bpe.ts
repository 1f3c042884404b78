/**
 * A faster, exact replacement for the merge loop of `@huggingface/tokenizers`'
 * BPE model (its `bpe(token)` method), installed on a loaded model instance.
 *
 * The library's loop keys every candidate pair by `JSON.stringify([a, b])`,
 * copies node objects on every merge and runs cold for the one long "word"
 * a tokenizer without a pre-tokenizer (Llama/SentencePiece style) sees: a
 * calibration text's ~40,000 characters took ~60 % of the encode, ~100–300 ms
 * on the 2-core development machine. This loop interns the merges' symbols as
 * integers once, keeps the word in typed arrays and a binary heap of
 * `rank · n + position` keys.
 *
 * Same result, merge for merge: the library pops the candidate with the
 * smallest `rank + position / n` (the position of the pair's left symbol in
 * the word, kept by a merged symbol), i.e. the lowest rank first and the
 * leftmost among equal ranks, and skips candidates whose symbols changed
 * since they were queued. Here a candidate is valid exactly when the pair now
 * at its position still has its rank (a rank names one pair of symbols; when
 * a pair is listed twice the library keeps its last rank, and so does this
 * table). Symbols are strings and a merge's result is the concatenation, so
 * the output strings are the library's.
 *
 * @module
 */

/** The parts of the library's BPE model this module reads and replaces. */
interface BpeModelInternals {
  merges: unknown;
  bpe_ranks: unknown;
  bpe: (token: string) => string[];
  end_of_word_suffix?: unknown;
  continuing_subword_suffix?: unknown;
  max_length_to_cache?: unknown;
  cache?: { get(key: string): string[] | undefined; put(key: string, value: string[]): void };
}

/** `next` of a symbol merged into its left neighbour (-1 ends the word). */
const DEAD = -2;

/** Symbol ids: the keys of pairs are `left · SYMBOL_LIMIT + right`, exact in a double. */
const SYMBOL_LIMIT = 2 ** 26;

/** The merges as integers: symbol ids, each pair's rank and each rank's result. */
interface MergeTable {
  readonly ids: Map<string, number>;
  readonly names: string[];
  /** `left · SYMBOL_LIMIT + right` → rank (the last listing of a pair). */
  readonly rankOf: Map<number, number>;
  /** rank → the merged symbol's id. */
  readonly resultOf: Int32Array;
}

/**
 * Replaces `model.bpe` with the exact integer merge loop when `model` is a
 * plain BPE model of `@huggingface/tokenizers` (merges as pairs or "a b"
 * strings, no end-of-word suffix or continuing-subword suffix); otherwise
 * leaves it alone.
 *
 * @param model the tokenizer's `model` object
 * @returns whether the loop was installed
 * @example
 * ```ts ignore
 * import { Tokenizer } from "@huggingface/tokenizers";
 * const tok = new Tokenizer(tokenizerJson, tokenizerConfig);
 * installFastBpe((tok as unknown as { model: unknown }).model);
 * ```
 */
export function installFastBpe(model: unknown): boolean {
  // The library's models are callable objects (functions).
  if ((typeof model !== "object" && typeof model !== "function") || model === null) return false;
  const m = model as BpeModelInternals;
  if (typeof m.bpe !== "function" || !(m.bpe_ranks instanceof Map)) return false;
  if (m.end_of_word_suffix || m.continuing_subword_suffix) return false;
  const table = mergeTable(m.merges);
  if (table === null) return false;
  const cache = m.cache;
  const cacheBelow = typeof m.max_length_to_cache === "number" ? m.max_length_to_cache : 0;
  const valid = cache !== undefined && typeof cache.get === "function" &&
    typeof cache.put === "function";
  m.bpe = (token: string): string[] => {
    if (token.length === 0) return [];
    if (valid) {
      const hit = cache.get(token);
      if (hit !== undefined) return hit;
    }
    const result = mergeWord(table, token);
    if (valid && token.length < cacheBelow) cache.put(token, result);
    return result;
  };
  return true;
}

/** The integer merge table, or null when the merges are not the library's pairs. */
function mergeTable(merges: unknown): MergeTable | null {
  if (!Array.isArray(merges)) return null;
  const ids = new Map<string, number>();
  const names: string[] = [];
  const intern = (s: string): number => {
    let id = ids.get(s);
    if (id === undefined) {
      id = names.length;
      ids.set(s, id);
      names.push(s);
    }
    return id;
  };
  const rankOf = new Map<number, number>();
  const resultOf = new Int32Array(merges.length);
  // The library's own reading: pairs when the first entry is an array, else
  // every entry a string split at its first space.
  const pairs = Array.isArray(merges[0]);
  for (let rank = 0; rank < merges.length; rank++) {
    const entry = merges[rank];
    // A string among pairs is keyed as a string there and never matches a pair: no rank.
    if (pairs && !Array.isArray(entry)) continue;
    const pair = pairs ? entry : typeof entry === "string" ? entry.split(" ", 2) : null;
    if (pair === null || typeof pair[0] !== "string" || typeof pair[1] !== "string") return null;
    // JSON.stringify of a pair with extra elements or a missing one keys differently: leave it.
    if (pair.length !== 2) return null;
    const a = intern(pair[0]);
    const b = intern(pair[1]);
    resultOf[rank] = intern(pair[0] + pair[1]);
    if (names.length >= SYMBOL_LIMIT) return null;
    rankOf.set(a * SYMBOL_LIMIT + b, rank);
  }
  return { ids, names, rankOf, resultOf };
}

/** The BPE of one word: the library's merge order on integer symbols. */
function mergeWord(table: MergeTable, token: string): string[] {
  const chars = Array.from(token);
  const n = chars.length;
  if (n === 1) return chars;
  const { ids, names, rankOf, resultOf } = table;
  const sym = new Int32Array(n);
  const next = new Int32Array(n);
  const prev = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    // A character no merge mentions never merges (-1 is in no pair).
    sym[i] = ids.get(chars[i]) ?? -1;
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  const rank = (left: number): number => {
    const right = next[left];
    if (right < 0 || sym[left] < 0 || sym[right] < 0) return -1;
    return rankOf.get(sym[left] * SYMBOL_LIMIT + sym[right]) ?? -1;
  };
  const heap = new MinHeap(n);
  for (let i = 0; i + 1 < n; i++) {
    const r = rank(i);
    if (r >= 0) heap.push(r * n + i);
  }
  while (heap.size > 0) {
    const key = heap.pop();
    const left = key % n;
    const r = (key - left) / n;
    // Skipped: a symbol merged away (next = DEAD), or a pair that changed since it was queued.
    if (next[left] === DEAD || rank(left) !== r) continue;
    const right = next[left];
    sym[left] = resultOf[r];
    const after = next[right];
    next[left] = after;
    if (after >= 0) prev[after] = left;
    next[right] = DEAD;
    const before = prev[left];
    if (before >= 0) {
      const rb = rank(before);
      if (rb >= 0) heap.push(rb * n + before);
    }
    if (after >= 0) {
      const ra = rank(left);
      if (ra >= 0) heap.push(ra * n + left);
    }
  }
  const out: string[] = [];
  for (let i = 0; i >= 0; i = next[i]) out.push(sym[i] >= 0 ? names[sym[i]] : chars[i]);
  return out;
}

/** A binary min-heap of non-negative integer keys (exact in a double). */
class MinHeap {
  #keys: Float64Array;
  size = 0;

  constructor(capacity: number) {
    this.#keys = new Float64Array(Math.max(16, capacity));
  }

  push(key: number): void {
    if (this.size === this.#keys.length) {
      const grown = new Float64Array(this.#keys.length * 2);
      grown.set(this.#keys);
      this.#keys = grown;
    }
    const k = this.#keys;
    let i = this.size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (k[parent] <= key) break;
      k[i] = k[parent];
      i = parent;
    }
    k[i] = key;
  }

  pop(): number {
    const k = this.#keys;
    const top = k[0];
    const last = k[--this.size];
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= this.size) break;
      if (child + 1 < this.size && k[child + 1] < k[child]) child++;
      if (k[child] >= last) break;
      k[i] = k[child];
      i = child;
    }
    k[i] = last;
    return top;
  }
}
