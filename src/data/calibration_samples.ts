/**
 * Calibration samples: the token sequences a oneshot run feeds through the
 * model to collect activation statistics.
 *
 * @module
 */

import { seededRandom, shuffled } from "../model/seeded_random.ts";
import { isFileEntry, joinPath } from "../io/_path.ts";
import { renderChatTemplate } from "./chat_template.ts";
import type { ChatMessage, ChatTemplate } from "./chat_template.ts";
import { DatasetError } from "./dataset_error.ts";
import type { DatasetPreset } from "./dataset_presets.ts";
import { isRowFile, readLocatedRows } from "./dataset_rows.ts";
import type { DatasetRow } from "./dataset_rows.ts";
import { fileInSplit, parseSplit, sliceSplit } from "./dataset_split.ts";
import { readTextFile } from "./read_text_file.ts";
import type { TextTokenizer } from "../io/tokenizer.ts";
import { tokenWindows } from "./token_windows.ts";
import { newlineCutTokenIds } from "./_leading_ids.ts";

/** Arguments of {@link loadCalibrationSamples}. */
export interface CalibrationSamplesArgs {
  /**
   * A plain UTF-8 text file (any other extension), a dataset file (`.jsonl`,
   * `.ndjson`, `.json`, `.parquet`, `.arrow`), or a dataset folder holding
   * such files (a Hub dataset snapshot, a `datasets` cache folder).
   */
  path: string;
  /** The model's tokenizer. */
  tokenizer: Pick<TextTokenizer, "encode" | "bosId" | "newlineCutIsExact">;
  /** How many samples (llm-compressor's `num_calibration_samples`). */
  numSamples: number;
  /** The longest sample in tokens, BOS included (`max_seq_length`). */
  maxSeqLength: number;
  /** Shuffle the windows (text) or rows (datasets) before taking the first N; default false. */
  shuffle?: boolean;
  /** The shuffle's seed; default 42. */
  seed?: number;
  /**
   * The column holding each row's text, or its `messages` (llm-compressor's
   * `text_column`); default `text`, and rows without one but with a
   * `messages` list are chats.
   */
  textColumn?: string;
  /** The same as `textColumn` (its earlier name). */
  textField?: string;
  /**
   * The split to read, with an optional slice (`train`, `train[:512]`,
   * `test[:5%]`): in a folder, the files named for it; default `train` when
   * a folder has such files, else every file. Plain text files have no splits.
   */
  split?: string;
  /** The tokenizer's chat template, for rows that are chats (see `loadChatTemplate`). */
  chatTemplate?: ChatTemplate | null;
  /** A named dataset's row format (see `datasetPreset`). */
  preset?: DatasetPreset;
}

/**
 * Builds calibration samples from a dataset.
 *
 * - Plain text: the evaluation convention: the whole file tokenized without
 *   special tokens, consecutive windows of `maxSeqLength − 1` tokens with BOS
 *   in front, the first `numSamples` of them (after a seeded shuffle of the
 *   windows when `shuffle`). Every sample is `maxSeqLength` long.
 * - Rows (JSON Lines, JSON, Parquet, Arrow, or a folder of them): the split's
 *   rows, sliced, shuffled with the seed when `shuffle`, the first
 *   `numSamples`; each is one sample: BOS plus the tokens of its text,
 *   truncated to `maxSeqLength`. A row's text is its text column; a
 *   `messages` list (`[{role, content}, …]`) is rendered with the
 *   tokenizer's chat template first, as llm-compressor's
 *   `apply_chat_template(..., tokenize=False)`; when the rendered text
 *   already starts with BOS, none is added.
 *
 * With a tokenizer that has no BOS, samples carry none.
 *
 * @param args the dataset, tokenizer, sample count and length, shuffle, split, column, chat template
 * @returns `numSamples` token sequences
 * @throws {DatasetError} for an unreadable, empty or malformed file (naming
 *   it, and the line or row), a missing column or split, chats without a
 *   chat template, or too few tokens/rows for `numSamples`
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
  const bos = tokenizer.bosId;

  if (!(await isFolder(path)) && !isRowFile(path)) {
    const text = await readTextFile(path);
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

  const { rows, where, label } = await readSplitRows(path, args.split);
  if (rows.length < numSamples) {
    throw new DatasetError(
      `${label}: ${rows.length} records, but ${numSamples} calibration samples were requested`,
    );
  }
  let order = rows.map((_, i) => i);
  if (args.shuffle) order = shuffled(order, random);
  const column = args.textColumn ?? args.textField ?? "text";
  return order.slice(0, numSamples).map((i) => {
    const text = rowText(rows[i], where[i], column, args);
    const ids = tokenizer.encode(text, { addSpecialTokens: false });
    const prefix = bos === null || ids[0] === bos ? 0 : 1;
    const len = Math.min(maxSeqLength, ids.length + prefix);
    const sample = new Int32Array(len);
    if (prefix === 1) sample[0] = bos!;
    for (let j = prefix; j < len; j++) sample[j] = ids[j - prefix];
    return sample;
  });
}

async function isFolder(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw new DatasetError(`${path}: cannot read the dataset: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

/** A folder's data files (row files and `.txt`), relative paths, sorted; hidden entries skipped. */
function dataFiles(root: string, sub = ""): string[] {
  const out: string[] = [];
  const dir = joinPath(root, sub);
  for (const e of Deno.readDirSync(dir)) {
    if (e.name.startsWith(".")) continue;
    const rel = sub === "" ? e.name : `${sub}/${e.name}`;
    if (e.isDirectory) out.push(...dataFiles(root, rel));
    else if (isFileEntry(dir, e) && (isRowFile(e.name) || e.name.endsWith(".txt"))) out.push(rel);
  }
  return out.sort();
}

