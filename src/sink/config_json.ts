/**
 * The config.json of a compressed checkpoint: the source model's config with
 * `quantization_config` added, written whole with sorted keys and a 2-space
 * indent, as llm-compressor's `json.dump(..., indent=2, sort_keys=True)`
 * does. Numbers keep their Python spelling (`10000.0`, `1e-05`) because the
 * source text is parsed with Python's float/int distinction.
 *
 * @module
 */

import { parsePythonJson } from "../quant/python_json.ts";
import type { JsonValue } from "../quant/python_json.ts";
import { stableStringify } from "../quant/stable_stringify.ts";
import { CheckpointSinkError } from "./sink_error.ts";

/** A JSON object that may carry Python float marks. */
export type JsonObject = { [key: string]: JsonValue };

/**
 * Builds the text of a compressed checkpoint's config.json.
 *
 * @param sourceText the source model's config.json text
 * @param quantizationConfig the `quantization_config` object to add
 * @param options `configPatch`: top-level keys to set (null values are kept as
 *   JSON null; use `removeKeys` to delete); `file` names the source in errors
 * @returns the JSON text, without a trailing newline (as Python writes it)
 * @throws {CheckpointSinkError} when the source text is not a JSON object
 * @example
 * ```ts
 * import { checkpointConfigJson } from "./config_json.ts";
 * const text = checkpointConfigJson('{"rope_theta": 10000.0, "model_type": "llama"}', {
 *   quant_method: "compressed-tensors",
 * });
 * text.includes('"rope_theta": 10000.0'); // true
 * ```
 */
export function checkpointConfigJson(
  sourceText: string,
  quantizationConfig: JsonObject,
  options: { configPatch?: JsonObject; removeKeys?: readonly string[]; file?: string } = {},
): string {
  const file = options.file ?? "config.json";
  let parsed: JsonValue;
  try {
    parsed = parsePythonJson(sourceText, file);
  } catch (e) {
    throw new CheckpointSinkError(file, `cannot parse the source config: ${(e as Error).message}`, {
      cause: e,
    });
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed) || !isPlain(parsed)) {
    throw new CheckpointSinkError(file, "the source config is not a JSON object");
  }
  const out: JsonObject = { ...(parsed as JsonObject) };
  for (const key of options.removeKeys ?? []) delete out[key];
  Object.assign(out, options.configPatch ?? {});
  out.quantization_config = quantizationConfig;
  return stableStringify(out);
}

function isPlain(v: object): boolean {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}
