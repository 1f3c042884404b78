/**
 * Checks that a Linear weight can be round-to-nearest quantized and
 * compressed with its scheme, so every shape or configuration problem is
 * reported before any output is written (upstream finds some of them only
 * halfway through saving).
 *
 * @module
 */

import type { QuantizationArgs } from "../../quant/args.ts";
import { checkBlockTiles } from "../../quant/calibration_view.ts";
import { checkGroupDivides } from "../../quant/column_groups.ts";
import { QuantizationConfigError, QuantizationShapeError } from "../../quant/errors.ts";

/**
 * Validates one Linear weight against its weight args.
 *
 * Raises for: a group size that does not divide in_features (llm-compressor
 * 0.9 only warns here and then crashes on that module), an odd in_features
 * with FP4 (two values per byte), a block that does not tile the weight,
 * asymmetric FP4, dynamic weights, strategies that do not apply to weights,
 * and bit widths no compressed-tensors format stores.
 *
 * @param name the module name, e.g. `model.layers.0.mlp.down_proj`
 * @param shape the weight shape `[out, in]`
 * @param args the weight args of the module's scheme
 * @throws {QuantizationShapeError} when the shape does not fit the args
 * @throws {QuantizationConfigError} when the args cannot quantize a weight at all
 * @example
 * ```ts
 * import { checkWeightQuantizable } from "./check_weight.ts";
 * import { presetScheme } from "../../quant/presets.ts";
 * const w4 = presetScheme("W4A16", ["Linear"]).weights!;
 * checkWeightQuantizable("model.layers.0.self_attn.q_proj", [256, 256], w4); // ok
 * // checkWeightQuantizable("model.layers.0.mlp.down_proj", [64, 172], w4) throws
 * ```
 */
export function checkWeightQuantizable(
  name: string,
  shape: readonly number[],
  args: QuantizationArgs,
): void {
  if (shape.length !== 2) {
    throw new QuantizationShapeError(
      `${name}: a Linear weight must be 2-D [out, in], got shape [${shape.join(", ")}]`,
    );
  }
  const [rows, cols] = shape;
  if (args.strategy === "token" || args.strategy === "attn_head") {
    throw new QuantizationConfigError(
      `${name}: strategy '${args.strategy}' applies to activations, not to weights`,
    );
  }
  if (args.dynamic !== false) {
    throw new QuantizationConfigError(
      `${name}: weights cannot be quantized dynamically (weights.dynamic is ${args.dynamic})`,
    );
  }
  if (args.type === "float") {
    if (args.numBits !== 4 && args.numBits !== 8) {
      throw new QuantizationConfigError(
        `${name}: float weights must be 4 (FP4) or 8 (FP8) bits, got ${args.numBits}`,
      );
    }
    if (args.numBits === 4 && !args.symmetric) {
      throw new QuantizationConfigError(
        `${name}: asymmetric FP4 is not supported (set weights.symmetric: true)`,
      );
    }
    if (args.numBits === 4 && cols % 2 !== 0) {
      throw new QuantizationShapeError(
        `${name}: FP4 packs two values per byte, so in_features must be even, got ${cols}; ` +
          `add the module to "ignore"`,
      );
    }
  } else if (args.numBits > 8) {
    throw new QuantizationConfigError(
      `${name}: int weights wider than 8 bits cannot be stored by any compressed-tensors ` +
        `format (got ${args.numBits})`,
    );
  }
  switch (args.strategy) {
    case "group":
    case "tensor_group":
      checkGroupDivides(cols, args.groupSize!, name);
      break;
    case "block":
      checkBlockTiles(rows, cols, args.blockStructure![0], args.blockStructure![1], name);
      break;
    default:
      break;
  }
}
