/**
 * Reading a block of rows of a 2-D checkpoint tensor, so the embedding table
 * and lm_head (often the largest tensors of a model) can be streamed in
 * pieces instead of held whole in host memory.
 *
 * @module
 */

import { DecoderModelError } from "./model_error.ts";
import type { WeightSource } from "./weight_source.ts";

/** A source that reads row blocks itself and can tell a tensor's shape (HfModel can). */
interface RowSource extends WeightSource {
  info(name: string): { shape: number[] };
  readRowsF32(name: string, row0: number, rows: number): Promise<Float32Array>;
}

function readsRows(source: WeightSource): source is RowSource {
  const s = source as Partial<RowSource>;
  return typeof s.info === "function" && typeof s.readRowsF32 === "function";
}

/**
 * Rows `row0 … row0 + rows − 1` of a [rowsTotal, cols] tensor as float32.
 * From a source that reads row blocks (`HfModel.readRowsF32`) only those
 * bytes are read; any other source is read whole and sliced.
 *
 * @param source the checkpoint
 * @param name the tensor, e.g. `model.embed_tokens.weight`
 * @param cols the row length
 * @param row0 the first row
 * @param rows how many rows
 * @returns rows · cols values
 * @throws {DecoderModelError} when the tensor is not [*, cols] or the rows are out of range
 * @example
 * ```ts ignore
 * import { readMatrixRows } from "./matrix_rows.ts";
 * const block = await readMatrixRows(model, "lm_head.weight", 4096, 0, 1024);
 * ```
 */
export async function readMatrixRows(
  source: WeightSource,
  name: string,
  cols: number,
  row0: number,
  rows: number,
): Promise<Float32Array> {
  if (!readsRows(source)) {
    const all = await source.readF32(name);
    if (all.length % cols !== 0 || (row0 + rows) * cols > all.length) {
      throw new DecoderModelError(
        `${name}: ${all.length} values hold no rows ${row0}..${row0 + rows - 1} of ${cols}`,
      );
    }
    return all.slice(row0 * cols, (row0 + rows) * cols);
  }
  const { shape } = source.info(name);
  if (shape.length !== 2 || shape[1] !== cols || row0 < 0 || row0 + rows > shape[0]) {
    throw new DecoderModelError(
      `${name}: expected [*, ${cols}] holding rows ${row0}..${row0 + rows - 1}, got [${shape}]`,
    );
  }
  return await source.readRowsF32(name, row0, rows);
}
