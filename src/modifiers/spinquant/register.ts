/**
 * SpinQuantModifier as a whole-model transform (see `../model_transforms.ts`):
 * fused R1/R2 rotations written into a float checkpoint that the next
 * modifier (RTN or GPTQ) quantizes.
 *
 * @module
 */

import type { ModelTransformRegistration } from "../model_transforms.ts";
import { writeRotatedCheckpoint } from "./rotated_checkpoint.ts";
import {
  planSpinQuant,
  type SpinQuantPlan,
  spinQuantRotations,
  spinQuantTransformConfig,
} from "./spinquant_plan.ts";

/**
 * The registration of SpinQuantModifier.
 *
 * @example
 * ```ts ignore
 * const plan = spinQuantModifier.plan(hf.config, spec);
 * const rotated = await spinQuantModifier.apply(hf, plan, tmpDir);
 * ```
 */
export const spinQuantModifier: ModelTransformRegistration<SpinQuantPlan> = {
  types: ["SpinQuantModifier"],
  plan: planSpinQuant,
  apply: (source, plan, dir) =>
    writeRotatedCheckpoint(source, spinQuantRotations(source.config, plan), dir),
  transformGroups: (config, plan) =>
    spinQuantTransformConfig(config, plan).config_groups as { [group: string]: never },
};
