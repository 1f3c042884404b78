/**
 * The CPU engine's float32 arrays, reused by length. A forward allocates the
 * same few shapes for every batch; without reuse every intermediate is a new
 * ArrayBuffer that V8 frees only at its next garbage collection, so a 4096-
 * token forward of a 13M-parameter layer left 100–250 MB of dead arrays
 * resident (measured). With it, the engine's memory is the largest set of
 * arrays a forward holds at once.
 *
 * Arrays are reference-counted (a reshaped view shares its source's array):
 * one returns to the pool when its last tensor is destroyed. The counts are
 * held weakly, so a tensor that is dropped without `destroy()` is collected
 * as before rather than kept alive by the pool.
 *
 * @module
 */

/**
 * Float32 arrays by length, with reference counts.
 *
 * @example
 * ```ts
 * import { ArrayPool } from "./_array_pool.ts";
 * const pool = new ArrayPool(2 ** 20);
 * const a = pool.take(4, true);
 * pool.retain(a);
 * pool.release(a);
 * console.assert(pool.take(4, false) === a);
 * ```
 */
export class ArrayPool {
  readonly #free = new Map<number, Float32Array[]>();
  // Weak: a tensor its owner never destroys must still be collectable with its array.
  readonly #refs = new WeakMap<Float32Array, number>();
  #pooledBytes = 0;

  /** @param maxPooledBytes arrays released beyond this many pooled bytes are left to the GC */
  constructor(readonly maxPooledBytes: number) {}

  /** Bytes of arrays waiting in the pool. */
  get pooledBytes(): number {
    return this.#pooledBytes;
  }

  /**
   * An array of `length` floats: a pooled one (zeroed when asked) or a new one.
   *
   * @param length floats
   * @param zero whether the caller needs zeros (new arrays always are)
   * @returns the array, not yet retained
   */
  take(length: number, zero: boolean): Float32Array {
    const a = this.#free.get(length)?.pop();
    if (a === undefined) return new Float32Array(length);
    this.#pooledBytes -= a.byteLength;
    if (zero) a.fill(0);
    return a;
  }

  /**
   * Counts one more tensor holding `a`.
   *
   * @param a an array from {@link take}
   */
  retain(a: Float32Array): void {
    this.#refs.set(a, (this.#refs.get(a) ?? 0) + 1);
  }

  /**
   * Whether `a` is retained by a live tensor.
   *
   * @param a an array
   * @returns true when the pool counts tensors holding it
   */
  holds(a: Float32Array): boolean {
    return this.#refs.has(a);
  }

  /**
   * Counts one tensor fewer; the last one returns `a` to the pool.
   *
   * @param a a retained array
   */
  release(a: Float32Array): void {
    const n = (this.#refs.get(a) ?? 1) - 1;
    if (n > 0) {
      this.#refs.set(a, n);
      return;
    }
    this.#refs.delete(a);
    if (this.#pooledBytes + a.byteLength > this.maxPooledBytes) return;
    const list = this.#free.get(a.length);
    if (list === undefined) this.#free.set(a.length, [a]);
    else list.push(a);
    this.#pooledBytes += a.byteLength;
  }

  /**
   * Frees every pooled array now, e.g. before work that allocates otherwise.
   *
   * A pooled array has no live tensor, so nothing may read it again: its
   * buffer is detached (`transfer(0)`), which returns the memory at once
   * instead of at V8's next full collection (a forward's pooled arrays are
   * tens of MB; left to the collector they sat beside the next phase's arrays
   * unless a full collection was forced after every trim).
   */
  trim(): void {
    for (const list of this.#free.values()) for (const a of list) freeNow(a);
    this.#free.clear();
    this.#pooledBytes = 0;
  }
}

/** Returns an array's memory now when it owns its whole (non-shared) buffer; else leaves it to the GC. */
function freeNow(a: Float32Array): void {
  const b = a.buffer;
  if (b instanceof ArrayBuffer && a.byteOffset === 0 && a.byteLength === b.byteLength) {
    b.transfer(0);
  }
}
