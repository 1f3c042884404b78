/**
 * `QuantizationScheme` (one config group): which modules it targets and how
 * their weights, inputs and outputs are quantized.
 *
 * @module
 */

import {
  isMapping,
  parseQuantizationArgs,
  quantizationArgsEqual,
  quantizationArgsToJson,
} from "./args.ts";
import type { ArgsJsonOptions, ParseArgsOptions, QuantizationArgs } from "./args.ts";
import { isCompressionFormat } from "./compression_format.ts";
import type { ModuleFormat } from "./compression_format.ts";
import { QuantizationConfigError } from "./errors.ts";
import type { JsonValue } from "./python_json.ts";

/** One config group, normalised. */
export interface QuantizationScheme {
  /** Class names (`"Linear"`), exact module names or `re:` patterns. */
  readonly targets: readonly string[];
  /** Weight args, or null. */
  readonly weights: QuantizationArgs | null;
  /** Input activation args, or null. */
  readonly inputActivations: QuantizationArgs | null;
  /** Output activation args, or null. */
  readonly outputActivations: QuantizationArgs | null;
  /** Per-group compression format (never `mixed-precision`), or null before saving. */
  readonly format: ModuleFormat | null;
}

const FIELDS = ["targets", "weights", "input_activations", "output_activations", "format"];
const INPUT_STRATEGIES = ["token", "tensor", "group", "tensor_group", "attn_head"];

/**
 * Builds a scheme from already-normalised parts and validates it (§1.2.2).
 *
 * @param parts the scheme's fields (missing args default to null)
 * @param where where it came from, prefixed to error messages
 * @param options a warning sink
 * @returns the frozen scheme
 * @throws {QuantizationConfigError} on an invalid combination
 * @example
 * ```ts
 * import { makeQuantizationScheme } from "./scheme.ts";
 * import { parseQuantizationArgs } from "./args.ts";
 * const s = makeQuantizationScheme(
 *   { targets: ["Linear"], weights: parseQuantizationArgs({ num_bits: 4, group_size: 128 }, "w") },
 *   "group_0",
 * );
 * s.inputActivations; // null
 * ```
 */
export function makeQuantizationScheme(
  parts: {
    targets: readonly string[];
    weights?: QuantizationArgs | null;
    inputActivations?: QuantizationArgs | null;
    outputActivations?: QuantizationArgs | null;
    format?: ModuleFormat | null;
  },
  where: string,
  options: ParseArgsOptions = {},
): QuantizationScheme {
  const warn = options.warn ?? ((m: string) => console.warn(m));
  const scheme: QuantizationScheme = Object.freeze({
    targets: Object.freeze([...parts.targets]),
    weights: parts.weights ?? null,
    inputActivations: parts.inputActivations ?? null,
    outputActivations: parts.outputActivations ?? null,
    format: parts.format ?? null,
  });
  const inputs = scheme.inputActivations;
  if (inputs !== null) {
    if (!INPUT_STRATEGIES.includes(inputs.strategy)) {
      throw new QuantizationConfigError(
        `${where}.input_activations.strategy: '${inputs.strategy}' is not supported for ` +
          `activation quantization; use one of ${INPUT_STRATEGIES.join(", ")}`,
      );
    }
    if (inputs.actorder !== null) {
      throw new QuantizationConfigError(
        `${where}.input_activations.actorder: cannot apply actorder to input activations`,
      );
    }
  }
  if (scheme.outputActivations !== null && scheme.outputActivations.actorder !== null) {
    throw new QuantizationConfigError(
      `${where}.output_activations.actorder: cannot apply actorder to output activations`,
    );
  }
  const w = scheme.weights;
  if (
    inputs !== null && w !== null && w.strategy === "group" && inputs.strategy === "group" &&
    w.groupSize !== inputs.groupSize
  ) {
    warn(
      `${where}: group strategy for both weights and input_activations with different group ` +
        `sizes (${w.groupSize} vs ${inputs.groupSize}) may complicate fused kernels`,
    );
  }
  return scheme;
}

/**
 * Parses a raw config group (snake_case JSON/YAML), validating every field.
 *
 * @param raw the mapping `{targets, weights, input_activations, output_activations, format}`
 * @param where where it came from, e.g. `config_groups.group_0`
 * @param options a warning sink
 * @returns the normalised scheme
 * @throws {QuantizationConfigError} on unknown keys, bad targets, bad args or a bad format
 * @example
 * ```ts
 * import { parseQuantizationScheme } from "./scheme.ts";
 * const s = parseQuantizationScheme(
 *   { targets: ["Linear"], weights: { num_bits: 8, type: "float", strategy: "channel" } },
 *   "config_groups.group_0",
 * );
 * s.weights?.observer; // "minmax"
 * ```
 */
