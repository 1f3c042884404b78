/**
 * `QuantizationArgs` of compressed-tensors 0.13.0: how one tensor (weight,
 * input or output activations, KV cache) is quantized. The TypeScript form
 * is camelCase and fully normalised (strategy, observer and zp_dtype
 * inferred); {@link quantizationArgsToJson} turns it back into the exact
 * snake_case JSON compressed-tensors writes.
 *
 * @module
 */

import { QuantizationConfigError } from "./errors.ts";
import type { JsonValue } from "./python_json.ts";
import { parseTorchDtype } from "./torch_dtype.ts";
import type { TorchDtypeName } from "./torch_dtype.ts";

/** The number system of the quantized values. */
export type QuantizationType = "int" | "float";

/** Which elements share one scale / zero point. */
export type QuantizationStrategy =
  | "tensor"
  | "channel"
  | "group"
  | "block"
  | "token"
  | "tensor_group"
  | "attn_head";

/** `dynamic`: static (false), fully dynamic (true), or only local scales dynamic. */
export type DynamicType = boolean | "local";

/**
 * GPTQ activation ordering as spelled by the user; `"dynamic"` is an alias
 * of `"group"` and `"static"` of `"weight"`. The spelling is kept because
 * compressed-tensors writes it back unchanged (GPTQ's default dumps as
 * `"static"`); use {@link canonicalActorder} to act on it.
 */
export type ActivationOrdering = "group" | "weight" | "dynamic" | "static";

/** Observer names llm-compressor 0.9 registers. */
export type ObserverName =
  | "minmax"
  | "static_minmax"
  | "memoryless_minmax"
  | "mse"
  | "memoryless_mse";

/** Normalised quantization args (every post-validation rule applied). */
export interface QuantizationArgs {
  /** Bits per quantized value. */
  readonly numBits: number;
  /** `int` or `float`. */
  readonly type: QuantizationType;
  /** Symmetric (zero point 0) or asymmetric. */
  readonly symmetric: boolean;
  /** Group length for group/tensor_group; -1 allowed with channel; else null. */
  readonly groupSize: number | null;
  /** Always set (inferred from group_size when omitted). */
  readonly strategy: QuantizationStrategy;
  /** `[rows, cols]` of a block, only with strategy block. */
  readonly blockStructure: readonly [number, number] | null;
  /** Static, dynamic or `"local"`. */
  readonly dynamic: DynamicType;
  /** Activation ordering, spelled as given. */
  readonly actorder: ActivationOrdering | null;
  /** dtype scales are rounded to (e.g. float8_e4m3fn for NVFP4, uint8 for MX). */
  readonly scaleDtype: TorchDtypeName | null;
  /** dtype of zero points; always inferred, serialised only when asymmetric. */
  readonly zpDtype: TorchDtypeName;
  /** Observer name (null for fully dynamic args). */
  readonly observer: string | null;
  /** Keyword arguments for the observer. */
  readonly observerKwargs: Readonly<Record<string, JsonValue>>;
}

/** Options of {@link parseQuantizationArgs}. */
export interface ParseArgsOptions {
  /** Receives the warnings compressed-tensors would print; `console.warn` by default. */
  warn?: (message: string) => void;
}

const FIELDS = [
  "num_bits",
  "type",
  "symmetric",
  "group_size",
  "strategy",
  "block_structure",
  "dynamic",
  "actorder",
  "scale_dtype",
  "zp_dtype",
  "observer",
  "observer_kwargs",
] as const;

const STRATEGIES: readonly QuantizationStrategy[] = [
  "tensor",
  "channel",
  "group",
  "block",
  "token",
  "tensor_group",
  "attn_head",
];

const ACTORDERS: readonly ActivationOrdering[] = ["group", "weight", "dynamic", "static"];

/**
 * The behaviour an activation ordering spelling stands for.
 *
 * @param actorder a spelling, or null
 * @returns `"group"` for group/dynamic, `"weight"` for weight/static, null for null
 * @example
 * ```ts
 * import { canonicalActorder } from "./args.ts";
 * canonicalActorder("static"); // "weight"
 * ```
 */
export function canonicalActorder(
  actorder: ActivationOrdering | null,
): "group" | "weight" | null {
  if (actorder === "group" || actorder === "dynamic") return "group";
  if (actorder === "weight" || actorder === "static") return "weight";
  return null;
}

function describe(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (Array.isArray(v)) return `a list ${JSON.stringify(v)}`;
  if (typeof v === "object") return "a mapping";
  return `${typeof v} ${JSON.stringify(v)}`;
}

