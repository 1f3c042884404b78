/**
 * Parses and validates a safetensors header before anything in it is trusted.
 *
 * The rules follow the reference implementation (huggingface/safetensors,
 * `read_metadata` and `Metadata::validate`): header at most 100,000,000
 * bytes, UTF-8 JSON starting with `{`, tensors that tile the data section
 * from byte 0 to its end with no gap and no overlap, and each tensor's byte
 * length equal to numel × dtype size. On top of those, keys must be unique
 * (JSON.parse would silently keep the last of two) and dtypes must be ones
 * llmc supports.
 *
 * @module
 */

import { DTYPE_BYTES, DTYPES, isDType } from "./dtype.ts";
import type { DType } from "./dtype.ts";
import { findDuplicateKey } from "./_json_duplicate_key.ts";
import { describeDepthExcess, scanJson } from "./json_limits.ts";
import { SafetensorsError } from "./safetensors_error.ts";

/** The reference implementation's limit on the JSON header's length. */
export const MAX_HEADER_BYTES = 100_000_000;

/**
 * The deepest nesting a safetensors header has: the top-level object, a
 * tensor's entry (or the flat `__metadata__` string map), and a tensor's
 * `shape` / `data_offsets` arrays. Anything deeper cannot be a valid header
 * and is refused before `JSON.parse` spends memory on it.
 */
export const MAX_HEADER_DEPTH = 3;

/**
 * The most items (keys, values, separators: see `scanJson`) a header may
 * hold, about 11 per tensor, so about 90,000 tensors per file (a 5 GB shard
 * of a real model holds a few thousand). Parsed, each item costs tens of
 * bytes however short its text, so this bounds a header's memory to about
 * 130 MB plus a small multiple of its size (measured: 90,000 minimal tensors, 6 MB, 121 MB).
 */
export const MAX_HEADER_ITEMS = 1_000_000;

/**
 * The most items (keys and values) in one object or array below the top
 * level: about 4,096 `__metadata__` entries, or a shape of 4,096 dimensions.
 */
export const MAX_HEADER_NESTED_ITEMS = 8_192;

/**
 * Where one tensor lives in a safetensors file.
 *
 * @example
 * ```ts
 * import type { TensorInfo } from "./safetensors_header.ts";
 * const t: TensorInfo = { name: "w", dtype: "F32", shape: [2, 2], byteOffset: 80, byteLength: 16 };
 * ```
 */
export interface TensorInfo {
  /** The tensor's name in the header. */
  name: string;
  /** Its safetensors dtype, e.g. `"BF16"`. */
  dtype: DType;
  /** Its shape. */
  shape: number[];
  /** Absolute position of the first byte in the file. */
  byteOffset: number;
  /** Bytes of data. */
  byteLength: number;
}

/** A validated header. */
export interface SafetensorsHeader {
  /** Tensors in the order of their data in the file. */
  tensors: TensorInfo[];
  metadata: Record<string, string>;
  /** Absolute position of the data section: 8 + header length. */
  dataStart: number;
}

/**
 * Reads the header length from the first 8 bytes of a file and checks it
 * against the file's size.
 *
 * @param prefix the first 8 bytes of the file
 * @param fileSize the file's size in bytes
 * @param file the path, for messages
 * @returns the header length in bytes
 * @throws {SafetensorsError} when the file is too short or the length does not fit
 * @example
 * ```ts
 * import { readHeaderLength } from "./safetensors_header.ts";
 * const prefix = new Uint8Array([2, 0, 0, 0, 0, 0, 0, 0]);
 * readHeaderLength(prefix, 10, "x.safetensors"); // 2
 * ```
 */
export function readHeaderLength(prefix: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8 || prefix.length < 8) {
    throw new SafetensorsError(
      file,
      `file is ${fileSize} bytes; a safetensors file needs at least the 8-byte header length`,
    );
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(
      file,
      `header length ${n} exceeds the limit of ${MAX_HEADER_BYTES} bytes`,
    );
  }
  if (n > BigInt(fileSize - 8)) {
    throw new SafetensorsError(
      file,
      `header length ${n} exceeds the ${fileSize - 8} bytes that follow the length field`,
    );
  }
  return Number(n);
}

/**
 * Parses and validates header bytes.
 *
 * @param headerBytes the JSON header (the bytes after the length field)
 * @param fileSize the file's size in bytes; the data section is what follows the header
 * @param file the path, for messages
 * @returns the tensors in data order, the metadata and the data start
 * @throws {SafetensorsError} naming the tensor or field when anything is inconsistent,
 *   or when the JSON nests deeper than {@link MAX_HEADER_DEPTH} levels or holds more
 *   than {@link MAX_HEADER_ITEMS} items
 * @example
 * ```ts
 * import { parseSafetensorsHeader } from "./safetensors_header.ts";
 * const json = '{"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}';
 * const bytes = new TextEncoder().encode(json);
 * const h = parseSafetensorsHeader(bytes, 8 + bytes.length + 2, "x.safetensors");
 * h.tensors[0].byteOffset; // 8 + bytes.length
 * ```
 */
