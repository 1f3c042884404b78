/**
 * Rules that tie a modifier's arguments together (pydantic model validators
 * upstream, or checks upstream only makes when the modifier starts). llmc runs
 * them when the recipe is read, so a bad recipe fails before a model loads.
 *
 * @module
 */

import { RecipeError } from "./errors.ts";
import { isQuantizationModifier, type ModifierSpec } from "./modifiers.ts";
import { resolveQuantizationConfig } from "./resolve.ts";

/**
 * Checks the cross-argument rules of one modifier spec.
 *
 * - QuantizationModifier / GPTQModifier: the whole §3.3 resolution must
 *   succeed (scheme xor config_groups, observer arguments, GPTQ actorder,
 *   something to quantize for QuantizationModifier).
 * - SparseGPT / Wanda: `sparsity` must be set; `sparsity_profile: owl`,
 *   `owl_m` and `owl_lmbda` come all together or not at all.
 * - AWQ: as the quantization modifiers; duo_scaling only with weights finer than a tensor.
 * - AutoRound (not yet supported): scheme xor config_groups.
 * - GPTQ / SparseGPT: `block_size` and SparseGPT's N:M `mask_structure`
 *   within what both compute engines run: multiples of 8, SparseGPT's at
 *   most 256, an N:M window with M in 1, 2, 4, 8, 16, 24, 32 dividing it.
 *
 * @param spec the spec to check
 * @param where its path, for messages
 * @throws {RecipeError} naming the path and the rule
 * @example
 * ```ts
 * import { validateModifier } from "./validate.ts";
 * import { SparseGPTModifier } from "./constructors.ts";
 * validateModifier(SparseGPTModifier({ sparsity: 0.5 }), "default_stage.default_modifiers.SparseGPTModifier");
 * ```
 */
export function validateModifier(spec: ModifierSpec, where: string): void {
  if (isQuantizationModifier(spec)) {
    const resolved = resolveQuantizationConfig(spec, where);
    if (spec.type === "AWQModifier" && spec.duoScaling !== false) {
      for (const [name, g] of Object.entries(resolved.configGroups)) {
        if (g.weights?.strategy === "tensor") {
          throw new RecipeError(
            `${where}.duo_scaling: ${name} quantizes weights per tensor; duo_scaling needs ` +
              `per-channel (or finer) weights, set duo_scaling: false`,
          );
        }
      }
    }
    if (spec.type === "GPTQModifier") checkSecondOrderBlocks(spec.blockSize, null, where);
    return;
  }
  switch (spec.type) {
    case "SparseGPTModifier":
    case "WandaPruningModifier": {
      if (spec.type === "SparseGPTModifier") {
        checkSecondOrderBlocks(spec.blockSize, spec.maskStructure, where);
      }
      if (spec.sparsity === null) {
        throw new RecipeError(`${where}.sparsity: required; give the fraction of weights to prune`);
      }
      const owl = [spec.sparsityProfile === "owl", spec.owlM !== null, spec.owlLmbda !== null];
      if (owl.some((x) => x) && !owl.every((x) => x)) {
        throw new RecipeError(
          `${where}: give all of sparsity_profile: owl, owl_m and owl_lmbda, or none of them`,
        );
      }
      return;
    }
    case "AutoRoundModifier": {
      const a = spec.args;
      if (
        a.scheme !== undefined && a.scheme !== null && a.config_groups !== undefined &&
        a.config_groups !== null
      ) {
        throw new RecipeError(`${where}: give either scheme or config_groups, not both`);
      }
      return;
    }
    default:
      return;
  }
}

/** The N:M windows' M the WebGPU column loop can hold: inside its 8 register columns, or whole multiples of them. */
const WINDOW_SIZES = [1, 2, 4, 8, 16, 24, 32];

/**
 * GPTQ's and SparseGPT's block settings that both compute engines run. The
 * WebGPU column loop (checkBlockSize in src/engine/webgpu_second_order.ts) works on 8 columns
 * per step and holds at most 256 pruning columns; the CPU engine's float32
 * loop would take more, but a recipe must not run with `--engine cpu` and be
 * refused with `--engine webgpu`, so the recipe is refused on both.
 */
function checkSecondOrderBlocks(
  blockSize: number,
  maskStructure: string | null,
  where: string,
): void {
  if (blockSize % 8 !== 0) {
    throw new RecipeError(
      `${where}.block_size: must be a multiple of 8 (the WebGPU engine's column loop ` +
        `steps 8 columns at a time), got ${blockSize}`,
    );
  }
  if (maskStructure === null) return;
  if (blockSize > 256) {
    throw new RecipeError(
      `${where}.block_size: at most 256 for SparseGPT (the WebGPU engine's pruning loop), got ${blockSize}`,
    );
  }
  const [n, m] = maskStructure.split(":").map(Number);
  if (n === 0) return;
  if (!WINDOW_SIZES.includes(m) || blockSize % m !== 0) {
    throw new RecipeError(
      `${where}.mask_structure: "${maskStructure}" needs M one of ${WINDOW_SIZES.join(", ")} ` +
        `dividing block_size ${blockSize}`,
    );
  }
}
