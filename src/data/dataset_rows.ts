/**
 * Reads the rows of a dataset file, whatever format users bring: JSON
 * Lines, JSON (a list of rows, or `{"data": [...]}`), Parquet (via
 * hyparquet) and Arrow IPC files such as the `datasets` cache's `*.arrow`
 * (via apache-arrow). Rows come back as plain JSON-like objects.
 *
 * @module
 */

import { describeDepthExcess, findDepthExcess, MAX_JSON_DEPTH } from "../io/json_limits.ts";
import { DatasetError } from "./dataset_error.ts";
import { readTextFile } from "./read_text_file.ts";

/** One row of a dataset: column name → value. */
export type DatasetRow = Record<string, unknown>;

/** Rows and where each came from (`file:line` for JSON Lines, `file: row i` otherwise). */
export interface LocatedRows {
  /** The rows, in order. */
  readonly rows: DatasetRow[];
  /** Row i's location, for messages. */
  readonly where: (i: number) => string;
}

type RowReader = (path: string) => Promise<DatasetRow[] | LocatedRows>;

/** The row readers by file extension (lower case, with the dot). */
const READERS: Record<string, RowReader> = {
  ".jsonl": readJsonLines,
  ".ndjson": readJsonLines,
  ".json": readJson,
  ".parquet": readParquet,
  ".arrow": readArrow,
};

/**
 * The file extensions {@link readDatasetRows} reads.
 *
 * @example
 * ```ts
 * import { ROW_FILE_EXTENSIONS } from "./dataset_rows.ts";
 * ROW_FILE_EXTENSIONS.includes(".parquet"); // true
 * ```
 */
export const ROW_FILE_EXTENSIONS: readonly string[] = Object.keys(READERS);

function extensionOf(path: string): string {
  const base = path.slice(path.lastIndexOf("/") + 1);
  const dot = base.lastIndexOf(".");
  return dot < 0 ? "" : base.slice(dot).toLowerCase();
}

/**
 * Whether a file is one {@link readDatasetRows} reads, by its extension.
 *
 * @param path the file
 * @returns true for `.jsonl`, `.ndjson`, `.json`, `.parquet`, `.arrow`
 * @example
 * ```ts
 * import { isRowFile } from "./dataset_rows.ts";
 * isRowFile("data/train-00000-of-00001.parquet"); // true
 * isRowFile("calib.txt"); // false
 * ```
 */
export function isRowFile(path: string): boolean {
  return Object.hasOwn(READERS, extensionOf(path));
}

