/**
 * Finds duplicate object keys in JSON text. `JSON.parse` silently keeps the
 * last of two equal keys, so a header could hide a tensor from one reader
 * and show it to another; this scan sees the raw text.
 *
 * @module
 */

/** Where a duplicate key was found: the key and the keys leading to its object. */
export interface DuplicateKey {
  key: string;
  path: string[];
}

const enum Expect {
  Key,
  Value,
  Other,
}

/**
 * Scans well-formed JSON text for an object with two equal keys.
 *
 * @param text JSON text that `JSON.parse` accepts (the scan trusts its structure)
 * @returns the first duplicate, or null when every object's keys are unique
 * @example
 * ```ts
 * import { findDuplicateKey } from "./_json_duplicate_key.ts";
 * findDuplicateKey('{"a": {"b": 1, "b": 2}}'); // { key: "b", path: ["a"] }
 * ```
 */
export function findDuplicateKey(text: string): DuplicateKey | null {
  // One frame per open container; objects carry their keys seen so far. Kept
  // iterative so deeply nested input cannot overflow the call stack.
  const frames: Array<Set<string> | null> = [];
  const path: string[] = [];
  const enter = (keys: Set<string> | null) => {
    const parent = frames[frames.length - 1];
    if (parent !== undefined) path.push(parent === null ? "[]" : lastKey);
    frames.push(keys);
  };
  const leave = () => {
    frames.pop();
    if (frames.length > 0) path.pop();
  };
  let expect = Expect.Value;
  let lastKey = "";
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      while (text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c /* \ */ ? 2 : 1;
      if (expect === Expect.Key) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        const keys = frames[frames.length - 1]!;
        if (keys.has(key)) return { key, path: [...path] };
        keys.add(key);
        lastKey = key;
      }
      expect = Expect.Other;
      i = j;
    } else if (c === 0x7b /* { */) {
      enter(new Set());
      expect = Expect.Key;
    } else if (c === 0x5b /* [ */) {
      enter(null);
      expect = Expect.Value;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      leave();
      expect = Expect.Other;
    } else if (c === 0x2c /* , */) {
      const top = frames[frames.length - 1];
      expect = top !== undefined && top !== null ? Expect.Key : Expect.Value;
    } else if (c === 0x3a /* : */) {
      expect = Expect.Value;
    }
  }
  return null;
}
