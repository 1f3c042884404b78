/**
 * Readbacks of a layer's outputs into an {@link ActivationCache} that do not
 * wait one by one. Each awaited map costs a device poll (about 11 ms on
 * llvmpipe, however little work is pending) while several maps awaited
 * together cost one, so a read is started as soon as a batch's forward is
 * submitted and only awaited when the reads in flight exceed a byte bound
 * (their staging buffers are host-visible memory) or at the end.
 *
 * @module
 */

import type { Engine, Tensor } from "../engine/engine.ts";
import type { ActivationCache } from "./activation_cache.ts";

/** Default bound on the bytes of reads in flight. */
export const DEFAULT_PENDING_READ_BYTES = 64 * 2 ** 20;

interface Pending {
  readonly index: number;
  readonly read: Promise<Float32Array>;
  readonly bytes: number;
}

/**
 * Reads GPU tensors into a cache, in the order they were added, waiting as
 * rarely as the byte bound allows.
 *
 * @example
 * ```ts ignore
 * const reads = new PendingReads(outputs);
 * for (const b of batches) {
 *   const out = await model.runLayer(k, hidden, { weights, sequences: b.sequences });
 *   await reads.add(b.index, out, engine);
 *   out.destroy();
 * }
 * await reads.drain();
 * ```
 */
export class PendingReads {
  readonly #queue: Pending[] = [];
  #bytes = 0;

  /**
   * @param cache where the host copies go
   * @param maxBytes reads in flight beyond this are awaited, oldest first
   *   (at least one read is always in flight)
   */
  constructor(
    readonly cache: ActivationCache,
    readonly maxBytes: number = DEFAULT_PENDING_READ_BYTES,
  ) {}

  /**
   * Starts reading `tensor` (its values as of this call: the caller may
   * destroy it once this returns) as entry `index` of the cache.
   *
   * @param index the cache entry
   * @param tensor an f32 tensor
   * @param engine its engine (the read starts now, in one device poll)
   * @returns resolves once the reads in flight are within the bound
   * @example
   * ```ts ignore
   * await reads.add(0, out, engine);
   * out.destroy();
   * ```
   */
  async add(index: number, tensor: Tensor, engine: Engine): Promise<void> {
    const read = engine.read([tensor]).then(([host]) => host as Float32Array);
    // Awaited in order later; a failure before then must not count as unhandled.
    read.catch(() => {});
    const bytes = tensor.numel * 4;
    this.#queue.push({ index, read, bytes });
    this.#bytes += bytes;
    while (this.#queue.length > 1 && this.#bytes > this.maxBytes) await this.#settleOldest();
  }

  /**
   * Waits for every read and stores it in the cache.
   *
   * @returns resolves when all are stored; rejects with the first failure
   * @example
   * ```ts ignore
   * await reads.drain();
   * ```
   */
  async drain(): Promise<void> {
    while (this.#queue.length > 0) await this.#settleOldest();
  }

  async #settleOldest(): Promise<void> {
    const p = this.#queue.shift()!;
    this.#bytes -= p.bytes;
    await this.cache.put(p.index, await p.read);
  }
}