/**
 * Whether a value is a plain JSON/YAML mapping.
 *
 * @param v any value
 * @returns true for non-null, non-array objects
 * @example
 * ```ts
 * import { isMapping } from "./args.ts";
 * isMapping({ a: 1 }); // true
 * isMapping([1]); // false
 * ```
 */
export function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Parses and validates raw (snake_case, JSON/YAML) quantization args,
 * applying compressed-tensors 0.13.0's field validators and then its
 * post-validation rules in their order:
 *
 * 1. strategy inferred from group_size (null → tensor, >0 → group, −1 → channel);
 * 2. token requires dynamic;
 * 3. group/tensor_group require group_size > 0, and a positive group_size requires one of them;
 * 4. block requires block_structure and vice versa;
 * 5. actorder requires strategy group;
 * 6. dynamic requires token/tensor/tensor_group/group, "local" requires tensor_group,
 *    dynamic true drops the observer (warning unless it was "memoryless"),
 *    "local" defaults the observer to "minmax";
 * 7. static args default the observer to "minmax";
 * 8. zp_dtype inferred (FP4 and FP8 → float8_e4m3fn; int ≤8 → int8, ≤16 → int16, else int32).
 *
 * @param raw the mapping, e.g. a config group's `weights`
 * @param where where it came from, prefixed to every error message
 * @param options a warning sink
 * @returns normalised args
 * @throws {QuantizationConfigError} naming `where` and the field on any violation
 * @example
 * ```ts
 * import { parseQuantizationArgs } from "./args.ts";
 * const a = parseQuantizationArgs({ num_bits: 4, group_size: 128 }, "group_0.weights");
 * a.strategy; // "group"
 * a.observer; // "minmax"
 * ```
 */
