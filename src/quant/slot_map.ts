/**
 * Which scale / zero point each element of a 2-D tensor uses: slot
 * `rowPart[r] + colPart[c]`, one map for every strategy (tensor, channel,
 * token, group and tensor_group with optional g_idx, block). The TypeScript
 * reference and the GPU kernels both index qparams through it.
 *
 * @module
 */

import type { QuantizationArgs } from "./args.ts";
import { checkBlockTiles } from "./calibration_view.ts";
import { columnGroups } from "./column_groups.ts";
import { QuantizationShapeError } from "./errors.ts";

/** Element (r, c) uses qparam slot `rowPart[r] + colPart[c]`. */
export interface QParamSlotMap {
  /** Slot offset of each row. */
  readonly rowPart: Int32Array;
  /** Slot offset of each column. */
  readonly colPart: Int32Array;
  /** Number of slots (scales) the strategy needs. */
  readonly slots: number;
}

/**
 * The qparam slot map of a `[rows, cols]` tensor.
 *
 * @param shape `[rows, cols]`
 * @param args quantization args
 * @param gIdx group id per column (group strategies), if any
 * @param where the module name, for errors
 * @returns the map
 * @throws {QuantizationShapeError} for non-dividing groups/blocks or attn_head
 * @example
 * ```ts
 * import { qparamSlotMap } from "./slot_map.ts";
 * import { parseQuantizationArgs } from "./args.ts";
 * const m = qparamSlotMap([2, 4], parseQuantizationArgs({ group_size: 2 }, "w"));
 * [m.rowPart, m.colPart, m.slots]; // [[0, 2], [0, 0, 1, 1], 4]
 * ```
 */
export function qparamSlotMap(
  shape: readonly [number, number],
  args: QuantizationArgs,
  gIdx?: Int32Array | null,
  where = "weight",
): QParamSlotMap {
  const [rows, cols] = shape;
  const rowPart = new Int32Array(rows);
  switch (args.strategy) {
    case "tensor":
      return { rowPart, colPart: new Int32Array(cols), slots: 1 };
    case "channel":
    case "token":
      for (let r = 0; r < rows; r++) rowPart[r] = r;
      return { rowPart, colPart: new Int32Array(cols), slots: rows };
    case "group":
    case "tensor_group": {
      const colPart = columnGroups(cols, args.groupSize!, gIdx, where);
      const groups = cols / args.groupSize!;
      for (let r = 0; r < rows; r++) rowPart[r] = r * groups;
      return { rowPart, colPart, slots: rows * groups };
    }
    case "block": {
      const [bh, bw] = args.blockStructure!;
      checkBlockTiles(rows, cols, bh, bw, where);
      const bc = cols / bw;
      for (let r = 0; r < rows; r++) rowPart[r] = Math.floor(r / bh) * bc;
      const colPart = new Int32Array(cols);
      for (let c = 0; c < cols; c++) colPart[c] = Math.floor(c / bw);
      return { rowPart, colPart, slots: (rows / bh) * bc };
    }
    case "attn_head":
      throw new QuantizationShapeError(
        `${where}: attn_head quantization needs [batch, heads, seq, head_dim] states, not a 2-D tensor`,
      );
  }
}