export function parseSafetensorsHeader(
  headerBytes: Uint8Array,
  fileSize: number,
  file: string,
): SafetensorsHeader {
  const dataStart = 8 + headerBytes.length;
  const dataLength = fileSize - dataStart;
  if (dataLength < 0) {
    throw new SafetensorsError(file, `header of ${headerBytes.length} bytes exceeds the file`);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch (cause) {
    throw new SafetensorsError(file, "header is not valid UTF-8", { cause });
  }
  if (!text.startsWith("{")) {
    throw new SafetensorsError(file, "header does not start with '{' (expected a JSON object)");
  }
  const { excess, items, maxNestedItems } = scanJson(text, MAX_HEADER_DEPTH);
  if (excess !== null) {
    throw new SafetensorsError(
      file,
      `header ${describeDepthExcess(excess, MAX_HEADER_DEPTH)}; a safetensors header holds ` +
        `tensor entries {dtype, shape, data_offsets} and a flat string-to-string __metadata__ map`,
    );
  }
  if (items > MAX_HEADER_ITEMS) {
    throw new SafetensorsError(
      file,
      `header holds about ${items} JSON items; the limit is ${MAX_HEADER_ITEMS} ` +
        `(about 90,000 tensors per file)`,
    );
  }
  if (maxNestedItems > MAX_HEADER_NESTED_ITEMS) {
    throw new SafetensorsError(
      file,
      `header has an object or array of about ${maxNestedItems} items below the top level; ` +
        `the limit is ${MAX_HEADER_NESTED_ITEMS} (about 4,096 __metadata__ entries or shape ` +
        `dimensions)`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new SafetensorsError(file, `header is not valid JSON: ${(cause as Error).message}`, {
      cause,
    });
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new SafetensorsError(file, "header is not a JSON object");
  }
  const dup = findDuplicateKey(text);
  if (dup !== null) {
    const where = dup.path.length === 0 ? "at the top level" : `in '${dup.path.join(".")}'`;
    throw new SafetensorsError(file, `header has the key '${dup.key}' twice ${where}`);
  }

  let metadata: Record<string, string> = {};
  const tensors: Array<TensorInfo & { begin: number; end: number }> = [];
  for (const [name, entry] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      metadata = parseMetadata(entry, file);
      continue;
    }
    tensors.push(parseEntry(name, entry, dataStart, file));
  }

  // Sorted by data_offsets the tensors must tile [0, dataLength) exactly, as
  // the reference implementation requires; a gap could hide bytes, an overlap
  // would let two tensors alias.
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const t of tensors) {
    if (t.begin !== cursor) {
      const what = t.begin > cursor
        ? `leaves a gap: bytes [${cursor}, ${t.begin}) of the data section belong to no tensor`
        : `overlaps the previous tensor, which ends at ${cursor}`;
      throw new SafetensorsError(
        file,
        `tensor '${t.name}': data_offsets [${t.begin}, ${t.end}] ${what}`,
      );
    }
    cursor = t.end;
  }
  if (cursor !== dataLength) {
    throw new SafetensorsError(
      file,
      `tensors cover ${cursor} bytes but the data section after the header holds ${dataLength}`,
    );
  }
  return {
    tensors: tensors.map(({ name, dtype, shape, byteOffset, byteLength }) => ({
      name,
      dtype,
      shape,
      byteOffset,
      byteLength,
    })),
    metadata,
    dataStart,
  };
}

function parseMetadata(entry: unknown, file: string): Record<string, string> {
  if (entry === null) return {};
  if (typeof entry !== "object" || Array.isArray(entry)) {
    throw new SafetensorsError(
      file,
      `header field '__metadata__' is ${describe(entry)}; expected a flat string-to-string map`,
    );
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
    if (typeof v !== "string") {
      throw new SafetensorsError(
        file,
        `header field '__metadata__.${k}' is ${describe(v)}; metadata values must be strings ` +
          `(a flat string-to-string map)`,
      );
    }
    Object.defineProperty(out, k, {
      value: v,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

function parseEntry(
  name: string,
  entry: unknown,
  dataStart: number,
  file: string,
): TensorInfo & { begin: number; end: number } {
  const fail = (msg: string): never => {
    throw new SafetensorsError(file, `tensor '${name}': ${msg}`);
  };
  if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
    return fail(`entry is ${describe(entry)}, expected {dtype, shape, data_offsets}`);
  }
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
  if (!isDType(dtype)) {
    return fail(`dtype ${JSON.stringify(dtype) ?? "(missing)"} is not one of ${DTYPES.join(", ")}`);
  }
  if (!Array.isArray(shape)) {
    return fail(`shape is ${describe(shape)}, expected an array of non-negative integers`);
  }
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      fail(
        `shape ${JSON.stringify(shape)} has ${JSON.stringify(d)}, expected non-negative integers`,
      );
    }
  }
  if (
    !Array.isArray(offsets) || offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)
  ) {
    return fail(
      `data_offsets ${
        JSON.stringify(offsets) ?? "(missing)"
      } is not [begin, end] of non-negative integers`,
    );
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) fail(`data_offsets [${begin}, ${end}] ends before it begins`);
  const numel = product(shape as number[]);
  const expected = numel * DTYPE_BYTES[dtype];
  if (expected !== end - begin) {
    const want = Number.isSafeInteger(expected) ? `${expected}` : "more than 2^53";
    fail(
      `data_offsets [${begin}, ${end}] span ${end - begin} bytes but shape ` +
        `${JSON.stringify(shape)} of ${dtype} needs ${want}`,
    );
  }
  return {
    name,
    dtype,
    shape: [...(shape as number[])],
    byteOffset: dataStart + begin,
    byteLength: end - begin,
    begin,
    end,
  };
}

function product(shape: number[]): number {
  // Zero anywhere wins, so a huge dim beside a zero is still an empty tensor.
  if (shape.includes(0)) return 0;
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (n > Number.MAX_SAFE_INTEGER) return Infinity;
  }
  return n;
}

function describe(v: unknown): string {
  if (v === undefined) return "missing";
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  return `a ${typeof v}`;
}