export function parseQuantizationArgs(
  raw: unknown,
  where: string,
  options: ParseArgsOptions = {},
): QuantizationArgs {
  const warn = options.warn ?? ((m: string) => console.warn(m));
  if (!isMapping(raw)) {
    throw new QuantizationConfigError(
      `${where}: expected a mapping of quantization args, got ${describe(raw)}`,
    );
  }
  for (const key of Object.keys(raw)) {
    if (!(FIELDS as readonly string[]).includes(key)) {
      throw new QuantizationConfigError(
        `${where}.${key}: unknown field (extra inputs are not permitted); ` +
          `QuantizationArgs fields are ${FIELDS.join(", ")}`,
      );
    }
  }
  const fail = (field: string, what: string): never => {
    throw new QuantizationConfigError(`${where}.${field}: ${what}`);
  };
  const get = (field: string): unknown => raw[field];
  const has = (field: string): boolean => raw[field] !== undefined;

  // ---- field validators (pydantic "before" validators)
  let numBits = 8;
  if (has("num_bits")) {
    const v = get("num_bits");
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1) {
      fail("num_bits", `expected a positive integer, got ${describe(v)}`);
    }
    numBits = v as number;
  }

  let type: QuantizationType = "int";
  if (has("type")) {
    const v = get("type");
    const t = typeof v === "string" ? v.toLowerCase() : v;
    if (t !== "int" && t !== "float") fail("type", `expected "int" or "float", got ${describe(v)}`);
    type = t as QuantizationType;
  }

  let symmetric = true;
  if (has("symmetric")) {
    const v = get("symmetric");
    if (typeof v !== "boolean") fail("symmetric", `expected true or false, got ${describe(v)}`);
    symmetric = v as boolean;
  }

  let groupSize: number | null = null;
  if (has("group_size") && get("group_size") !== null) {
    const v = get("group_size");
    if (typeof v !== "number" || !Number.isInteger(v)) {
      fail("group_size", `expected an integer or null, got ${describe(v)}`);
    }
    if ((v as number) < -1) {
      fail(
        "group_size",
        `invalid group size ${v}; use group_size > 0 for strategy 'group' and -1 for 'channel'`,
      );
    }
    groupSize = v as number;
  }

  let strategy: QuantizationStrategy | null = null;
  if (has("strategy") && get("strategy") !== null) {
    const v = get("strategy");
    const s = typeof v === "string" ? v.toLowerCase() : v;
    if (!STRATEGIES.includes(s as QuantizationStrategy)) {
      fail("strategy", `expected one of ${STRATEGIES.join(", ")}, got ${describe(v)}`);
    }
    strategy = s as QuantizationStrategy;
  }

  let blockStructure: [number, number] | null = null;
  if (has("block_structure") && get("block_structure") !== null) {
    const v = get("block_structure");
    const bad = () =>
      fail("block_structure", `invalid ${describe(v)}; must be a list of ints [rows, cols]`);
    let parts: unknown[];
    if (typeof v === "string") {
      // The legacy "128x128" spelling.
      parts = v.split("x").map((p) => (/^\s*[+-]?\d+\s*$/.test(p) ? Number(p) : NaN));
      if (parts.some((p) => Number.isNaN(p))) bad();
    } else if (Array.isArray(v)) {
      parts = v;
    } else {
      return bad();
    }
    if (parts.length !== 2 || !parts.every((p) => typeof p === "number" && Number.isInteger(p))) {
      bad();
    }
    blockStructure = [parts[0] as number, parts[1] as number];
  }

  let dynamic: DynamicType = false;
  if (has("dynamic")) {
    const v = get("dynamic");
    if (typeof v === "string") {
      if (v.toLowerCase() !== "local") {
        fail("dynamic", `expected true, false or "local", got ${describe(v)}`);
      }
      dynamic = "local";
    } else if (typeof v === "boolean") {
      dynamic = v;
    } else {
      fail("dynamic", `expected true, false or "local", got ${describe(v)}`);
    }
  }

  let actorder: ActivationOrdering | null = null;
  if (has("actorder") && get("actorder") !== null) {
    const v = get("actorder");
    if (typeof v === "boolean") {
      actorder = v ? "group" : null;
    } else if (typeof v === "string" && ACTORDERS.includes(v.toLowerCase() as ActivationOrdering)) {
      actorder = v.toLowerCase() as ActivationOrdering;
    } else {
      fail(
        "actorder",
        `expected one of ${ACTORDERS.join(", ")}, true, false or null, got ${describe(v)}`,
      );
    }
  }

  const dtypeField = (field: "scale_dtype" | "zp_dtype"): TorchDtypeName | null => {
    if (!has(field) || get(field) === null) return null;
    const v = get(field);
    if (typeof v !== "string") fail(field, `expected a torch dtype string, got ${describe(v)}`);
    const d = parseTorchDtype(v as string);
    if (d === null) {
      fail(field, `no such torch dtype ${JSON.stringify(v)} (e.g. "torch.float8_e4m3fn")`);
    }
    return d;
  };
  const scaleDtype = dtypeField("scale_dtype");
  let zpDtype = dtypeField("zp_dtype");

  let observer: string | null = null;
  if (has("observer") && get("observer") !== null) {
    const v = get("observer");
    if (typeof v !== "string") fail("observer", `expected a string or null, got ${describe(v)}`);
    observer = v as string;
  }

  let observerKwargs: Record<string, JsonValue> = {};
  if (has("observer_kwargs") && get("observer_kwargs") !== null) {
    const v = get("observer_kwargs");
    if (!isMapping(v)) fail("observer_kwargs", `expected a mapping, got ${describe(v)}`);
    observerKwargs = { ...(v as Record<string, JsonValue>) };
  }

  // ---- post-validation, in compressed-tensors' order
  // 1. strategy inference
  if (strategy === null) {
    if (groupSize === null) strategy = "tensor";
    else if (groupSize > 0) strategy = "group";
    else if (groupSize === -1) strategy = "channel";
    else {
      fail(
        "group_size",
        `invalid group size ${groupSize}; use group_size > 0 for strategy 'group' and -1 for 'channel'`,
      );
    }
  }
  const s = strategy as QuantizationStrategy;

  // 2. token needs dynamic
  if (s === "token" && !dynamic) {
    fail("dynamic", "cannot perform static token quantization; set dynamic: true");
  }

  // 3. group sizes
  if ((s === "group" || s === "tensor_group") && (groupSize === null || groupSize <= 0)) {
    fail("group_size", `strategy ${s} requires group_size to be set to a positive value`);
  }
  if (groupSize !== null && groupSize > 0 && s !== "group" && s !== "tensor_group") {
    fail(
      "group_size",
      `group_size ${groupSize} requires strategy 'group' or 'tensor_group', got '${s}'`,
    );
  }

  // 4. block
  if (s === "block" && blockStructure === null) {
    fail("block_structure", "strategy block requires block_structure, e.g. [128, 128]");
  }
  if (blockStructure !== null && s !== "block") {
    fail("block_structure", `block_structure requires strategy 'block', got '${s}'`);
  }
  if (blockStructure !== null && (blockStructure[0] <= 0 || blockStructure[1] <= 0)) {
    fail("block_structure", `block sizes must be positive, got [${blockStructure.join(", ")}]`);
  }

  // 5. actorder
  if (actorder !== null && s !== "group") {
    fail("actorder", `activation ordering requires strategy 'group', got '${s}'`);
  }

  // 6. dynamic
  if (dynamic) {
    const supported: QuantizationStrategy[] = ["token", "tensor", "tensor_group", "group"];
    if (!supported.includes(s)) {
      fail("strategy", `dynamic quantization needs one of ${supported.join(", ")}, got '${s}'`);
    }
    if (dynamic === "local" && s !== "tensor_group") {
      fail("dynamic", `"local" is only supported for strategy tensor_group, got '${s}'`);
    }
    if (observer !== null) {
      if (dynamic === true) {
        if (observer !== "memoryless") {
          warn(`${where}: no observer is used for dynamic quantization; setting observer to null`);
        }
        observer = null;
      }
    } else if (dynamic === "local") {
      observer = "minmax";
    }
  } else if (observer === null) {
    // 7. static default
    observer = "minmax";
  }

  // 8. zp_dtype
  if (zpDtype === null) {
    if (type === "float") {
      if (numBits !== 4 && numBits !== 8) {
        fail("num_bits", `float quantization supports 4 or 8 bits, got ${numBits}`);
      }
      zpDtype = "float8_e4m3fn";
    } else {
      zpDtype = numBits <= 8 ? "int8" : numBits <= 16 ? "int16" : "int32";
    }
  }

  return Object.freeze({
    numBits,
    type,
    symmetric,
    groupSize,
    strategy: s,
    blockStructure: blockStructure === null ? null : Object.freeze(blockStructure),
    dynamic,
    actorder,
    scaleDtype,
    zpDtype,
    observer,
    observerKwargs: Object.freeze(observerKwargs),
  });
}

