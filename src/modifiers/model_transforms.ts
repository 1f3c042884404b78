/**
 * Modifiers that transform the whole model before the layer pipelines run
 * (SpinQuant's fused rotations touch embed_tokens, the final norm and
 * lm_head, which live outside decoder layers). Each writes a transformed
 * float checkpoint that the rest of the recipe then reads, and contributes a
 * `transform_config`. One registration per line, like `builtin.ts`.
 *
 * @module
 */

import type { BlockTransformOps } from "../engine/engine.ts";
import type { HfModel } from "../io/hf_model.ts";
import type { ModelConfig } from "../io/model_config.ts";
import type { JsonValue } from "../quant/python_json.ts";
import type { ModifierSpec } from "../recipe/modifiers.ts";
import { quipModifier } from "./quip/register.ts";
import { spinQuantModifier } from "./spinquant/register.ts";

/** How oneshot plans and applies one whole-model transform class. */
export interface ModelTransformRegistration<P = unknown> {
  /** The class names it runs. */
  readonly types: readonly string[];
  /**
   * Validates the recipe entry against the model, reading no weights.
   *
   * @param config the model config
   * @param spec the recipe entry
   * @returns the plan
   */
  plan(config: ModelConfig, spec: ModifierSpec): P;
  /**
   * Writes the transformed model into `dir` and opens it.
   *
   * @param source the model
   * @param plan the plan
   * @param dir an empty folder
   * @param ops the run's engine, whose float64 `blockTransform` computes
   *   every fused product (one tensor at a time)
   * @returns the transformed model
   */
  apply(source: HfModel, plan: P, dir: string, ops: BlockTransformOps): Promise<HfModel>;
  /**
   * The plan's `transform_config.config_groups` entries.
   *
   * @param config the model config
   * @param plan the plan
   * @returns group name → TransformScheme
   */
  transformGroups(config: ModelConfig, plan: P): { [group: string]: JsonValue };
}

/**
 * The whole-model transforms by class name.
 *
 * @example
 * ```ts ignore
 * import { MODEL_TRANSFORMS } from "./model_transforms.ts";
 * MODEL_TRANSFORMS.has("SpinQuantModifier"); // true
 * ```
 */
export const MODEL_TRANSFORMS: ReadonlyMap<string, ModelTransformRegistration> = new Map(
  ([spinQuantModifier, quipModifier] as ModelTransformRegistration[]).flatMap((r) =>
    r.types.map((t) => [t, r] as const)
  ),
);
