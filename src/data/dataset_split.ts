/**
 * Splits as `datasets.load_dataset(split=...)` takes them: a name with an
 * optional slice (`train`, `train[:512]`, `train[100:200]`, `train[:5%]`),
 * and which of a dataset folder's files belong to a split.
 *
 * @module
 */

import { DatasetError } from "./dataset_error.ts";

/** A parsed split expression. */
export interface SplitSpec {
  /** The split's name, e.g. `train` or `train_sft`. */
  readonly name: string;
  /** The slice's start: rows, or a percentage when `percent`; undefined from the start. */
  readonly start?: number;
  /** The slice's end (exclusive); undefined to the end. */
  readonly end?: number;
  /** Whether start and end are percentages of the split's rows. */
  readonly percent: boolean;
}

/**
 * Parses a split expression.
 *
 * @param text e.g. `train`, `train[:512]`, `test[10:20]`, `train_sft[:5%]`
 * @returns the split
 * @throws {DatasetError} for anything else
 * @example
 * ```ts
 * import { parseSplit } from "./dataset_split.ts";
 * parseSplit("train[:5%]"); // { name: "train", start: undefined, end: 5, percent: true }
 * parseSplit("test"); // { name: "test", percent: false }
 * ```
 */
export function parseSplit(text: string): SplitSpec {
  const m = /^([A-Za-z0-9_.-]+)(?:\[(-?\d*)(%?):(-?\d*)(%?)\])?$/.exec(text.trim());
  if (m === null || (m[2] === "" && m[3] === "%") || (m[4] === "" && m[5] === "%")) {
    throw new DatasetError(
      `split '${text}': expected NAME or NAME[start:end] with row counts or percentages, ` +
        `e.g. train, train[:512], train[:5%]`,
    );
  }
  if (m[3] !== "" && m[5] !== "" && m[3] !== m[5] && m[2] !== "" && m[4] !== "") {
    throw new DatasetError(`split '${text}': start and end must both be rows or both percentages`);
  }
  const num = (s: string) => (s === "" ? undefined : Number(s));
  return {
    name: m[1],
    start: num(m[2] ?? ""),
    end: num(m[4] ?? ""),
    percent: m[3] === "%" || m[5] === "%",
  };
}

/**
 * The rows a split's slice selects, Python-style (negative bounds count from
 * the end; percentages round as `datasets` does, to the nearest row).
 *
 * @param rows the split's rows
 * @param split the slice
 * @returns the selected rows
 * @example
 * ```ts
 * import { parseSplit, sliceSplit } from "./dataset_split.ts";
 * sliceSplit([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], parseSplit("train[:20%]")); // [1, 2]
 * sliceSplit([1, 2, 3], parseSplit("train[-2:]")); // [2, 3]
 * ```
 */
export function sliceSplit<T>(rows: readonly T[], split: SplitSpec): T[] {
  const n = rows.length;
  const at = (v: number | undefined, fallback: number) => {
    if (v === undefined) return fallback;
    const x = split.percent ? Math.round((v * n) / 100) : v;
    return x < 0 ? Math.max(0, n + x) : Math.min(n, x);
  };
  return rows.slice(at(split.start, 0), at(split.end, n));
}

/**
 * Whether a data file belongs to a split, by the naming conventions the
 * Hub's dataset viewer and `datasets` use: a folder named for the split
 * (`train/…`), or a file name that is the split or starts with it followed
 * by `-`, `.` or a digit (`train.jsonl`, `train-00000-of-00002.parquet`; not
 * `train_sft…`, another split), or that contains `-<split>` followed by `-` or
 * `.` (`<builder>-train.arrow` in the datasets cache).
 *
 * @param path the file's path inside the dataset folder
 * @param split the split's name
 * @returns true when the file holds rows of that split
 * @example
 * ```ts
 * import { fileInSplit } from "./dataset_split.ts";
 * fileInSplit("data/train-00000-of-00001.parquet", "train"); // true
 * fileInSplit("data/train_sft-00000-of-00003.parquet", "train"); // false
 * fileInSplit("ultrachat_200k-train_sft.arrow", "train_sft"); // true
 * ```
 */
export function fileInSplit(path: string, split: string): boolean {
  const parts = path.split("/");
  const base = parts[parts.length - 1];
  if (parts.slice(0, -1).includes(split)) return true;
  const esc = split.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`^${esc}(?:[-.0-9]|$)`).test(base) ||
    new RegExp(`-${esc}(?:[-.]|$)`).test(base);
}
