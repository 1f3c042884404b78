/**
 * Calibration samples: the token sequences a oneshot run feeds through the
 * model to collect activation statistics.
 *
 * @module
 */

import { seededRandom, shuffled } from "../model/seeded_random.ts";
import { describeDepthExcess, findDepthExcess, MAX_JSON_DEPTH } from "../io/json_limits.ts";
import { DatasetError } from "./dataset_error.ts";
import { readTextFile } from "./read_text_file.ts";
import type { TextTokenizer } from "../io/tokenizer.ts";
import { tokenWindows } from "./token_windows.ts";

/** Arguments of {@link loadCalibrationSamples}. */
export interface CalibrationSamplesArgs {
  /** Plain UTF-8 text, or JSON Lines when the name ends in `.jsonl` or `.ndjson`. */
  path: string;
  /** The model's tokenizer. */
  tokenizer: Pick<TextTokenizer, "encode" | "bosId">;
  /** How many samples (llm-compressor's `num_calibration_samples`). */
  numSamples: number;
  /** The longest sample in tokens, BOS included (`max_seq_length`). */
  maxSeqLength: number;
  /** Shuffle the windows (text) or records (JSONL) before taking the first N; default false. */
  shuffle?: boolean;
  /** The shuffle's seed; default 42. */
  seed?: number;
  /** The JSONL field holding each record's text; default `text`. */
  textField?: string;
}

function isJsonLines(path: string): boolean {
  return /\.(jsonl|ndjson)$/i.test(path);
}

function parseJsonLines(path: string, text: string, field: string): string[] {
  const texts: string[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "") continue;
    const where = `${path}:${i + 1}`;
    const excess = findDepthExcess(line, MAX_JSON_DEPTH);
    if (excess !== null) {
      throw new DatasetError(`${where}: record ${describeDepthExcess(excess, MAX_JSON_DEPTH)}`);
    }
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch (cause) {
      throw new DatasetError(`${where}: not a JSON value: ${(cause as Error).message}`, { cause });
    }
    if (typeof record !== "object" || record === null || Array.isArray(record)) {
      throw new DatasetError(`${where}: expected a JSON object with a '${field}' field`);
    }
    if (!Object.hasOwn(record, field)) {
      throw new DatasetError(`${where}: field '${field}' is missing`);
    }
    const value = (record as Record<string, unknown>)[field];
    if (typeof value !== "string") {
      throw new DatasetError(`${where}: field '${field}' must be a string, got ${typeof value}`);
    }
    texts.push(value);
  }
  return texts;
}

/**
 * Builds calibration samples from a file.
 *
 * - Plain text: the evaluation convention: the whole file tokenized without
 *   special tokens, consecutive windows of `maxSeqLength − 1` tokens with BOS
 *   in front, the first `numSamples` of them (after a seeded shuffle of the
 *   windows when `shuffle`). Every sample is `maxSeqLength` long.
 * - JSON Lines: one sample per record: BOS plus the tokens of the record's
 *   text field, truncated to `maxSeqLength`; the first `numSamples` records
 *   (after a seeded shuffle when `shuffle`). Blank lines are skipped.
 *
 * With a tokenizer that has no BOS, samples carry none.
 *
 * @param args the file, tokenizer, sample count and length, shuffle and field
 * @returns `numSamples` token sequences
 * @throws {DatasetError} for an unreadable, empty or non-UTF-8 file, a JSONL
 *   line that is not an object with a string text field (naming the line), or
 *   too few tokens/records for `numSamples`
 * @example
 * ```ts ignore
 * import { loadCalibrationSamples } from "./calibration_samples.ts";
 * import { loadTokenizer } from "../io/tokenizer.ts";
 * const samples = await loadCalibrationSamples({
 *   path: "data/tinystories_calib.txt",
 *   tokenizer: await loadTokenizer("models/stories260K"),
 *   numSamples: 64,
 *   maxSeqLength: 256,
 * });
 * ```
 */
