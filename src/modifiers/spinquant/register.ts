/**
 * SpinQuantModifier as a whole-model transform (see `../model_transforms.ts`):
 * fused R1/R2 rotations (and the fused halves plus stored matrices of the
 * online R3/R4) written into a float checkpoint that the next modifier (RTN
 * or GPTQ) quantizes, while llmc's forward applies R3/R4 online.
 *
 * @module
 */

import type { ModelTransformRegistration } from "../model_transforms.ts";
import { OnlineTransformSource } from "../../transform/online_source.ts";
import { RotatedWeightSource } from "../../transform/rotated_source.ts";
import { writeTransformedCheckpoint } from "./rotated_checkpoint.ts";
import {
  planSpinQuant,
  SPINQUANT_SEEDS,
  spinQuantOnlineGroups,
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
 * const rotated = await spinQuantModifier.apply(hf, plan, tmpDir, engine);
 * ```
 */
export const spinQuantModifier: ModelTransformRegistration<SpinQuantPlan> = {
  types: ["SpinQuantModifier"],
  plan: planSpinQuant,
  apply: (source, plan, dir, ops) => {
    const rotated = new RotatedWeightSource(source, spinQuantRotations(source.config, plan), ops);
    const online = spinQuantOnlineGroups(source.config, plan);
    if (Object.keys(online).length === 0) return writeTransformedCheckpoint(source, rotated, dir);
    // R3/R4: their fused halves on top of R1/R2 (they commute), their matrices added.
    const transformed = new OnlineTransformSource(rotated, online, SPINQUANT_SEEDS, ops);
    return writeTransformedCheckpoint(source, transformed, dir, online);
  },
  transformGroups: (config, plan) =>
    spinQuantTransformConfig(config, plan).config_groups as { [group: string]: never },
};
