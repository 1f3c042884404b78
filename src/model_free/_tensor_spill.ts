/**
 * A spill file for one output safetensors file: tensors are appended as
 * they are produced (so memory holds one at a time) and read back in any
 * order, so the final file can be laid out in `save_pretrained`'s order.
 *
 * @module
 */

import type { DType } from "../io/dtype.ts";
import { ModelFreeError } from "./errors.ts";

/** Where a spilled tensor's bytes are. */
export interface SpillEntry {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly offset: number;
  readonly length: number;
}

/**
 * An append-then-random-read file of tensor bytes.
 *
 * @example
 * ```ts ignore
 * const spill = await TensorSpill.create("/tmp/x.spill");
 * await spill.append({ name: "a", dtype: "U8", shape: [1], data: new Uint8Array([7]) });
 * await spill.read(spill.entries[0]); // Uint8Array [7]
 * await spill.remove();
 * ```
 */
export class TensorSpill {
  /** The spilled tensors, in append order. */
  readonly entries: SpillEntry[] = [];
  readonly #path: string;
  readonly #file: Deno.FsFile;
  #size = 0;

  private constructor(path: string, file: Deno.FsFile) {
    this.#path = path;
    this.#file = file;
  }

  /**
   * Creates (truncates) a spill file.
   *
   * @param path where
   * @returns the spill
   * @example
   * ```ts ignore
   * const spill = await TensorSpill.create(`${tmp}/shard.spill`);
   * ```
   */
  static async create(path: string): Promise<TensorSpill> {
    const file = await Deno.open(path, { read: true, write: true, create: true, truncate: true });
    return new TensorSpill(path, file);
  }

  /**
   * Appends a tensor's bytes.
   *
   * @param t the tensor
   * @example
   * ```ts ignore
   * await spill.append(tensor);
   * ```
   */
  async append(
    t: { name: string; dtype: DType; shape: readonly number[]; data: Uint8Array },
  ): Promise<void> {
    await this.#file.seek(this.#size, Deno.SeekMode.Start);
    let done = 0;
    while (done < t.data.byteLength) done += await this.#file.write(t.data.subarray(done));
    this.entries.push({
      name: t.name,
      dtype: t.dtype,
      shape: [...t.shape],
      offset: this.#size,
      length: t.data.byteLength,
    });
    this.#size += t.data.byteLength;
  }

  /**
   * Reads a spilled tensor's bytes back.
   *
   * @param e one of {@link entries}
   * @returns its bytes
   * @throws {ModelFreeError} when the file is shorter than recorded
   * @example
   * ```ts ignore
   * const bytes = await spill.read(spill.entries[0]);
   * ```
   */
  async read(e: SpillEntry): Promise<Uint8Array> {
    const out = new Uint8Array(e.length);
    await this.#file.seek(e.offset, Deno.SeekMode.Start);
    let done = 0;
    while (done < e.length) {
      const n = await this.#file.read(out.subarray(done));
      if (n === null) throw new ModelFreeError(`${this.#path}: spill file ended early`);
      done += n;
    }
    return out;
  }

  /**
   * Closes and deletes the spill file.
   *
   * @example
   * ```ts ignore
   * await spill.remove();
   * ```
   */
  async remove(): Promise<void> {
    try {
      this.#file.close();
    } catch {
      // Already closed.
    }
    await Deno.remove(this.#path).catch(() => {});
  }
}
