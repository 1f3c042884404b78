/**
 * Random access to the tensors of one safetensors file, reading only the
 * bytes asked for.
 *
 * @module
 */

import { type DType, DTYPE_BYTES } from "./dtype.ts";
import { parseSafetensorsHeader, readHeaderLength } from "./safetensors_header.ts";
import type { TensorInfo } from "./safetensors_header.ts";
import { SafetensorsError } from "./safetensors_error.ts";
import { bytesToF32, bytesToTyped } from "./tensor_bytes.ts";
import type { TypedTensor } from "./tensor_bytes.ts";

export type { TensorInfo } from "./safetensors_header.ts";
export { SafetensorsError } from "./safetensors_error.ts";
export type { TypedTensor } from "./tensor_bytes.ts";

/**
 * An open safetensors file whose header has been validated. Reads seek to
 * one tensor's bytes; concurrent reads are serialised on the one handle.
 *
 * @example
 * ```ts
 * import { SafetensorsFile } from "./safetensors_read.ts";
 * import { writeSafetensors } from "./safetensors_write.ts";
 * const dir = await Deno.makeTempDir();
 * const bf16One = new Uint8Array([0x80, 0x3f]);
 * await writeSafetensors(`${dir}/m.safetensors`, [
 *   { name: "model.norm.weight", dtype: "BF16", shape: [1], data: bf16One },
 * ]);
 * const f = await SafetensorsFile.open(`${dir}/m.safetensors`);
 * try {
 *   const w = await f.readF32("model.norm.weight"); // Float32Array [1]
 * } finally {
 *   f.close();
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export class SafetensorsFile {
  /** The path the file was opened from. */
  readonly path: string;
  /** The header's `__metadata__` (empty when absent). */
  readonly metadata: Record<string, string>;
  readonly #file: Deno.FsFile;
  readonly #tensors: Map<string, TensorInfo>;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(
    path: string,
    file: Deno.FsFile,
    tensors: TensorInfo[],
    metadata: Record<string, string>,
  ) {
    this.path = path;
    this.#file = file;
    this.metadata = metadata;
    this.#tensors = new Map(tensors.map((t) => [t.name, t]));
  }

  /**
   * Opens a file and validates its header; keeps the handle open for reads.
   *
   * @param path the file's path
   * @returns the open file
   * @throws {SafetensorsError} when the file is missing, unreadable or its header inconsistent
   * @example
   * ```ts ignore
   * import { SafetensorsFile } from "./safetensors_read.ts";
   * const f = await SafetensorsFile.open("model.safetensors");
   * f.names();
   * f.close();
   * ```
   */
  static async open(path: string): Promise<SafetensorsFile> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch (cause) {
      throw new SafetensorsError(path, `cannot open: ${(cause as Error).message}`, { cause });
    }
    try {
      const size = (await file.stat()).size;
      const prefix = new Uint8Array(Math.min(8, size));
      await readExactly(file, prefix, 0, path);
      const n = readHeaderLength(prefix, size, path);
      // n has been checked against the file size: a lying length cannot make
      // this allocation larger than the file.
      const headerBytes = new Uint8Array(n);
      await readExactly(file, headerBytes, 8, path);
      const header = parseSafetensorsHeader(headerBytes, size, path);
      return new SafetensorsFile(path, file, header.tensors, header.metadata);
    } catch (e) {
      file.close();
      if (e instanceof SafetensorsError) throw e;
      throw new SafetensorsError(path, `cannot read: ${(e as Error).message}`, { cause: e });
    }
  }

  /**
   * The tensor names, in the order of their data in the file.
   *
   * @returns the names
   * @example
   * ```ts ignore
   * const names = f.names(); // ["model.embed_tokens.weight", ...]
   * ```
   */
  names(): string[] {
    return [...this.#tensors.keys()];
  }

  /**
   * Whether the file holds a tensor.
   *
   * @param name the tensor name
   * @returns true when present
   * @example
   * ```ts ignore
   * f.has("lm_head.weight");
   * ```
   */
  has(name: string): boolean {
    return this.#tensors.has(name);
  }

  /**
   * A tensor's dtype, shape and location.
   *
   * @param name the tensor name
   * @returns a copy of its info (byteOffset is absolute in the file)
   * @throws {SafetensorsError} when the file has no such tensor
   * @example
   * ```ts ignore
   * f.info("model.norm.weight").shape; // [64]
   * ```
   */
  info(name: string): TensorInfo {
    const t = this.#tensors.get(name);
    if (t === undefined) {
      throw new SafetensorsError(this.path, `no tensor named '${name}'`);
    }
    return { ...t, shape: [...t.shape] };
  }

  /**
   * Reads one tensor's raw little-endian bytes.
   *
   * @param name the tensor name
   * @returns a new buffer of exactly `info(name).byteLength` bytes
   * @throws {SafetensorsError} when the tensor is missing, the file closed or shortened
   * @example
   * ```ts ignore
   * const bytes = await f.readRaw("model.norm.weight");
   * ```
   */
  async readRaw(name: string): Promise<Uint8Array> {
    const t = this.info(name);
    return await this.#read(name, t.byteOffset, t.byteLength);
  }

  /**
   * Reads a tensor as float32 values: any float dtype widened, integers as
   * numbers, BOOL as 0/1.
   *
   * @param name the tensor name
   * @returns a new Float32Array of numel values, row-major
   * @throws {SafetensorsError} as {@link SafetensorsFile.readRaw}
   * @example
   * ```ts ignore
   * const w = await f.readF32("model.layers.0.self_attn.q_proj.weight");
   * ```
   */
  async readF32(name: string): Promise<Float32Array> {
    const dtype: DType = this.info(name).dtype;
    return rawToF32(dtype, await this.readRaw(name));
  }

  /**
   * Reads rows `row0 … row0 + rows − 1` of a tensor (rows along its first
   * dimension) as float32 values, converted as {@link SafetensorsFile.readF32}
   * does; only those rows' bytes are read. For streaming the blocks of a
   * large matrix such as an embedding table.
   *
   * @param name the tensor name
   * @param row0 the first row
   * @param rows how many rows (0 gives an empty array)
   * @returns a new Float32Array of rows · (numel / shape[0]) values, row-major
   * @throws {SafetensorsError} when the tensor is missing or a scalar, the
   *   rows are not within its first dimension, the file closed or shortened
   * @example
   * ```ts
   * import { SafetensorsFile } from "./safetensors_read.ts";
   * import { writeSafetensors } from "./safetensors_write.ts";
   * const dir = await Deno.makeTempDir();
   * const values = new Float32Array([1, 2, 3, 4, 5, 6]);
   * await writeSafetensors(`${dir}/m.safetensors`, [
   *   { name: "w", dtype: "F32", shape: [3, 2], data: new Uint8Array(values.buffer) },
   * ]);
   * const f = await SafetensorsFile.open(`${dir}/m.safetensors`);
   * try {
   *   const middle = await f.readRowsF32("w", 1, 1); // Float32Array [3, 4]
   *   console.assert(middle.join() === "3,4");
   * } finally {
   *   f.close();
   *   await Deno.remove(dir, { recursive: true });
   * }
   * ```
   */
  async readRowsF32(name: string, row0: number, rows: number): Promise<Float32Array> {
    const t = this.info(name);
    if (t.shape.length === 0) {
      throw new SafetensorsError(this.path, `tensor '${name}' is a scalar: it has no rows`);
    }
    const total = t.shape[0];
    if (
      !Number.isSafeInteger(row0) || !Number.isSafeInteger(rows) || row0 < 0 || rows < 0 ||
      row0 + rows > total
    ) {
      throw new SafetensorsError(
        this.path,
        `tensor '${name}' [${t.shape}]: ${rows} rows from row ${row0} are not within its ` +
          `${total} rows`,
      );
    }
    const rowBytes = t.shape.slice(1).reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
    const raw = await this.#read(name, t.byteOffset + row0 * rowBytes, rows * rowBytes);
    return rawToF32(t.dtype, raw);
  }

  /**
   * Reads a tensor into its natural typed array: F16/BF16 as raw Uint16
   * bits, F8 and BOOL as Uint8, I64 as BigInt64.
   *
   * @param name the tensor name
   * @returns the typed array, owning its buffer
   * @throws {SafetensorsError} as {@link SafetensorsFile.readRaw}
   * @example
   * ```ts ignore
   * const ids = await f.readTyped("ids_a") as BigInt64Array;
   * ```
   */
  async readTyped(name: string): Promise<TypedTensor> {
    const dtype: DType = this.info(name).dtype;
    return bytesToTyped(dtype, await this.readRaw(name));
  }

  /**
   * Closes the file handle; later reads throw. Closing twice is harmless.
   *
   * @example
   * ```ts ignore
   * f.close();
   * ```
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#file.close();
  }

  /** Closes the file at the end of a `using` block. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** `length` bytes at `offset`, which lie inside tensor `name`. */
  async #read(name: string, offset: number, length: number): Promise<Uint8Array> {
    return await this.#exclusive(async () => {
      if (this.#closed) throw new SafetensorsError(this.path, `read of '${name}' after close()`);
      const out = new Uint8Array(length);
      try {
        await readExactly(this.#file, out, offset, this.path, name);
      } catch (e) {
        if (e instanceof SafetensorsError) throw e;
        throw new SafetensorsError(
          this.path,
          `tensor '${name}': read failed: ${(e as Error).message}`,
          { cause: e },
        );
      }
      return out;
    });
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    // seek + read is two steps on one shared cursor: run them one at a time.
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => {});
    return run;
  }
}

/** Float32 values of freshly read bytes (a buffer of their own, at offset 0: F32 needs no copy). */
function rawToF32(dtype: DType, raw: Uint8Array): Float32Array {
  return dtype === "F32"
    ? new Float32Array(raw.buffer, 0, raw.byteLength / 4)
    : bytesToF32(dtype, raw);
}

async function readExactly(
  file: Deno.FsFile,
  into: Uint8Array,
  position: number,
  path: string,
  tensor?: string,
): Promise<void> {
  await file.seek(position, Deno.SeekMode.Start);
  let done = 0;
  while (done < into.length) {
    const n = await file.read(into.subarray(done));
    if (n === null) {
      const what = tensor === undefined ? "header" : `tensor '${tensor}'`;
      throw new SafetensorsError(
        path,
        `file ended after ${position + done} bytes while reading the ${what} ` +
          `(expected ${into.length} bytes at ${position}); was it truncated after opening?`,
      );
    }
    done += n;
  }
}
