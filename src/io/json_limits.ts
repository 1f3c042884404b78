/**
 * Cheap checks on JSON text before it is parsed. `JSON.parse` and the
 * recursive readers and writers after it spend memory and stack in
 * proportion to the nesting depth, so a small file of 5,000 nested `[` can
 * cost gigabytes or overflow the stack late in a run. One linear scan, with
 * no allocation besides a counter, finds the depth first; callers reject
 * text nested deeper than their format needs, naming the file.
 *
 * The limits of every file llmc reads (see README, "Limits and safety"):
 *
 * | file                        | max size  | max depth |
 * | --------------------------- | --------- | --------- |
 * | config.json, others         | 16 MiB    | 64        |
 * | safetensors index           | 256 MiB   | 64        |
 * | tokenizer.json              | 512 MiB   | 64        |
 * | safetensors header          | 100 MB    | 3         |
 * | recipe (YAML or JSON)       | 16 MiB    | 64        |
 *
 * @module
 */

/** The deepest nesting llmc accepts in config.json and other JSON side files. */
export const MAX_JSON_DEPTH = 64;

/** The largest config.json (and index, tokenizer_config.json, …) llmc reads. */
export const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

/** The largest tokenizer.json llmc reads (real ones are at most tens of MB). */
export const MAX_TOKENIZER_BYTES = 512 * 1024 * 1024;

/** Where text first nests deeper than allowed. */
export interface DepthExcess {
  /** The depth reached (limit + 1). */
  depth: number;
  /** Character offset of the bracket that went past the limit. */
  offset: number;
  /** 1-based line of that bracket. */
  line: number;
}

/** What {@link scanJson} found. */
export interface JsonScan {
  /** Where the text first nests deeper than the limit, or null. */
  excess: DepthExcess | null;
  /**
   * An upper estimate of the number of values and keys the text holds
   * (separators plus containers), counted up to the depth excess: each costs
   * tens of bytes once parsed, whatever its length in the text.
   */
  items: number;
  /** The most items directly inside one container below the top level. */
  maxNestedItems: number;
}

/**
 * Scans JSON (or flow-style YAML) text once, without parsing it: finds the
 * first bracket that nests deeper than `limit` and counts the items. Brackets
 * and separators inside double-quoted strings do not count; the text need not
 * be valid JSON (the parser reports other faults).
 *
 * @param text the text to scan
 * @param limit the deepest nesting allowed (the top-level object is depth 1)
 * @param singleQuotes also skip single-quoted strings (YAML flow style)
 * @returns the depth excess (null when within the limit) and the item count
 * @example
 * ```ts
 * import { scanJson } from "./json_limits.ts";
 * const s = scanJson('{"a": [1, 2]}', 2);
 * console.assert(s.excess === null && s.items === 4 && s.maxNestedItems === 1);
 * ```
 */
export function scanJson(text: string, limit: number, singleQuotes = false): JsonScan {
  let depth = 0;
  let line = 1;
  let items = 0;
  // Items directly inside the open container at each depth (index = depth).
  const counts = new Array<number>(limit + 2).fill(0);
  let maxNestedItems = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x0a) {
      line++;
    } else if (c === 0x22 /* " */ || (singleQuotes && c === 0x27) /* ' */) {
      // Skip the string; an unterminated one ends the scan.
      let j = i + 1;
      while (j < text.length) {
        const d = text.charCodeAt(j);
        if (d === c) break;
        if (d === 0x0a) line++;
        j += d === 0x5c /* \ */ && c === 0x22 ? 2 : 1;
      }
      i = j;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      items++;
      if (++depth > limit) return { excess: { depth, offset: i, line }, items, maxNestedItems };
      counts[depth] = 0;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      if (depth > 0) depth--;
    } else if (c === 0x2c /* , */ || c === 0x3a /* : */) {
      items++;
      if (depth >= 2 && ++counts[depth] > maxNestedItems) maxNestedItems = counts[depth];
    }
  }
  return { excess: null, items, maxNestedItems };
}

