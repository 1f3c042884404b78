/**
 * Reading a block of rows of a 2-D checkpoint tensor, so the embedding table
 * and lm_head (often the largest tensors of a model) can be streamed in
 * pieces instead of held whole in host memory.
 *
 * @module
 */

import { type DType, DTYPE_BYTES } from "../io/dtype.ts";
import { bytesToF32 } from "../io/tensor_bytes.ts";
import { DecoderModelError } from "./model_error.ts";
import type { WeightSource } from "./weight_source.ts";

/** Where a tensor's bytes lie, as `HfModel.info` reports it. */
interface TensorLocation {
  dtype: DType;
  shape: number[];
  byteOffset: number;
  byteLength: number;
  file: string;
}

/** A source that can say where a tensor's bytes are (HfModel can). */
interface LocatingSource extends WeightSource {
  info(name: string): TensorLocation;
}

function canLocate(source: WeightSource): source is LocatingSource {
  return typeof (source as Partial<LocatingSource>).info === "function";
}

/**
 * Rows `row0 … row0 + rows − 1` of a [rowsTotal, cols] tensor as float32.
 * From a checkpoint that can locate tensors (`HfModel`) only those bytes are
 * read; any other source is read whole and sliced.
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
  if (!canLocate(source)) {
    const all = await source.readF32(name);
    if (all.length % cols !== 0 || (row0 + rows) * cols > all.length) {
      throw new DecoderModelError(
        `${name}: ${all.length} values hold no rows ${row0}..${row0 + rows - 1} of ${cols}`,
      );
    }
    return all.slice(row0 * cols, (row0 + rows) * cols);
  }
  const t = source.info(name);
  const totalRows = t.shape[0];
  const rowLength = t.shape.slice(1).reduce((a, b) => a * b, 1);
  if (t.shape.length !== 2 || rowLength !== cols || row0 < 0 || row0 + rows > totalRows) {
    throw new DecoderModelError(
      `${name}: expected [*, ${cols}] holding rows ${row0}..${row0 + rows - 1}, got [${t.shape}]`,
    );
  }
  const rowBytes = cols * DTYPE_BYTES[t.dtype];
  const bytes = new Uint8Array(rows * rowBytes);
  using file = await Deno.open(t.file, { read: true });
  await file.seek(t.byteOffset + row0 * rowBytes, Deno.SeekMode.Start);
  for (let at = 0; at < bytes.length;) {
    const n = await file.read(bytes.subarray(at));
    if (n === null) {
      throw new DecoderModelError(`${t.file}: ended inside tensor '${name}'`);
    }
    at += n;
  }
  return t.dtype === "F32" ? new Float32Array(bytes.buffer) : bytesToF32(t.dtype, bytes);
}
