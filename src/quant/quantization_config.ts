/**
 * The `quantization_config` object of config.json (§1.2.1) as
 * llm-compressor 0.9 / compressed-tensors 0.13.0 writes it for a compressed
 * checkpoint: config groups named `group_0`, `group_1`, … in order of first
 * appearance when walking the modules, each with its format; the top-level
 * format (or `mixed-precision`); the generated ignore list.
 *
 * @module
 */

import { quantizationArgsToJson } from "./args.ts";
import type { ArgsJsonOptions, QuantizationArgs } from "./args.ts";
import type { ModuleFormat } from "./compression_format.ts";
import { globalFormat, inferFormat } from "./format.ts";
import type { SparsityStructure } from "./format.ts";
import { generatedIgnoreList } from "./match.ts";
import type { JsonValue } from "./python_json.ts";
import { quantizationSchemesEqual, quantizationSchemeToJson, withFormat } from "./scheme.ts";
import type { QuantizationScheme } from "./scheme.ts";

/** The compressed-tensors version llmc claims compatibility with. */
export const COMPRESSED_TENSORS_VERSION = "0.13.0";

/** `quantization_status` values. */
export type QuantizationStatus = "initialized" | "calibration" | "frozen" | "compressed";

/** One module of the model with the scheme applied to it (null when not quantized). */
export interface SchemedModule {
  /** Full dotted name, e.g. `model.layers.0.self_attn.q_proj`. */
  readonly name: string;
  /** Class name, e.g. `"Linear"`, `"LlamaAttention"`. */
  readonly className: string;
  /** The scheme quantizing it, or null. */
  readonly scheme: QuantizationScheme | null;
}

/** Inputs of {@link buildQuantizationConfig}. */
export interface QuantizationConfigInput {
  /** Every module in `named_modules()` order (containers included, so the ignore list is right). */
  readonly modules: readonly SchemedModule[];
  /** KV-cache args, or null. */
  readonly kvCacheScheme?: QuantizationArgs | null;
  /** The `sparsity_config` object (`{}` by default). */
  readonly sparsityConfig?: { [key: string]: JsonValue };
  /** The `transform_config` object (`{}` by default). */
  readonly transformConfig?: { [key: string]: JsonValue };
  /** `"compressed"` by default; `"frozen"` for a dense save. */
  readonly status?: QuantizationStatus;
  /** A format forced on every quantized module (e.g. `"dense"` for save_compressed=False). */
  readonly formatOverride?: ModuleFormat | null;
  /** Sparsity structure of the model, for the marlin-24 inference. */
  readonly sparsityStructure?: SparsityStructure | null;
  /** Args serialisation switches (omit null dtypes for old vLLM). */
  readonly argsJson?: ArgsJsonOptions;
}

function isQuantized(s: QuantizationScheme | null): boolean {
  return s !== null &&
    (s.weights !== null || s.inputActivations !== null || s.outputActivations !== null);
}

/**
 * Builds the whole `quantization_config` object for a compressed save.
 * Formats are filled per module first (a format on the scheme or the
 * override wins over inference), so groups that differ only in format stay
 * separate, as in compressed-tensors.
 *
 * @param input the modules with their schemes and the optional parts
 * @returns the JSON object (write it with `stableStringify`)
 * @example
 * ```ts
 * import { buildQuantizationConfig } from "./quantization_config.ts";
 * import { presetScheme } from "./presets.ts";
 * const w8 = presetScheme("W8A16", ["Linear"]);
 * const qc = buildQuantizationConfig({
 *   modules: [
 *     { name: "model.layers.0.mlp.up_proj", className: "Linear", scheme: w8 },
 *     { name: "lm_head", className: "Linear", scheme: null },
 *   ],
 * });
 * qc.format; // "pack-quantized"
 * qc.ignore; // ["lm_head"]
 * ```
 */
export function buildQuantizationConfig(
  input: QuantizationConfigInput,
): { [key: string]: JsonValue } {
  const groups: QuantizationScheme[] = [];
  const formats: (ModuleFormat | null)[] = [];
  for (const m of input.modules) {
    if (!isQuantized(m.scheme)) continue;
    const scheme = m.scheme!;
    const format = scheme.weights === null
      ? scheme.format
      : input.formatOverride ?? scheme.format ?? inferFormat(scheme, input.sparsityStructure);
    const filled = withFormat(scheme, format);
    formats.push(format);
    if (!groups.some((g) => quantizationSchemesEqual(g, filled))) groups.push(filled);
  }
  const configGroups: { [key: string]: JsonValue } = {};
  groups.forEach((g, i) => {
    configGroups[`group_${i}`] = quantizationSchemeToJson(g, input.argsJson);
  });
  const ignore = generatedIgnoreList(
    input.modules.map((m) => ({
      name: m.name,
      className: m.className,
      quantized: isQuantized(m.scheme),
    })),
  );
  const fmt = globalFormat(formats);
  return {
    config_groups: configGroups,
    format: fmt,
    global_compression_ratio: null,
    ignore,
    kv_cache_scheme: input.kvCacheScheme
      ? quantizationArgsToJson(input.kvCacheScheme, input.argsJson)
      : null,
    quant_method: "compressed-tensors",
    quantization_status: input.status ?? "compressed",
    sparsity_config: input.sparsityConfig ?? {},
    transform_config: input.transformConfig ?? {},
    version: COMPRESSED_TENSORS_VERSION,
  };
}
