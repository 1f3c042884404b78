/**
 * What both safetensors writers share: checking a tensor before it is
 * written, and building the padded header bytes.
 *
 * @module
 */

import { DTYPE_BYTES, DTYPES, isDType } from "./dtype.ts";
import type { DType } from "./dtype.ts";
import { SafetensorsError } from "./safetensors_error.ts";

/** A tensor's place in a file being written: offsets relative to the data section. */
export interface LayoutEntry {
  name: string;
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}

/**
 * Checks that a tensor can be written: a usable name, a known dtype, a shape
 * of non-negative integers and exactly numel × dtype-size bytes.
 *
 * @param file the output path, for messages
 * @param name the tensor name
 * @param dtype the dtype
 * @param shape the shape
 * @param byteLength the length of its data
 * @throws {SafetensorsError} naming the tensor and what was expected
 * @example
 * ```ts
 * import { checkTensorForWrite } from "./_safetensors_layout.ts";
 * checkTensorForWrite("out.safetensors", "w", "F32", [2, 3], 24);
 * ```
 */
export function checkTensorForWrite(
  file: string,
  name: string,
  dtype: unknown,
  shape: unknown,
  byteLength: number,
): void {
  const fail = (msg: string): never => {
    throw new SafetensorsError(file, `tensor '${name}': ${msg}`);
  };
  if (typeof name !== "string" || name === "" || name === "__metadata__") {
    fail("a tensor needs a non-empty name other than '__metadata__'");
  }
  if (!isDType(dtype)) fail(`dtype ${JSON.stringify(dtype)} is not one of ${DTYPES.join(", ")}`);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    fail(`shape ${JSON.stringify(shape)} is not an array of non-negative integers`);
  }
  const numel = (shape as number[]).reduce((a, b) => a * b, 1);
  const want = numel * DTYPE_BYTES[dtype as DType];
  if (want !== byteLength) {
    fail(`shape ${JSON.stringify(shape)} of ${dtype} needs ${want} bytes, got ${byteLength}`);
  }
}

/**
 * Builds the 8-byte length plus JSON header, padded with spaces so the data
 * section starts 8-byte aligned (as the reference writer does).
 *
 * @param entries the tensors, in data order
 * @param metadata the `__metadata__` strings
 * @returns the bytes that precede the data section
 * @example
 * ```ts
 * import { headerBytes } from "./_safetensors_layout.ts";
 * const h = headerBytes([{ name: "w", dtype: "U8", shape: [1], begin: 0, end: 1 }], {});
 * h.length % 8; // 0
 * ```
 */
export function headerBytes(entries: LayoutEntry[], metadata: Record<string, string>): Uint8Array {
  // Built as text so key order is exactly ours: metadata first, then data order.
  const parts: string[] = [];
  if (Object.keys(metadata).length > 0) {
    parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  }
  for (const e of entries) {
    parts.push(
      `${JSON.stringify(e.name)}:{"dtype":${JSON.stringify(e.dtype)},"shape":${
        JSON.stringify(e.shape)
      },"data_offsets":[${e.begin},${e.end}]}`,
    );
  }
  const json = new TextEncoder().encode(`{${parts.join(",")}}`);
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}
