/**
 * Which compression format a module's weights are saved in (§1.8), and the
 * top-level `format` of a whole config.
 *
 * @module
 */

import type { CompressionFormat, ModuleFormat } from "./compression_format.ts";
import type { QuantizationScheme } from "./scheme.ts";

/** The sparsity structure of a module: `"2:4"`, unstructured, or none. */
export type SparsityStructure = "2:4" | "unstructured" | "0:0";

/**
 * The format compressed-tensors 0.13.0 infers for a module from its scheme
 * (`_get_quant_compression_format`). A format already set on the scheme is
 * not consulted; see {@link moduleFormat} for the user-override rule.
 *
 * @param scheme the module's scheme
 * @param sparsityStructure the module's sparsity structure, if any
 * @returns the inferred format, or null when the scheme has no weight args
 *   (nothing to compress; activation-only groups keep a null format)
 * @example
 * ```ts
 * import { inferFormat } from "./format.ts";
 * import { presetScheme } from "./presets.ts";
 * inferFormat(presetScheme("W8A8", ["Linear"])); // "int-quantized"
 * inferFormat(presetScheme("W4A16", ["Linear"]), "2:4"); // "marlin-24"
 * ```
 */
export function inferFormat(
  scheme: QuantizationScheme,
  sparsityStructure?: SparsityStructure | null,
): ModuleFormat | null {
  const w = scheme.weights;
  if (w === null) return null;
  if (w.type === "float" && w.numBits === 4) {
    return w.groupSize === 32 ? "mxfp4-pack-quantized" : "nvfp4-pack-quantized";
  }
  if (scheme.inputActivations === null) {
    if (w.type !== "int" || (w.numBits !== 4 && w.numBits !== 8)) return "naive-quantized";
    if (sparsityStructure === "2:4" && (w.strategy === "channel" || w.strategy === "group")) {
      return "marlin-24";
    }
    return "pack-quantized";
  }
  if (w.type === "float" && w.numBits === 8) return "float-quantized";
  if (w.type === "int") return "int-quantized";
  return "naive-quantized";
}

/**
 * The format a module is saved in: a user-wide `quantization_format` wins,
 * then a format set on the scheme, then the inferred one.
 *
 * @param scheme the module's scheme
 * @param options the user's override and the module's sparsity structure
 * @returns the format, or null when the scheme has no weight args
 * @example
 * ```ts
 * import { moduleFormat } from "./format.ts";
 * import { presetScheme } from "./presets.ts";
 * moduleFormat(presetScheme("FP8", ["Linear"]), { override: "naive-quantized" }); // "naive-quantized"
 * ```
 */
export function moduleFormat(
  scheme: QuantizationScheme,
  options: { override?: ModuleFormat | null; sparsityStructure?: SparsityStructure | null } = {},
): ModuleFormat | null {
  if (scheme.weights === null) return null;
  return options.override ?? scheme.format ?? inferFormat(scheme, options.sparsityStructure);
}

/**
 * The top-level `format` of a config from the formats of its modules:
 * the single format, `"mixed-precision"` for several, `"dense"` for none.
 *
 * @param formats every module's format (nulls are skipped)
 * @returns the global format
 * @example
 * ```ts
 * import { globalFormat } from "./format.ts";
 * globalFormat(["pack-quantized", "pack-quantized"]); // "pack-quantized"
 * globalFormat(["pack-quantized", "float-quantized"]); // "mixed-precision"
 * globalFormat([]); // "dense"
 * ```
 */
export function globalFormat(formats: Iterable<ModuleFormat | null>): CompressionFormat {
  const unique = new Set<ModuleFormat>();
  for (const f of formats) if (f !== null) unique.add(f);
  if (unique.size === 0) return "dense";
  if (unique.size > 1) return "mixed-precision";
  return [...unique][0];
}
