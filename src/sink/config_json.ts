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
 *   JSON null; use `removeKeys` to delete); `file` names the source in errors;
 *   `omitNullDtypes` drops null `scale_dtype`/`zp_dtype` keys (see
 *   {@link withoutNullDtypes})
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
  options: {
    configPatch?: JsonObject;
    removeKeys?: readonly string[];
    file?: string;
    omitNullDtypes?: boolean;
  } = {},
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
  out.quantization_config = options.omitNullDtypes
    ? withoutNullDtypes(quantizationConfig)
    : quantizationConfig;
  return stableStringify(out);
}

const ARGS_KEYS = ["weights", "input_activations", "output_activations"];

/**
 * A `quantization_config` without the `scale_dtype`/`zp_dtype` keys whose value
 * is null, in every config group's args and in `kv_cache_scheme`. Why:
 * compressed-tensors ≤ 0.12 (bundled with older vLLM builds) forbids unknown
 * keys and rejects these two ("Extra inputs are not permitted"); null is their
 * default, so dropping them changes nothing for newer readers.
 *
 * @param qc the `quantization_config` object
 * @returns a copy with those keys removed (the input is not modified)
 * @example
 * ```ts
 * import { withoutNullDtypes } from "./config_json.ts";
 * const qc = withoutNullDtypes({
 *   config_groups: { group_0: { weights: { num_bits: 4, scale_dtype: null, zp_dtype: null } } },
 * });
 * // qc.config_groups.group_0.weights is now { num_bits: 4 }
 * ```
 */
export function withoutNullDtypes(qc: JsonObject): JsonObject {
  const strip = (args: JsonValue): JsonValue => {
    if (!isObject(args)) return args;
    const copy: JsonObject = { ...args };
    for (const key of ["scale_dtype", "zp_dtype"]) if (copy[key] === null) delete copy[key];
    return copy;
  };
  const out: JsonObject = { ...qc };
  if (isObject(qc.config_groups)) {
    const groups: JsonObject = {};
    for (const [name, group] of Object.entries(qc.config_groups)) {
      if (!isObject(group)) {
        groups[name] = group;
        continue;
      }
      const g: JsonObject = { ...group };
      for (const key of ARGS_KEYS) if (key in g) g[key] = strip(g[key]);
      groups[name] = g;
    }
    out.config_groups = groups;
  }
  if ("kv_cache_scheme" in qc) out.kv_cache_scheme = strip(qc.kv_cache_scheme);
  return out;
}

function isObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v) && isPlain(v);
}

function isPlain(v: object): boolean {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}
