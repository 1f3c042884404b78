/**
 * Python's `json.dumps(obj, indent=2, sort_keys=True)`, byte for byte: the
 * form llm-compressor writes config.json in.
 *
 * Numbers: a {@link PyFloat} or a non-integral number prints as Python's
 * `repr(float)` (`1e-05`, `0.02`, `10000.0`); an integral plain number
 * prints as a Python int. Why marks instead of guessing: JavaScript cannot
 * tell `10000` from `10000.0`, so the float-ness of integral values must come
 * from the source text ({@link parsePythonJson}) or from the writer.
 *
 * @module
 */

import { LlmcError } from "../errors.ts";
import { PyFloat } from "./python_json.ts";
import type { JsonValue } from "./python_json.ts";

/**
 * Python's `repr()` of a float.
 *
 * @param x the value
 * @returns e.g. `"1e-05"`, `"0.0001"`, `"10000.0"`, `"1e+16"`, `"-0.0"`, `"NaN"`
 * @example
 * ```ts
 * import { pythonFloatRepr } from "./stable_stringify.ts";
 * pythonFloatRepr(1e-5); // "1e-05"
 * pythonFloatRepr(10000); // "10000.0"
 * ```
 */
export function pythonFloatRepr(x: number): string {
  if (Number.isNaN(x)) return "NaN";
  if (x === Infinity) return "Infinity";
  if (x === -Infinity) return "-Infinity";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  // toExponential() without a precision gives the shortest round-trip digits,
  // the same digits Python's repr chooses; only the layout differs.
  const [mant, expText] = x.toExponential().split("e");
  const exp = Number(expText);
  const sign = mant.startsWith("-") ? "-" : "";
  const digits = mant.replace("-", "").replace(".", "");
  if (exp < -4 || exp >= 16) {
    const frac = digits.length > 1 ? "." + digits.slice(1) : "";
    const e = Math.abs(exp).toString().padStart(2, "0");
    return `${sign}${digits[0]}${frac}e${exp < 0 ? "-" : "+"}${e}`;
  }
  if (exp < 0) return `${sign}0.${"0".repeat(-exp - 1)}${digits}`;
  const intPart = digits.slice(0, exp + 1).padEnd(exp + 1, "0");
  const frac = digits.slice(exp + 1);
  return `${sign}${intPart}.${frac === "" ? "0" : frac}`;
}

function pythonString(s: string): string {
  let out = '"';
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    const ch = s[k];
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\b") out += "\\b";
    else if (ch === "\f") out += "\\f";
    // ensure_ascii=True: everything outside printable ASCII as \uXXXX
    // (astral characters come out as their UTF-16 surrogates, as in Python).
    else if (c < 0x20 || c > 0x7e) out += "\\u" + c.toString(16).padStart(4, "0");
    else out += ch;
  }
  return out + '"';
}

function pythonNumber(x: number): string {
  if (Number.isInteger(x)) return BigInt(x).toString();
  return pythonFloatRepr(x);
}

function compareCodePoints(a: string, b: string): number {
  const ai = [...a];
  const bi = [...b];
  const n = Math.min(ai.length, bi.length);
  for (let k = 0; k < n; k++) {
    const d = ai[k].codePointAt(0)! - bi[k].codePointAt(0)!;
    if (d !== 0) return d;
  }
  return ai.length - bi.length;
}

/**
 * The deepest value {@link stableStringify} writes. Readers refuse JSON deeper
 * than 64 levels, so this only stops a programming error from overflowing
 * the stack with an unclear RangeError.
 */
export const MAX_STRINGIFY_DEPTH = 1000;

function write(v: JsonValue | undefined, indent: string, level: number): string {
  if (level > MAX_STRINGIFY_DEPTH) {
    throw new LlmcError(
      `cannot write JSON nested deeper than ${MAX_STRINGIFY_DEPTH} levels (config.json readers accept 64)`,
    );
  }
  if (v === null || v === undefined) return "null";
  if (v === true) return "true";
  if (v === false) return "false";
  if (typeof v === "number") return pythonNumber(v);
  if (typeof v === "string") return pythonString(v);
  if (v instanceof PyFloat) return pythonFloatRepr(v.value);
  const inner = "\n" + indent.repeat(level + 1);
  const close = "\n" + indent.repeat(level);
  if (Array.isArray(v)) {
    if (v.length === 0) return "[]";
    return "[" + inner + v.map((x) => write(x, indent, level + 1)).join("," + inner) + close + "]";
  }
  const keys = Object.keys(v).filter((k) => v[k] !== undefined).sort(compareCodePoints);
  if (keys.length === 0) return "{}";
  const items = keys.map((k) => pythonString(k) + ": " + write(v[k], indent, level + 1));
  return "{" + inner + items.join("," + inner) + close + "}";
}

/**
 * Serialises a value exactly as Python's `json.dumps(obj, indent=2,
 * sort_keys=True)` does (no trailing newline, `ensure_ascii`, `NaN` and
 * `Infinity` as Python writes them). Object properties that are `undefined`
 * are left out, as `JSON.stringify` does.
 *
 * @param value the value; integral numbers print as ints unless wrapped in {@link PyFloat}
 * @param indentWidth spaces per level (Python's `indent`), 2 by default
 * @returns the JSON text
 * @throws {LlmcError} for a value nested deeper than {@link MAX_STRINGIFY_DEPTH} levels
 * @example
 * ```ts
 * import { stableStringify } from "./stable_stringify.ts";
 * import { PyFloat } from "./python_json.ts";
 * stableStringify({ b: 1e-5, a: [new PyFloat(10000)] });
 * // '{\n  "a": [\n    10000.0\n  ],\n  "b": 1e-05\n}'
 * ```
 */
export function stableStringify(value: JsonValue, indentWidth = 2): string {
  return write(value, " ".repeat(indentWidth), 0);
}
