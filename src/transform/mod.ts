/**
 * Rotation transforms: the Hadamard library, transform matrices, their
 * block-diagonal application, SpinQuant's fused rotations as a weight
 * source, and online transforms (their plan from a transform_config, and
 * their fused halves plus stored matrices as a weight source).
 *
 * @example
 * ```ts
 * import { buildTransform, normalizedMatrix } from "./mod.ts";
 * const r = normalizedMatrix(buildTransform("hadamard", 64, 0)); // orthogonal 64 × 64
 * ```
 *
 * @module
 */

export { TransformError } from "./errors.ts";
export {
  type HadamardFactors,
  hadamardFactors,
  hadamardMatrix,
  isPowerOfTwo,
  sylvester,
} from "./hadamard.ts";
export {
  blockTransformOf,
  buildTransform,
  checkPermutation,
  FactoredBlockTransform,
  normalizedMatrix,
  permuted,
  permutedTransform,
  randomOrthogonal,
  randomPermutation,
  TRANSFORM_TYPES,
  type TransformMatrix,
  type TransformType,
} from "./transform_matrix.ts";
export {
  applyLeft,
  applyRight,
  type BlockTransform,
  fastWalshHadamard,
  multiplyLeft,
  multiplyRight,
} from "./block_apply.ts";
export { type FusedRotations, RotatedWeightSource } from "./rotated_source.ts";
export {
  type FusedLocation,
  fusedTransformPlan,
  type OnlineApplication,
  type OnlineLocation,
  onlineTransformPlan,
  onlineTransforms,
  type TransformApplication,
} from "./online_transforms.ts";
export { type ExtraTensor, OnlineTransformSource, withTransformGroups } from "./online_source.ts";