/**
 * Finds the first place where JSON (or flow-style YAML) text nests more than
 * `limit` brackets deep (see {@link scanJson}).
 *
 * @param text the text to scan
 * @param limit the deepest nesting allowed (the top-level object is depth 1)
 * @param singleQuotes also skip single-quoted strings (YAML flow style)
 * @returns null when the text stays within the limit, else where it does not
 * @example
 * ```ts
 * import { findDepthExcess } from "./json_limits.ts";
 * console.assert(findDepthExcess('{"a": [1, 2]}', 2) === null);
 * console.assert(findDepthExcess('{"a": [[1]]}', 2)?.depth === 3);
 * ```
 */
export function findDepthExcess(
  text: string,
  limit: number,
  singleQuotes = false,
): DepthExcess | null {
  return scanJson(text, limit, singleQuotes).excess;
}

/**
 * Describes a {@link DepthExcess} for an error message.
 *
 * @param excess what {@link findDepthExcess} found
 * @param limit the limit that applied
 * @returns e.g. `"nests deeper than 64 levels (line 3, offset 70)"`
 * @example
 * ```ts
 * import { describeDepthExcess, findDepthExcess } from "./json_limits.ts";
 * describeDepthExcess(findDepthExcess("[[[]]]", 2)!, 2); // "nests deeper than 2 levels (line 1, offset 2)"
 * ```
 */
export function describeDepthExcess(excess: DepthExcess, limit: number): string {
  return `nests deeper than ${limit} levels (line ${excess.line}, offset ${excess.offset})`;
}

/**
 * Whether a parsed value nests deeper than `limit` objects/arrays, found
 * without recursion (so the check itself cannot overflow the stack).
 *
 * @param value a parsed JSON or YAML value
 * @param limit the deepest nesting allowed (a top-level object is depth 1)
 * @returns true when some value lies deeper than `limit`
 * @example
 * ```ts
 * import { nestsDeeperThan } from "./json_limits.ts";
 * console.assert(nestsDeeperThan({ a: [[1]] }, 2));
 * console.assert(!nestsDeeperThan({ a: [1] }, 2));
 * ```
 */
export function nestsDeeperThan(value: unknown, limit: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 1]];
  const seen = new Set<object>();
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== "object" || v === null) continue;
    if (depth > limit) return true;
    // YAML aliases share nodes; each is visited once per depth it first appears at.
    if (seen.has(v)) continue;
    seen.add(v);
    for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return false;
}

/**
 * Checks JSON text against a size and a nesting limit.
 *
 * @param text the text (read from a file whose size was already checked, or given)
 * @param maxChars the most characters allowed
 * @param maxDepth the deepest nesting allowed
 * @returns null when within both limits, else what is wrong (for an error message)
 * @example
 * ```ts
 * import { jsonLimitFault } from "./json_limits.ts";
 * jsonLimitFault("[[1]]", 100, 1); // "nests deeper than 1 levels (line 1, offset 1)"
 * ```
 */
export function jsonLimitFault(text: string, maxChars: number, maxDepth: number): string | null {
  if (text.length > maxChars) {
    return `is ${text.length} characters; the limit is ${maxChars}`;
  }
  const excess = findDepthExcess(text, maxDepth);
  return excess === null ? null : describeDepthExcess(excess, maxDepth);
}

/**
 * Reads a JSON file's text after checking its size on disk, then checks its
 * nesting: nothing too large is read, nothing too deep is parsed.
 *
 * @param path the file
 * @param maxBytes the largest file accepted
 * @param maxDepth the deepest nesting accepted
 * @returns the text, or the fault (`{fault}`) to report with the caller's error class
 * @throws {Deno.errors.NotFound} and other I/O errors as `Deno.readTextFile` does
 * @example
 * ```ts ignore
 * import { MAX_CONFIG_BYTES, MAX_JSON_DEPTH, readLimitedJsonText } from "./json_limits.ts";
 * const r = await readLimitedJsonText("config.json", MAX_CONFIG_BYTES, MAX_JSON_DEPTH);
 * if ("fault" in r) throw new Error(`config.json: ${r.fault}`);
 * ```
 */
export async function readLimitedJsonText(
  path: string,
  maxBytes: number,
  maxDepth: number,
): Promise<{ text: string } | { fault: string }> {
  const size = (await Deno.stat(path)).size;
  if (size > maxBytes) return { fault: `is ${size} bytes; the limit is ${maxBytes}` };
  const text = await Deno.readTextFile(path);
  const fault = jsonLimitFault(text, maxBytes, maxDepth);
  return fault === null ? { text } : { fault };
}
