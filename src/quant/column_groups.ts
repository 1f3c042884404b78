/**
 * Which quantization group each weight column belongs to, with or without a
 * `g_idx` (GPTQ activation ordering).
 *
 * compressed-tensors gathers columns by `argsort(g_idx)` into contiguous
 * chunks of `group_size`, quantizes chunk k with scale column k, and scatters
 * back; a g_idx containing −1 means "not initialised" and plain column order.
 * The mapping below reproduces that: column c lands in chunk
 * floor(position of c in argsort(g_idx) / group_size).
 *
 * @module
 */

import { QuantizationShapeError } from "./errors.ts";

/**
 * Checks that a group size tiles the columns, with llm-compressor's advice.
 *
 * @param cols the in_features
 * @param groupSize the group size
 * @param where the module name, for the message
 * @throws {QuantizationShapeError} when `cols % groupSize !== 0`
 * @example
 * ```ts
 * import { checkGroupDivides } from "./column_groups.ts";
 * checkGroupDivides(128, 32, "model.layers.0.self_attn.q_proj"); // ok
 * ```
 */
export function checkGroupDivides(cols: number, groupSize: number, where: string): void {
  if (cols % groupSize !== 0) {
    throw new QuantizationShapeError(
      `${where}: ${cols} columns (in_features) are not divisible by group_size ${groupSize}; ` +
        `llm-compressor 0.9 warns and then crashes on such a module, and vLLM cannot serve it. ` +
        `Add the module to "ignore" (e.g. "re:.*${lastName(where)}$") or choose a group size ` +
        `that divides ${cols}.`,
    );
  }
}

function lastName(where: string): string {
  const parts = where.split(".");
  return parts[parts.length - 1] || where;
}

/**
 * A stable argsort of integer keys.
 *
 * @param keys the keys
 * @returns indices ordering the keys ascending (ties keep index order)
 * @example
 * ```ts
 * import { argsortStable } from "./column_groups.ts";
 * argsortStable(new Int32Array([1, 0, 1, 0])); // Int32Array [1, 3, 0, 2]
 * ```
 */
export function argsortStable(keys: ArrayLike<number>): Int32Array {
  const idx = Array.from({ length: keys.length }, (_, i) => i);
  idx.sort((a, b) => keys[a] - keys[b] || a - b);
  return Int32Array.from(idx);
}

/**
 * The group (scale column) of every weight column.
 *
 * @param cols number of columns
 * @param groupSize the group size (must divide `cols`)
 * @param gIdx optional group id per column (int32 `[cols]`); ignored when it contains −1
 * @param where the module name, for error messages
 * @returns group index per column
 * @throws {QuantizationShapeError} when the group size does not divide `cols` or g_idx has the wrong length
 * @example
 * ```ts
 * import { columnGroups } from "./column_groups.ts";
 * columnGroups(4, 2); // Int32Array [0, 0, 1, 1]
 * columnGroups(4, 2, new Int32Array([1, 0, 1, 0])); // Int32Array [1, 0, 1, 0]
 * ```
 */
export function columnGroups(
  cols: number,
  groupSize: number,
  gIdx?: Int32Array | null,
  where = "weight",
): Int32Array {
  checkGroupDivides(cols, groupSize, where);
  const out = new Int32Array(cols);
  if (gIdx === undefined || gIdx === null || gIdx.includes(-1)) {
    for (let c = 0; c < cols; c++) out[c] = Math.floor(c / groupSize);
    return out;
  }
  if (gIdx.length !== cols) {
    throw new QuantizationShapeError(
      `${where}: g_idx has ${gIdx.length} entries but the weight has ${cols} columns`,
    );
  }
  const perm = argsortStable(gIdx);
  for (let pos = 0; pos < cols; pos++) out[perm[pos]] = Math.floor(pos / groupSize);
  return out;
}