/** The rows of a file, or of a folder's files that belong to the split; then the split's slice. */
async function readSplitRows(
  path: string,
  splitText: string | undefined,
): Promise<{ rows: DatasetRow[]; where: string[]; label: string }> {
  const split = splitText === undefined ? undefined : parseSplit(splitText);
  const rows: DatasetRow[] = [];
  const where: string[] = [];
  const add = (located: { rows: DatasetRow[]; where: (i: number) => string }) => {
    located.rows.forEach((r, i) => {
      rows.push(r);
      where.push(located.where(i));
    });
  };
  if (!(await isFolder(path))) {
    add(await readLocatedRows(path));
  } else {
    const files = dataFiles(path);
    if (files.length === 0) {
      throw new DatasetError(
        `${path}: the dataset folder has no data files (.jsonl, .ndjson, .json, .parquet, .arrow, .txt)`,
      );
    }
    let chosen = files;
    if (split !== undefined) {
      chosen = files.filter((f) => fileInSplit(f, split.name));
      if (chosen.length === 0) {
        throw new DatasetError(
          `${path}: no data file belongs to split '${split.name}' (files: ${files.join(", ")})`,
        );
      }
    } else if (files.some((f) => fileInSplit(f, "train"))) {
      chosen = files.filter((f) => fileInSplit(f, "train"));
    }
    for (const f of chosen) {
      const full = joinPath(path, f);
      if (!f.endsWith(".txt")) {
        add(await readLocatedRows(full));
        continue;
      }
      // As datasets' text loader: one row per line.
      const lines = (await readTextFile(full)).split(/\r?\n/);
      lines.forEach((line, i) => {
        if (line === "") return;
        rows.push({ text: line });
        where.push(`${full}:${i + 1}`);
      });
    }
  }
  const label = split === undefined ? path : `${path} (split ${splitText})`;
  if (split === undefined) return { rows, where, label };
  const keep = sliceSplit(rows.map((_, i) => i), split);
  return { rows: keep.map((i) => rows[i]), where: keep.map((i) => where[i]), label };
}

/** A row's text: the preset's format, the text column, or a chat rendered with the template. */
function rowText(
  row: DatasetRow,
  where: string,
  column: string,
  args: CalibrationSamplesArgs,
): string {
  let value: unknown;
  if (args.preset !== undefined) {
    try {
      value = args.preset.formatRow(row);
    } catch (e) {
      throw new DatasetError(`${where}: not a ${args.preset.name} row: ${(e as Error).message}`);
    }
  } else if (Object.hasOwn(row, column)) {
    value = row[column];
  } else if (column === "text" && Array.isArray(row.messages)) {
    value = row.messages;
  } else {
    throw new DatasetError(
      `${where}: column '${column}' is missing (columns: ${Object.keys(row).join(", ")}); ` +
        `choose one with --text-column`,
    );
  }
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    const messages = value.map((m, k) => chatMessage(m, `${where}: message ${k}`));
    const template = args.chatTemplate ??
      (args.preset?.fallbackChatTemplate === undefined ? null : {
        source: args.preset.fallbackChatTemplate,
        file: `${args.preset.name} default chat template`,
        specialTokens: {},
      });
    if (template === null || template === undefined) {
      throw new DatasetError(
        `${where}: the row is a chat (a list of messages), but the tokenizer has no chat ` +
          `template (chat_template in tokenizer_config.json, or chat_template.jinja)`,
      );
    }
    return renderChatTemplate(template, messages, { addGenerationPrompt: false });
  }
  throw new DatasetError(
    `${where}: column '${column}' must be a string or a list of chat messages, got ${
      value === null ? "null" : typeof value
    }`,
  );
}

function chatMessage(m: unknown, where: string): ChatMessage {
  const o = m as { role?: unknown; content?: unknown } | null;
  if (typeof o?.role !== "string" || typeof o.content !== "string") {
    throw new DatasetError(`${where}: expected {"role": string, "content": string}`);
  }
  return o as ChatMessage;
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
 * exact either way. Tokenizers whose cut after a newline is provably exact
 * take the one-encode path of newlineCutTokenIds first. Why: calibration files are often far larger than the
 * samples taken from them, and tokenizing all of it dominated small runs'
 * time and memory.
 */
function leadingTokenIds(
  tokenizer: Pick<TextTokenizer, "encode" | "newlineCutIsExact">,
  text: string,
  needed: number,
): number[] {
  if (tokenizer.newlineCutIsExact === true) {
    const ids = newlineCutTokenIds(tokenizer, text, needed);
    if (ids !== null) return ids;
  }
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
