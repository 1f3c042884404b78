/**
 * Whether a tokenizer.json encodes every text as the concatenation of
 * "the prefix through a newline" and the rest, so that encoding only a prefix
 * cut right after a newline gives exactly the whole text's leading ids.
 *
 * @module
 */

/** The normalizers that act on each character alone (Prepend only touches the start). */
const LOCAL_NORMALIZERS: Record<string, (n: Record<string, unknown>) => boolean> = {
  // A newline in the prepended text would reach normalized added tokens' contents.
  Prepend: (n) => typeof n.prepend === "string" && !n.prepend.includes("\n"),
  Replace: (n) => {
    const pattern = (n.pattern as { String?: unknown } | undefined)?.String;
    // The tokenizer library replaces with String.replaceAll, which reads "$'"
    // and "$`" in the content as the text after / before the match.
    return typeof pattern === "string" && pattern !== "" && !pattern.includes("\n") &&
      typeof n.content === "string" && !n.content.includes("\n") && !n.content.includes("$");
  },
  Sequence: (n) => Array.isArray(n.normalizers) && n.normalizers.every(isLocalNormalizer),
};

function isLocalNormalizer(n: unknown): boolean {
  if (n === null || n === undefined) return true;
  if (typeof n !== "object") return false;
  const check = LOCAL_NORMALIZERS[String((n as { type?: unknown }).type)];
  return check !== undefined && check(n as Record<string, unknown>);
}

/**
 * True when the tokenizer provably never merges across the boundary right
 * after a newline: no pre-tokenizer (the normalized text is one BPE word), a
 * normalizer that only prepends or replaces newline-free strings, a BPE model
 * without dropout, ignore_merges or word affixes whose newline is never unknown (so no
 * unknown-token fusing) and none of whose merges has a left part ending in a
 * newline, and added tokens without newlines or left-stripping. BPE on one
 * word then splits at that boundary: no pair straddling it ever merges, so
 * each side merges as it would alone. Anything else (a pre-tokenizer, another
 * model type) answers false and callers keep their general path.
 *
 * @param json the parsed tokenizer.json
 * @param config the parsed tokenizer_config.json, which the tokenizer library
 *   also reads: its `remove_space` trims and collapses whitespace (newlines
 *   included) before normalization, so it answers false
 * @returns whether a prefix cut after a newline encodes exactly
 * @example
 * ```ts
 * import { newlineCutIsExact } from "./_newline_cut.ts";
 * newlineCutIsExact({ pre_tokenizer: { type: "ByteLevel" }, model: { type: "BPE" } }); // false
 * ```
 */
export function newlineCutIsExact(
  json: Record<string, unknown>,
  config: Record<string, unknown> = {},
): boolean {
  if (config.remove_space === true || config.do_lowercase_and_remove_accent === true) return false;
  if (json.pre_tokenizer !== null && json.pre_tokenizer !== undefined) return false;
  if (!isLocalNormalizer(json.normalizer)) return false;
  const model = json.model as Record<string, unknown> | undefined;
  if (typeof model !== "object" || model === null || model.type !== "BPE") return false;
  if ((model.dropout ?? 0) !== 0) return false;
  // ignore_merges looks the whole word up in the vocabulary first: a prefix
  // could be one token where the whole text is not.
  if (model.ignore_merges === true) return false;
  if ((model.continuing_subword_prefix ?? null) !== null) return false;
  // The tokenizer library reads this key (not only HF's prefix): it marks every token but a word's last.
  if ((model.continuing_subword_suffix ?? null) !== null) return false;
  if ((model.end_of_word_suffix ?? null) !== null) return false;
  const vocab = model.vocab as Record<string, unknown> | undefined;
  if (typeof vocab !== "object" || vocab === null) return false;
  const newlineKnown = Object.hasOwn(vocab, "\n") ||
    (model.byte_fallback === true && Object.hasOwn(vocab, "<0x0A>"));
  if (!newlineKnown) return false;
  const merges = Array.isArray(model.merges) ? model.merges : [];
  for (const m of merges) {
    // A merge is [left, right] or (the older format) "left right".
    const left = Array.isArray(m) ? m[0] : typeof m === "string" ? m.split(" ")[0] : null;
    if (typeof left !== "string" || left.endsWith("\n")) return false;
  }
  const added = Array.isArray(json.added_tokens) ? json.added_tokens : [];
  return added.every((t) =>
    typeof t === "object" && t !== null && typeof t.content === "string" &&
    !t.content.includes("\n") && t.lstrip !== true
  );
}