/** Options of {@link quantizationArgsToJson}. */
export interface ArgsJsonOptions {
  /**
   * Leave out `scale_dtype` / `zp_dtype` when they serialise as null: vLLM
   * builds bundling compressed-tensors ≤ 0.12 reject those keys ("Extra
   * inputs are not permitted").
   */
  omitNullDtypes?: boolean;
}

/**
 * Serialises args exactly as compressed-tensors 0.13.0 dumps them: enums as
 * strings, `scale_dtype` as `"torch.<name>"` or null, `zp_dtype` null
 * whenever the args are symmetric.
 *
 * @param args normalised args
 * @param options compatibility switches
 * @returns the snake_case JSON object
 * @example
 * ```ts
 * import { parseQuantizationArgs, quantizationArgsToJson } from "./args.ts";
 * const a = parseQuantizationArgs({ num_bits: 4, symmetric: false, strategy: "channel" }, "w");
 * quantizationArgsToJson(a).zp_dtype; // "torch.int8"
 * ```
 */
export function quantizationArgsToJson(
  args: QuantizationArgs,
  options: ArgsJsonOptions = {},
): { [key: string]: JsonValue } {
  const out: { [key: string]: JsonValue } = {
    num_bits: args.numBits,
    type: args.type,
    symmetric: args.symmetric,
    group_size: args.groupSize,
    strategy: args.strategy,
    block_structure: args.blockStructure === null ? null : [...args.blockStructure],
    dynamic: args.dynamic,
    actorder: args.actorder,
    scale_dtype: args.scaleDtype === null ? null : `torch.${args.scaleDtype}`,
    zp_dtype: args.symmetric ? null : `torch.${args.zpDtype}`,
    observer: args.observer,
    observer_kwargs: { ...args.observerKwargs },
  };
  if (options.omitNullDtypes) {
    if (out.scale_dtype === null) delete out.scale_dtype;
    if (out.zp_dtype === null) delete out.zp_dtype;
  }
  return out;
}

/**
 * Whether two args are equal field by field (what pydantic's `==` compares,
 * including the unserialised zp_dtype).
 *
 * @param a first args (or null)
 * @param b second args (or null)
 * @returns true when every field matches
 * @example
 * ```ts
 * import { parseQuantizationArgs, quantizationArgsEqual } from "./args.ts";
 * const a = parseQuantizationArgs({ num_bits: 4 }, "a");
 * quantizationArgsEqual(a, parseQuantizationArgs({ num_bits: 4, strategy: "tensor" }, "b")); // true
 * ```
 */
export function quantizationArgsEqual(
  a: QuantizationArgs | null,
  b: QuantizationArgs | null,
): boolean {
  if (a === null || b === null) return a === b;
  const ja = { ...quantizationArgsToJson(a), zp_dtype: a.zpDtype };
  const jb = { ...quantizationArgsToJson(b), zp_dtype: b.zpDtype };
  return JSON.stringify(ja, sortedReplacer) === JSON.stringify(jb, sortedReplacer);
}

function sortedReplacer(_key: string, value: unknown): unknown {
  if (isMapping(value)) {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, value[k]]));
  }
  return value;
}
