/**
 * The preset schemes of compressed-tensors 0.13.0 (`PRESET_SCHEMES`) plus
 * the later `W4AFP8` and generic `W{b}A{a}` names.
 *
 * Differences to later compressed-tensors (~0.14–0.18), kept at 0.13.0 here
 * because 0.13.0 is llmc's compatibility contract:
 * - `W8A16` later becomes int8 group-128; 0.13.0 (and the reference
 *   checkpoints) use int8 per channel.
 * - `FP8` later adds `observer: "static_minmax"` to its inputs; 0.13.0 leaves
 *   the default `"minmax"`.
 * - `NVFP4` later drops the weight observer override; 0.13.0 sets
 *   `"static_minmax"` for weights and inputs.
 * - `W4A8` later becomes the generic int4-group-128 + int8-token template,
 *   which is what 0.13.0 already defines.
 * - `MXFP8A16`/`MXFP8` and the `*_46` variants exist only later and are not offered.
 *
 * Generic `W{b}A{a}` (b ∈ 2..8, a ∈ {4, 8, 16}, b ≤ a) are int b-bit
 * group-128 symmetric weights, plus int a-bit dynamic per-token symmetric
 * inputs when a < 16; names with an explicit definition above take that one.
 *
 * @module
 */

import { parseQuantizationArgs } from "./args.ts";
import { QuantizationConfigError } from "./errors.ts";
import { makeQuantizationScheme } from "./scheme.ts";
import type { QuantizationScheme } from "./scheme.ts";

type RawArgs = Record<string, unknown>;
interface RawScheme {
  weights?: RawArgs;
  input_activations?: RawArgs;
}

const INT_CHANNEL_8: RawArgs = {
  num_bits: 8,
  type: "int",
  strategy: "channel",
  symmetric: true,
  dynamic: false,
};
const int4Group128 = (symmetric: boolean): RawArgs => ({
  num_bits: 4,
  type: "int",
  strategy: "group",
  group_size: 128,
  symmetric,
  dynamic: false,
});
const INT8_TOKEN_DYNAMIC: RawArgs = {
  num_bits: 8,
  type: "int",
  strategy: "token",
  symmetric: true,
  dynamic: true,
};
const nvfp4Args = (extra: RawArgs): RawArgs => ({
  num_bits: 4,
  type: "float",
  strategy: "tensor_group",
  symmetric: true,
  dynamic: false,
  group_size: 16,
  scale_dtype: "torch.float8_e4m3fn",
  zp_dtype: "torch.float8_e4m3fn",
  ...extra,
});
const mxfp4Args = (extra: RawArgs): RawArgs => ({
  num_bits: 4,
  type: "float",
  strategy: "group",
  symmetric: true,
  dynamic: false,
  group_size: 32,
  scale_dtype: "torch.uint8",
  zp_dtype: "torch.uint8",
  ...extra,
});

const INT8_W8A8: RawScheme = { weights: INT_CHANNEL_8, input_activations: INT8_TOKEN_DYNAMIC };

