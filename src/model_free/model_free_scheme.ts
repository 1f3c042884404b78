/**
 * The scheme model-free PTQ applies (§3.7): a preset or a scheme with
 * weight args, activations absent or fully dynamic (nothing can be
 * calibrated without a model), targets forced to `["Linear"]`, and the
 * averaging observers replaced by ones that need a single observation.
 *
 * @module
 */

import { presetScheme } from "../quant/presets.ts";
import type { QuantizationScheme } from "../quant/scheme.ts";
import { makeQuantizationScheme } from "../quant/scheme.ts";
import { ModelFreeError } from "./errors.ts";

/** A validated model-free scheme and the name of its config group. */
export interface ModelFreeScheme {
  /** The config group name: the preset's name, or `config_group_0`. */
  readonly groupName: string;
  /** The scheme, targets `["Linear"]`. */
  readonly scheme: QuantizationScheme;
}

// compressed-tensors ≥0.13's model-free path swaps the moving-average
// observers for static ones; 0.9's registry has no "static_mse", so the
// single-observation MSE search stands in for it (identical on one weight).
const OBSERVER_SWAP: Readonly<Record<string, string>> = {
  minmax: "static_minmax",
  mse: "memoryless_mse",
};

/**
 * Validates and normalises the scheme of a model-free run.
 *
 * @param scheme a preset name (case-insensitive) or a scheme
 * @param warn receives a note when an observer is swapped
 * @returns the scheme and its config group name
 * @throws {ModelFreeError} without weight args, or with activation args that need calibration
 * @throws {UnknownPresetError} (from quant) for an unknown preset
 * @example
 * ```ts
 * import { modelFreeScheme } from "./model_free_scheme.ts";
 * const s = modelFreeScheme("fp8_dynamic", () => {});
 * s.groupName; // "FP8_DYNAMIC"
 * s.scheme.weights?.observer; // "static_minmax"
 * ```
 */
export function modelFreeScheme(
  scheme: string | QuantizationScheme,
  warn: (message: string) => void = (m) => console.warn(m),
): ModelFreeScheme {
  const isPreset = typeof scheme === "string";
  const base = isPreset ? presetScheme(scheme, ["Linear"]) : scheme;
  const groupName = isPreset ? scheme.toUpperCase() : "config_group_0";
  if (base.weights === null) {
    throw new ModelFreeError(
      `scheme ${groupName}: model-free PTQ quantizes weights; the scheme has no weight args`,
    );
  }
  for (
    const [field, args] of [
      ["input_activations", base.inputActivations],
      ["output_activations", base.outputActivations],
    ] as const
  ) {
    if (args !== null && args.dynamic !== true) {
      throw new ModelFreeError(
        `scheme ${groupName}: ${field} are ${
          args.dynamic === "local" ? "locally dynamic with a calibrated global scale" : "static"
        }; ` +
          `model-free PTQ cannot calibrate activations (use oneshot with calibration data)`,
      );
    }
  }
  let weights = base.weights;
  const swap = weights.observer === null ? undefined : OBSERVER_SWAP[weights.observer];
  if (swap !== undefined) {
    warn(`scheme ${groupName}: weight observer ${weights.observer} replaced by ${swap}`);
    weights = Object.freeze({ ...weights, observer: swap });
  }
  const targets = base.targets.includes("Linear") ? base.targets : [...base.targets, "Linear"];
  return {
    groupName,
    scheme: makeQuantizationScheme(
      {
        targets: isPreset ? ["Linear"] : targets,
        weights,
        inputActivations: base.inputActivations,
        outputActivations: base.outputActivations,
        format: base.format,
      },
      groupName,
    ),
  };
}
