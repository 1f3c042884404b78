/**
 * A model folder's tokenizer (tokenizer.json + tokenizer_config.json),
 * run by `@huggingface/tokenizers`, behind a small interface of our own.
 *
 * @module
 */

import { Tokenizer } from "@huggingface/tokenizers";
import { LlmcError } from "../errors.ts";
import { joinPath } from "./_path.ts";
import { newlineCutIsExact } from "./_newline_cut.ts";
import { installFastBpe } from "./_fast_bpe.ts";
import {
  MAX_CONFIG_BYTES,
  MAX_JSON_DEPTH,
  MAX_TOKENIZER_BYTES,
  readLimitedJsonText,
} from "./json_limits.ts";

/** Text ↔ token ids for one model. */
export interface TextTokenizer {
  /**
   * Encodes text to token ids.
   *
   * @param text the text
   * @param options `addSpecialTokens` (default true) applies the post-processor, e.g. BOS
   * @returns the ids
   */
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  /**
   * Decodes token ids to text.
   *
   * @param ids the ids
   * @param options `skipSpecialTokens` (default false) drops BOS/EOS and the like
   * @returns the text
   */
  decode(ids: number[], options?: { skipSpecialTokens?: boolean }): string;
  /** The id of the BOS token, or null when the tokenizer has none. */
  readonly bosId: number | null;
  /** The id of the EOS token, or null when the tokenizer has none. */
  readonly eosId: number | null;
  /** One more than the largest token id, added tokens included. */
  readonly vocabSize: number;
  /**
   * True when encoding a prefix of a text that ends right after a newline
   * provably gives the whole text's leading ids (checked from tokenizer.json:
   * no pre-tokenizer, character-local normalizer, no BPE merge across a
   * newline); absent or false when unknown.
   */
  readonly newlineCutIsExact?: boolean;
}

/** A tokenizer file is missing or cannot be understood. */
export class TokenizerError extends LlmcError {
  /** The file at fault. */
  readonly file: string;

  /**
   * @param file the file at fault
   * @param message what was wrong and what was expected
   * @param options the underlying cause, if any
   */
  constructor(file: string, message: string, options?: ErrorOptions) {
    super(`${file}: ${message}`, options);
    this.file = file;
  }
}

/**
 * Loads the tokenizer of a model folder. tokenizer_config.json is optional;
 * without it (or without its `bos_token`/`eos_token`), special_tokens_map.json
 * is consulted.
 *
 * @param dir the model folder
 * @returns the tokenizer
 * @throws {TokenizerError} naming the file when tokenizer.json is missing or
 *   invalid, or a config file is not valid JSON
 * @example
 * ```ts ignore
 * import { loadTokenizer } from "./tokenizer.ts";
 * const tok = await loadTokenizer("models/stories260K");
 * tok.encode("Once upon a time", { addSpecialTokens: false }); // [403, 407, 261, 378]
 * ```
 */