const PRESETS: Readonly<Record<string, RawScheme>> = {
  UNQUANTIZED: {},
  W8A16: { weights: INT_CHANNEL_8 },
  W4A16: { weights: int4Group128(true) },
  W4A16_ASYM: { weights: int4Group128(false) },
  W8A8: INT8_W8A8,
  INT8: INT8_W8A8,
  W4A8: { weights: int4Group128(true), input_activations: INT8_TOKEN_DYNAMIC },
  W4AFP8: {
    weights: int4Group128(true),
    input_activations: {
      num_bits: 8,
      type: "float",
      strategy: "token",
      symmetric: true,
      dynamic: true,
    },
  },
  FP8: {
    weights: { num_bits: 8, type: "float", strategy: "tensor", symmetric: true, dynamic: false },
    input_activations: {
      num_bits: 8,
      type: "float",
      strategy: "tensor",
      symmetric: true,
      dynamic: false,
    },
  },
  FP8_DYNAMIC: {
    weights: { num_bits: 8, type: "float", strategy: "channel", symmetric: true, dynamic: false },
    input_activations: {
      num_bits: 8,
      type: "float",
      strategy: "token",
      symmetric: true,
      dynamic: true,
    },
  },
  FP8_BLOCK: {
    weights: {
      num_bits: 8,
      type: "float",
      strategy: "block",
      symmetric: true,
      dynamic: false,
      block_structure: [128, 128],
    },
    input_activations: {
      num_bits: 8,
      type: "float",
      strategy: "group",
      symmetric: true,
      dynamic: true,
      group_size: 128,
    },
  },
  NVFP4A16: { weights: nvfp4Args({}) },
  NVFP4: {
    weights: nvfp4Args({ observer: "static_minmax" }),
    input_activations: nvfp4Args({ dynamic: "local", observer: "static_minmax" }),
  },
  MXFP4A16: { weights: mxfp4Args({}) },
  MXFP4: { weights: mxfp4Args({}), input_activations: mxfp4Args({ dynamic: true }) },
};

/** The explicitly defined preset names (upper case), in compressed-tensors' order. */
export const PRESET_NAMES: readonly string[] = Object.freeze(Object.keys(PRESETS));

const GENERIC = /^W([2-8])A(4|8|16)$/;

function rawPreset(name: string): RawScheme | null {
  const upper = name.toUpperCase();
  if (Object.hasOwn(PRESETS, upper)) return PRESETS[upper];
  const m = GENERIC.exec(upper);
  if (m === null) return null;
  const b = Number(m[1]);
  const a = Number(m[2]);
  if (b > a) return null;
  const weights = { ...int4Group128(true), num_bits: b };
  if (a === 16) return { weights };
  return { weights, input_activations: { ...INT8_TOKEN_DYNAMIC, num_bits: a } };
}

/**
 * Whether a name is a preset (case-insensitive), including generic `W{b}A{a}`.
 *
 * @param name e.g. `"w4a16"`
 * @returns true when {@link presetScheme} accepts it
 * @example
 * ```ts
 * import { isPresetName } from "./presets.ts";
 * isPresetName("fp8_dynamic"); // true
 * isPresetName("W3A16"); // true
 * isPresetName("W8A4"); // false
 * ```
 */
export function isPresetName(name: string): boolean {
  return rawPreset(name) !== null;
}

/** A preset name llmc does not know. */
export class UnknownPresetError extends QuantizationConfigError {}

/**
 * Expands a preset into a scheme on the given targets (format left null:
 * it is inferred when saving).
 *
 * @param name the preset, case-insensitive
 * @param targets the scheme's targets, e.g. `["Linear"]`
 * @returns the scheme
 * @throws {UnknownPresetError} listing the known presets when `name` is not one
 * @example
 * ```ts
 * import { presetScheme } from "./presets.ts";
 * const s = presetScheme("W4A16", ["Linear"]);
 * s.weights?.groupSize; // 128
 * ```
 */
export function presetScheme(name: string, targets: readonly string[]): QuantizationScheme {
  const raw = rawPreset(name);
  const where = `preset ${name.toUpperCase()}`;
  if (raw === null) {
    throw new UnknownPresetError(
      `unknown preset scheme ${JSON.stringify(name)}; known presets: ${PRESET_NAMES.join(", ")}, ` +
        `and W{b}A{a} for b in 2..8, a in 4/8/16, b <= a`,
    );
  }
  return makeQuantizationScheme(
    {
      targets,
      weights: raw.weights ? parseQuantizationArgs(raw.weights, `${where}.weights`) : null,
      inputActivations: raw.input_activations
        ? parseQuantizationArgs(raw.input_activations, `${where}.input_activations`)
        : null,
    },
    where,
  );
}