/**
 * Reads every row of a dataset file.
 *
 * @param path a `.jsonl`/`.ndjson`, `.json`, `.parquet` or `.arrow` file
 * @returns its rows, in order
 * @throws {DatasetError} naming the file (and line, for JSON Lines) when it
 *   cannot be read or a row is not an object
 * @example
 * ```ts
 * import { readDatasetRows } from "./dataset_rows.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/d.json`, '{"data": [{"text": "hi"}]}');
 * await readDatasetRows(`${dir}/d.json`); // [{ text: "hi" }]
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readDatasetRows(path: string): Promise<DatasetRow[]> {
  return (await readLocatedRows(path)).rows;
}

/**
 * Reads every row of a dataset file with where each came from, for messages
 * about a row (see {@link readDatasetRows}).
 *
 * @param path a `.jsonl`/`.ndjson`, `.json`, `.parquet` or `.arrow` file
 * @returns the rows and their locations
 * @throws {DatasetError} as {@link readDatasetRows}
 * @example
 * ```ts
 * import { readLocatedRows } from "./dataset_rows.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/d.jsonl`, '\n{"text": "hi"}\n');
 * (await readLocatedRows(`${dir}/d.jsonl`)).where(0); // `${dir}/d.jsonl:2`
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readLocatedRows(path: string): Promise<LocatedRows> {
  const reader = READERS[extensionOf(path)];
  if (reader === undefined) {
    throw new DatasetError(
      `${path}: not a dataset file llmc reads (expected ${ROW_FILE_EXTENSIONS.join(", ")})`,
    );
  }
  const got = await reader(path);
  return Array.isArray(got) ? { rows: got, where: (i) => `${path}: row ${i}` } : got;
}

function asRow(value: unknown, where: string): DatasetRow {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new DatasetError(`${where}: expected a JSON object (one row), got ${describe(value)}`);
  }
  return value as DatasetRow;
}

function describe(v: unknown): string {
  return v === null ? "null" : Array.isArray(v) ? "an array" : typeof v;
}

async function readJsonLines(path: string): Promise<LocatedRows> {
  const text = await readTextFile(path);
  const rows: DatasetRow[] = [];
  const lineOf: number[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "") continue;
    const where = `${path}:${i + 1}`;
    const excess = findDepthExcess(line, MAX_JSON_DEPTH);
    if (excess !== null) {
      throw new DatasetError(`${where}: record ${describeDepthExcess(excess, MAX_JSON_DEPTH)}`);
    }
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (cause) {
      throw new DatasetError(`${where}: not a JSON value: ${(cause as Error).message}`, { cause });
    }
    rows.push(asRow(value, where));
    lineOf.push(i + 1);
  }
  return { rows, where: (i) => `${path}:${lineOf[i]}` };
}

/** A `.json` file: a list of rows, `{"data": [...]}`, or (as `datasets` accepts) JSON Lines. */
async function readJson(path: string): Promise<DatasetRow[] | LocatedRows> {
  const text = await readTextFile(path);
  const excess = findDepthExcess(text, MAX_JSON_DEPTH);
  if (excess !== null) {
    throw new DatasetError(`${path}: ${describeDepthExcess(excess, MAX_JSON_DEPTH)}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    // datasets' json loader reads JSON Lines from .json files too.
    if (text.trimStart().startsWith("{") && text.trim().includes("\n")) {
      return await readJsonLines(path);
    }
    throw new DatasetError(`${path}: not valid JSON: ${(cause as Error).message}`, { cause });
  }
  const list = Array.isArray(value)
    ? value
    : typeof value === "object" && value !== null && Array.isArray((value as DatasetRow).data)
    ? (value as { data: unknown[] }).data
    : null;
  if (list === null) {
    throw new DatasetError(
      `${path}: expected a JSON list of rows or an object with a "data" list, got ${
        describe(value)
      }`,
    );
  }
  return list.map((r, i) => asRow(r, `${path}: row ${i}`));
}

async function readParquet(path: string): Promise<DatasetRow[]> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (cause) {
    throw new DatasetError(`${path}: cannot read: ${(cause as Error).message}`, { cause });
  }
  // Loaded when a Parquet file is read: importing it costs every other run's start.
  const { parquetReadObjects } = await import("hyparquet");
  try {
    const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    const rows = await parquetReadObjects({ file: file as ArrayBuffer });
    return rows.map((r) => toPlain(r, null) as DatasetRow);
  } catch (cause) {
    throw new DatasetError(`${path}: not a readable Parquet file: ${(cause as Error).message}`, {
      cause,
    });
  }
}

async function readArrow(path: string): Promise<DatasetRow[]> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (cause) {
    throw new DatasetError(`${path}: cannot read: ${(cause as Error).message}`, { cause });
  }
  // Loaded when an Arrow file is read: importing it costs every other run's start.
  const { tableFromIPC, Vector } = await import("apache-arrow");
  try {
    // Both the IPC stream format (what `datasets` writes) and the file format.
    const table = tableFromIPC(bytes);
    return table.toArray().map((r) => toPlain(r, Vector) as DatasetRow);
  } catch (cause) {
    throw new DatasetError(`${path}: not a readable Arrow IPC file: ${(cause as Error).message}`, {
      cause,
    });
  }
}

/**
 * Arrow rows and vectors, and 64-bit integers, as plain JSON-like values, so
 * every format yields the same rows. `vector` is apache-arrow's Vector class
 * (null for a format that has none).
 */
function toPlain(v: unknown, vector: (abstract new (...args: never[]) => unknown) | null): unknown {
  const plain = (x: unknown) => toPlain(x, vector);
  if (typeof v === "bigint") return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (v === null || typeof v !== "object") return v;
  if (Array.isArray(v)) return v.map(plain);
  if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number>, plain);
  // An Arrow Vector is a list column's value; a struct row (or a map) has toJSON.
  if (vector !== null && v instanceof vector) return Array.from(v as Iterable<unknown>, plain);
  if (v instanceof Date) return v.toISOString();
  const o = v as { toJSON?: () => unknown };
  if (typeof o.toJSON === "function") return plain(o.toJSON());
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = plain(x);
  return out;
}