export function parseQuantizationScheme(
  raw: unknown,
  where: string,
  options: ParseArgsOptions = {},
): QuantizationScheme {
  if (!isMapping(raw)) {
    throw new QuantizationConfigError(`${where}: expected a mapping (a quantization scheme)`);
  }
  for (const key of Object.keys(raw)) {
    if (!FIELDS.includes(key)) {
      throw new QuantizationConfigError(
        `${where}.${key}: unknown field (extra inputs are not permitted); ` +
          `a scheme has ${FIELDS.join(", ")}`,
      );
    }
  }
  const targets = raw.targets;
  if (!Array.isArray(targets) || !targets.every((t) => typeof t === "string")) {
    throw new QuantizationConfigError(
      `${where}.targets: expected a list of strings (class names, module names or "re:" patterns)`,
    );
  }
  const args = (field: string) =>
    raw[field] === undefined || raw[field] === null
      ? null
      : parseQuantizationArgs(raw[field], `${where}.${field}`, options);
  let format: ModuleFormat | null = null;
  if (raw.format !== undefined && raw.format !== null) {
    if (!isCompressionFormat(raw.format)) {
      throw new QuantizationConfigError(
        `${where}.format: unknown compression format ${JSON.stringify(raw.format)}`,
      );
    }
    if (raw.format === "mixed-precision") {
      throw new QuantizationConfigError(
        `${where}.format: mixed-precision cannot be set as the format of a scheme`,
      );
    }
    format = raw.format;
  }
  return makeQuantizationScheme(
    {
      targets,
      weights: args("weights"),
      inputActivations: args("input_activations"),
      outputActivations: args("output_activations"),
      format,
    },
    where,
    options,
  );
}

/**
 * Serialises a scheme as compressed-tensors does.
 *
 * @param scheme the scheme
 * @param options compatibility switches for the args
 * @returns `{targets, weights, input_activations, output_activations, format}`
 * @example
 * ```ts
 * import { parseQuantizationScheme, quantizationSchemeToJson } from "./scheme.ts";
 * const s = parseQuantizationScheme({ targets: ["Linear"] }, "g");
 * quantizationSchemeToJson(s).weights; // null
 * ```
 */
export function quantizationSchemeToJson(
  scheme: QuantizationScheme,
  options: ArgsJsonOptions = {},
): { [key: string]: JsonValue } {
  const args = (a: QuantizationArgs | null) =>
    a === null ? null : quantizationArgsToJson(a, options);
  return {
    targets: [...scheme.targets],
    weights: args(scheme.weights),
    input_activations: args(scheme.inputActivations),
    output_activations: args(scheme.outputActivations),
    format: scheme.format,
  };
}

/**
 * Whether two schemes are equal field by field (targets in order).
 *
 * @param a first scheme
 * @param b second scheme
 * @returns true when targets, all args and format match
 * @example
 * ```ts
 * import { parseQuantizationScheme, quantizationSchemesEqual } from "./scheme.ts";
 * const a = parseQuantizationScheme({ targets: ["Linear"] }, "a");
 * quantizationSchemesEqual(a, a); // true
 * ```
 */
export function quantizationSchemesEqual(a: QuantizationScheme, b: QuantizationScheme): boolean {
  return a.targets.length === b.targets.length &&
    a.targets.every((t, i) => t === b.targets[i]) &&
    quantizationArgsEqual(a.weights, b.weights) &&
    quantizationArgsEqual(a.inputActivations, b.inputActivations) &&
    quantizationArgsEqual(a.outputActivations, b.outputActivations) &&
    a.format === b.format;
}

/**
 * A copy of a scheme with another format.
 *
 * @param scheme the scheme
 * @param format the format to set
 * @returns a new frozen scheme
 * @example
 * ```ts
 * import { parseQuantizationScheme, withFormat } from "./scheme.ts";
 * withFormat(parseQuantizationScheme({ targets: ["Linear"] }, "g"), "dense").format; // "dense"
 * ```
 */
export function withFormat(
  scheme: QuantizationScheme,
  format: ModuleFormat | null,
): QuantizationScheme {
  return Object.freeze({ ...scheme, format });
}