export async function loadTokenizer(dir: string): Promise<TextTokenizer> {
  const tokPath = joinPath(dir, "tokenizer.json");
  const tokJson = await readJsonObject(tokPath, true);
  const cfgPath = joinPath(dir, "tokenizer_config.json");
  const cfg = (await readJsonObject(cfgPath, false)) ?? {};
  const mapPath = joinPath(dir, "special_tokens_map.json");
  const specialMap = (await readJsonObject(mapPath, false)) ?? {};

  checkTokenIds(tokJson!, tokPath);
  let tok: Tokenizer;
  try {
    tok = new Tokenizer(tokJson!, cfg);
  } catch (e) {
    throw new TokenizerError(
      tokPath,
      `is not a tokenizer this library can run: ${(e as Error).message}`,
      {
        cause: e,
      },
    );
  }
  // The same merges, merge for merge, without the library's per-pair string keys (see _fast_bpe.ts).
  installFastBpe((tok as unknown as { model: unknown }).model);
  // The tokenizer library trusts its JSON: a malformed file can make any call
  // throw a TypeError. Every call is guarded so the error names the file.
  const guard = <T>(what: string, run: () => T): T => {
    try {
      return run();
    } catch (e) {
      if (e instanceof TokenizerError) throw e;
      throw new TokenizerError(tokPath, `${what} failed: ${(e as Error)?.message ?? e}`, {
        cause: e,
      });
    }
  };
  const idOf = (key: "bos_token" | "eos_token"): number | null => {
    const content = tokenContent(cfg[key]) ?? tokenContent(specialMap[key]);
    if (content === null) return null;
    return guard(`looking up ${key}`, () => tok.token_to_id(content)) ?? null;
  };
  let maxId = -1;
  guard("reading the vocabulary", () => {
    for (const id of tok.get_vocab(true).values()) if (id > maxId) maxId = id;
  });

  return {
    encode(text, options = {}) {
      return guard(
        "encoding",
        () => tok.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids,
      );
    },
    decode(ids, options = {}) {
      return guard(
        "decoding",
        () => tok.decode(ids, { skip_special_tokens: options.skipSpecialTokens ?? false }),
      );
    },
    bosId: idOf("bos_token"),
    eosId: idOf("eos_token"),
    vocabSize: maxId + 1,
    newlineCutIsExact: newlineCutIsExact(tokJson!, cfg),
  };
}

/**
 * Refuses token ids the tokenizer library would turn into huge tables: every
 * id in `model.vocab` and `added_tokens` must be a non-negative integer below
 * twice the number of tokens (real vocabularies are dense, 0..n-1), so a
 * mistyped `23E8` cannot make a 15 KB file allocate gigabytes or hang.
 */
function checkTokenIds(json: Record<string, unknown>, path: string): void {
  const model = json.model as { vocab?: unknown } | undefined;
  const vocab = typeof model === "object" && model !== null ? model.vocab : undefined;
  const added = Array.isArray(json.added_tokens) ? json.added_tokens : [];
  const ids: Array<[string, unknown]> = [];
  if (typeof vocab === "object" && vocab !== null && !Array.isArray(vocab)) {
    for (const [token, id] of Object.entries(vocab)) ids.push([`model.vocab['${token}']`, id]);
  }
  added.forEach((t, i) => {
    if (typeof t === "object" && t !== null) ids.push([`added_tokens[${i}].id`, t.id]);
  });
  const limit = Math.max(2 * (ids.length + (Array.isArray(vocab) ? vocab.length : 0)), 1024);
  for (const [where, id] of ids) {
    if (!Number.isSafeInteger(id) || (id as number) < 0 || (id as number) >= limit) {
      throw new TokenizerError(
        path,
        `${where} is ${JSON.stringify(id)}; token ids must be integers in [0, ${limit}) ` +
          `(below twice the number of tokens)`,
      );
    }
  }
}

// A special token is written either as its text or as an AddedToken object.
function tokenContent(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (
    typeof v === "object" && v !== null && typeof (v as { content?: unknown }).content === "string"
  ) {
    return (v as { content: string }).content;
  }
  return null;
}

async function readJsonObject(
  path: string,
  required: boolean,
): Promise<Record<string, unknown> | null> {
  let text: string;
  try {
    const max = path.endsWith("tokenizer.json") ? MAX_TOKENIZER_BYTES : MAX_CONFIG_BYTES;
    const read = await readLimitedJsonText(path, max, MAX_JSON_DEPTH);
    if ("fault" in read) throw new TokenizerError(path, read.fault);
    text = read.text;
  } catch (e) {
    if (e instanceof TokenizerError) throw e;
    if (!required && e instanceof Deno.errors.NotFound) return null;
    const why = e instanceof Deno.errors.NotFound ? "does not exist" : (e as Error).message;
    throw new TokenizerError(path, `cannot read: ${why}`, { cause: e });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new TokenizerError(path, `is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new TokenizerError(path, "is not a JSON object");
  }
  return json as Record<string, unknown>;
}
