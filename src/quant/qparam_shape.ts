/**
 * The shapes scales and zero points are stored with (§1.5).
 *
 * @module
 */

import type { QuantizationArgs } from "./args.ts";
import { checkBlockTiles } from "./calibration_view.ts";
import { checkGroupDivides } from "./column_groups.ts";
import { QuantizationShapeError } from "./errors.ts";

/**
 * The scale / zero-point shape of a Linear weight `[out, in]`: tensor `[1]`,
 * channel `[out, 1]`, group and tensor_group `[out, in/g]`, block
 * `[out/bh, in/bw]` (exact division required).
 *
 * @param shape `[out, in]`
 * @param args weight args
 * @param where the module name, for errors
 * @returns the qparam shape
 * @throws {QuantizationShapeError} for non-dividing groups/blocks or activation-only strategies
 * @example
 * ```ts
 * import { weightQParamShape } from "./qparam_shape.ts";
 * import { parseQuantizationArgs } from "./args.ts";
 * weightQParamShape([64, 256], parseQuantizationArgs({ group_size: 128 }, "w")); // [64, 2]
 * ```
 */
export function weightQParamShape(
  shape: readonly [number, number],
  args: QuantizationArgs,
  where = "weight",
): number[] {
  const [rows, cols] = shape;
  switch (args.strategy) {
    case "tensor":
      return [1];
    case "channel":
      return [rows, 1];
    case "group":
    case "tensor_group":
      checkGroupDivides(cols, args.groupSize!, where);
      return [rows, cols / args.groupSize!];
    case "block": {
      const [bh, bw] = args.blockStructure!;
      checkBlockTiles(rows, cols, bh, bw, where);
      return [rows / bh, cols / bw];
    }
    default:
      throw new QuantizationShapeError(
        `${where}: ${args.strategy} quantization cannot be applied to weights`,
      );
  }
}
