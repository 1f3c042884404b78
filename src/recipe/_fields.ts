/**
 * Typed readers for modifier arguments. Each reader checks one value and, when
 * it is wrong, throws a `RecipeError` that names the full path, what was
 * expected and what was found. Upstream (pydantic, lax mode) coerces `"128"`
 * to 128; llmc does not, because a quoted number in a recipe is almost always
 * a mistake and a clear error is cheaper than a silent guess.
 *
 * @module
 */

import { RecipeError } from "./errors.ts";

/** Reads and checks one raw value found at `path`. */
export type Reader<T> = (value: unknown, path: string) => T;

/** Receives one warning message. */
export type Warn = (message: string) => void;

/** Renders a value for an error message: strings quoted, the rest as JSON. */
export function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  try {
    const json = JSON.stringify(value);
    if (json === undefined) return String(value);
    return json.length > 80 ? json.slice(0, 77) + "..." : json;
  } catch {
    return String(value);
  }
}

/** Throws the standard "expected X, got Y" error for `path`. */
export function fail(path: string, expected: string, got: unknown): never {
  throw new RecipeError(`${path}: expected ${expected}, got ${describe(got)}`);
}

/** True for a plain mapping (not an array, not null). */
export function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Reads an ordered string→value mapping. */
export const mapping: Reader<Record<string, unknown>> = (v, p) =>
  isMapping(v) ? v : fail(p, "a mapping", v);

/** Reads a string. */
export const string: Reader<string> = (v, p) => typeof v === "string" ? v : fail(p, "a string", v);

/** Reads a boolean. */
export const boolean: Reader<boolean> = (v, p) =>
  typeof v === "boolean" ? v : fail(p, "true or false", v);

/** Reads any finite number. */
export const number: Reader<number> = (v, p) =>
  typeof v === "number" && Number.isFinite(v) ? v : fail(p, "a number", v);

/** Reads an integer (any sign). */
export const integer: Reader<number> = (v, p) =>
  Number.isInteger(v) ? v as number : fail(p, "an integer", v);

/** Reads an integer > 0. */
export const positiveInteger: Reader<number> = (v, p) =>
  Number.isInteger(v) && (v as number) > 0 ? v as number : fail(p, "a positive integer", v);

/** Reads a finite number >= 0. */
export const nonNegativeNumber: Reader<number> = (v, p) =>
  typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : fail(p, "a number >= 0", v);

/** Reads a number in [0, 1]. */
export const fraction: Reader<number> = (v, p) =>
  typeof v === "number" && v >= 0 && v <= 1 ? v : fail(p, "a number between 0 and 1", v);

/** Reads a list of strings; a bare string is accepted as a one-element list. */
export const stringList: Reader<string[]> = (v, p) => {
  if (typeof v === "string") return [v];
  if (Array.isArray(v) && v.every((x) => typeof x === "string")) return [...v];
  return fail(p, "a string or a list of strings", v);
};

/** Reads a string or a list of strings, keeping which of the two it was. */
export const stringOrList: Reader<string | string[]> = (v, p) => {
  if (typeof v === "string") return v;
  if (Array.isArray(v) && v.every((x) => typeof x === "string")) return [...v];
  return fail(p, "a string or a list of strings", v);
};

/** Wraps a reader so that `null` (YAML `~`/`null`) is accepted as "unset". */
export function nullable<T>(read: Reader<T>): Reader<T | null> {
  return (v, p) => v === null ? null : read(v, p);
}

/** Reads one of a fixed set of strings, case-insensitively, returned lower-case. */
export function oneOf<T extends string>(choices: readonly T[]): Reader<T> {
  return (v, p) => {
    if (typeof v === "string") {
      const lower = v.toLowerCase();
      const hit = choices.find((c) => c === lower);
      if (hit !== undefined) return hit;
    }
    return fail(p, `one of ${choices.map((c) => JSON.stringify(c)).join(", ")}`, v);
  };
}

/** Reads a deep copy of any JSON-like value (no type check). */
export const anyValue: Reader<unknown> = (v) => structuredClone(v);
