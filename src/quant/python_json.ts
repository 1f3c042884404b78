/**
 * JSON values as Python's `json` module sees them. Python keeps ints and
 * floats apart (`10000.0` stays `10000.0` when a config is rewritten), while
 * a JavaScript number loses the distinction. {@link PyFloat} marks a number
 * that must print as a float even though its value is integral, and
 * {@link parsePythonJson} produces those marks from a file's text, so a
 * config.json read and written again keeps every number spelled as Python
 * would spell it.
 *
 * @module
 */

import { LlmcError } from "../errors.ts";
import { describeDepthExcess, findDepthExcess, MAX_JSON_DEPTH } from "../io/json_limits.ts";

/**
 * A float whose value is integral (or that must otherwise print as a Python
 * float): `new PyFloat(10000)` prints as `10000.0`.
 *
 * @example
 * ```ts
 * import { PyFloat } from "./python_json.ts";
 * const theta = new PyFloat(10000);
 * theta.value; // 10000
 * ```
 */
export class PyFloat {
  /**
   * Marks a number as a Python float.
   *
   * @param value the number
   */
  constructor(readonly value: number) {}
}

/** A JSON value that may carry {@link PyFloat} marks. */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | PyFloat
  | JsonValue[]
  | { [key: string]: JsonValue };

/** Text that is not valid JSON (Python's dialect: NaN and Infinity allowed). */
export class PythonJsonError extends LlmcError {}

/**
 * Parses JSON text the way Python's `json.loads` does, marking every float
 * literal with an integral value (`10000.0`, `1e+16`) as a {@link PyFloat};
 * other numbers are plain numbers. Accepts `NaN`, `Infinity`, `-Infinity`.
 *
 * @param text the JSON text
 * @param where names the source in error messages (e.g. a file path)
 * @returns the parsed value
 * @throws {PythonJsonError} on malformed text, naming `where` and the offset,
 *   or text nested deeper than `MAX_JSON_DEPTH` (64) levels
 * @example
 * ```ts
 * import { parsePythonJson, PyFloat } from "./python_json.ts";
 * const v = parsePythonJson('{"rope_theta": 10000.0, "eps": 1e-05}', "config.json");
 * (v as Record<string, unknown>).rope_theta instanceof PyFloat; // true
 * ```
 */
export function parsePythonJson(text: string, where = "JSON"): JsonValue {
  // The parser below recurses once per level; refuse deep text before it starts.
  const excess = findDepthExcess(text, MAX_JSON_DEPTH);
  if (excess !== null) {
    throw new PythonJsonError(`${where}: ${describeDepthExcess(excess, MAX_JSON_DEPTH)}`);
  }
  let i = 0;
  const fail = (what: string): never => {
    throw new PythonJsonError(`${where}: ${what} at offset ${i}`);
  };
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i])) i++;
  };
  const literal = (word: string, value: JsonValue): JsonValue => {
    if (text.startsWith(word, i)) {
      i += word.length;
      return value;
    }
    return fail(`unexpected character ${JSON.stringify(text[i] ?? "end of input")}`);
  };
  const str = (): string => {
    const start = i;
    i++; // opening quote
    while (i < text.length && text[i] !== '"') {
      if (text[i] === "\\") i++;
      i++;
    }
    if (i >= text.length) fail("unterminated string");
    i++;
    try {
      return JSON.parse(text.slice(start, i));
    } catch {
      return fail("invalid string escape");
    }
  };
  const num = (): JsonValue => {
    const m = /^-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (!m) return fail("invalid number");
    i += m[0].length;
    const v = Number(m[0]);
    const isFloat = m[1] !== undefined || m[2] !== undefined;
    return isFloat && Number.isInteger(v) ? new PyFloat(v) : v;
  };
  const value = (): JsonValue => {
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const out: { [key: string]: JsonValue } = {};
      ws();
      if (text[i] === "}") {
        i++;
        return out;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail("expected a string key");
        const key = str();
        ws();
        if (text[i] !== ":") fail("expected ':'");
        i++;
        out[key] = value();
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "}") {
          i++;
          return out;
        }
        fail("expected ',' or '}'");
      }
    }
    if (c === "[") {
      i++;
      const out: JsonValue[] = [];
      ws();
      if (text[i] === "]") {
        i++;
        return out;
      }
      for (;;) {
        out.push(value());
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "]") {
          i++;
          return out;
        }
        fail("expected ',' or ']'");
      }
    }
    if (c === '"') return str();
    if (c === "t") return literal("true", true);
    if (c === "f") return literal("false", false);
    if (c === "n") return literal("null", null);
    if (c === "N") return literal("NaN", NaN);
    if (c === "I") return literal("Infinity", Infinity);
    if (c === "-" && text.startsWith("-Infinity", i)) return literal("-Infinity", -Infinity);
    return num();
  };
  const out = value();
  ws();
  if (i !== text.length) fail("trailing characters");
  return out;
}