export async function loadCalibrationSamples(args: CalibrationSamplesArgs): Promise<Int32Array[]> {
  const { path, tokenizer, numSamples, maxSeqLength } = args;
  if (!Number.isInteger(numSamples) || numSamples < 1) {
    throw new DatasetError(`${path}: numSamples must be a positive integer, got ${numSamples}`);
  }
  if (!Number.isInteger(maxSeqLength) || maxSeqLength < 2) {
    throw new DatasetError(`${path}: maxSeqLength must be an integer >= 2, got ${maxSeqLength}`);
  }
  const random = seededRandom(args.seed ?? 42);
  const text = await readTextFile(path);
  const bos = tokenizer.bosId;

  if (!isJsonLines(path)) {
    const per = bos === null ? maxSeqLength : maxSeqLength - 1;
    // Without shuffling only the first windows are used, so only enough of the
    // file to produce them is tokenized (see leadingTokenIds).
    const ids = args.shuffle
      ? tokenizer.encode(text, { addSpecialTokens: false })
      : leadingTokenIds(tokenizer, text, numSamples * per);
    let windows = tokenWindows(ids, maxSeqLength, bos);
    if (windows.length < numSamples) {
      throw new DatasetError(
        `${path}: ${ids.length} tokens make only ${windows.length} samples of ${maxSeqLength}; ` +
          `${numSamples} samples need ${numSamples * per} tokens`,
      );
    }
    if (args.shuffle) windows = shuffled(windows, random);
    return windows.slice(0, numSamples);
  }

  const field = args.textField ?? "text";
  let texts = parseJsonLines(path, text, field);
  if (texts.length < numSamples) {
    throw new DatasetError(
      `${path}: ${texts.length} records, but ${numSamples} calibration samples were requested`,
    );
  }
  if (args.shuffle) texts = shuffled(texts, random);
  return texts.slice(0, numSamples).map((t) => {
    const ids = tokenizer.encode(t, { addSpecialTokens: false });
    const prefix = bos === null ? 0 : 1;
    const len = Math.min(maxSeqLength, ids.length + prefix);
    const sample = new Int32Array(len);
    if (bos !== null) sample[0] = bos;
    for (let i = prefix; i < len; i++) sample[i] = ids[i - prefix];
    return sample;
  });
}

/** Tokens past the needed ones that a prefix must reach before it is trusted. */
const PREFIX_MARGIN_TOKENS = 256;

/**
 * The leading token ids of `text`, at least `needed` of them when the text has
 * that many, without tokenizing the whole file. A prefix sized from a probe's
 * characters-per-token is tokenized, then a longer one; once the shorter
 * reaches well past `needed` ids and both agree on the first `needed`, those
 * are the ids the whole text gives (a cut only perturbs tokens near it).
 * Otherwise the prefix grows, ending with the whole text, so the result is
 * exact either way. Why: calibration files are often far larger than the
 * samples taken from them, and tokenizing all of it dominated small runs'
 * time and memory.
 */
function leadingTokenIds(
  tokenizer: Pick<TextTokenizer, "encode">,
  text: string,
  needed: number,
): number[] {
  const encode = (t: string) => tokenizer.encode(t, { addSpecialTokens: false });
  const probeLen = Math.min(text.length, 8192);
  const probe = encode(text.slice(0, probeLen)).length;
  const charsPerToken = probe > 0 ? probeLen / probe : 4;
  let len = Math.min(
    text.length,
    Math.ceil((needed + PREFIX_MARGIN_TOKENS) * charsPerToken * 1.1) + 1024,
  );
  let ids = encode(text.slice(0, len));
  while (len < text.length) {
    const longerLen = Math.min(text.length, Math.ceil(len * 1.25) + 1024);
    const longer = encode(text.slice(0, longerLen));
    if (ids.length >= needed + PREFIX_MARGIN_TOKENS && samePrefix(ids, longer, needed)) {
      return ids.slice(0, needed);
    }
    ids = longer;
    len = longerLen;
  }
  return ids;
}

function samePrefix(a: readonly number[], b: readonly number[], n: number): boolean {
  if (a.length < n || b.length < n) return false;
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}
