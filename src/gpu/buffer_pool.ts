/**
 * Reuse of freed GPU buffers by size class, so a layer-by-layer pipeline does
 * not create and destroy thousands of buffers. The cache holds a bounded
 * number of bytes; `trim` frees it on demand.
 *
 * @module
 */

import type { Gpu } from "./device.ts";

/** Usage of every storage buffer llmc makes: bound, uploaded to, read back. */
// Numeric GPUBufferUsage values, so importing this module never needs the WebGPU globals.
export const STORAGE_USAGE = 0x80 /* STORAGE */ | 0x04 /* COPY_SRC */ | 0x08 /* COPY_DST */;
/** Usage of the per-submit uniform arenas. */
export const UNIFORM_USAGE = 0x40 /* UNIFORM */ | 0x08 /* COPY_DST */;
/** Usage of packed operands (src/gpu/matmul_uniform.ts): written by a kernel, read as uniforms. */
export const PACK_USAGE = 0x80 /* STORAGE */ | 0x40 /* UNIFORM */;

const DEFAULT_MAX_CACHED_BYTES = 512 * 2 ** 20;

/**
 * The allocation size for a request: powers of two up to 1 MiB, then eight
 * steps per power of two, so reuse is likely and waste stays under 12.5%.
 *
 * @param bytes requested size
 * @param maxBufferSize the device's maxBufferSize; classes never exceed it
 * @returns the size actually allocated (a multiple of 16, at least 256)
 *
 * @example
 * ```ts
 * import { sizeClass } from "./buffer_pool.ts";
 * console.assert(sizeClass(1000, 2 ** 31) === 1024);
 * console.assert(sizeClass(2 ** 20 + 1, 2 ** 31) === 2 ** 20 + 2 ** 17);
 * ```
 */
export function sizeClass(bytes: number, maxBufferSize: number): number {
  const exact = Math.max(256, Math.ceil(bytes / 16) * 16);
  let size: number;
  if (exact <= 2 ** 20) {
    size = 2 ** Math.ceil(Math.log2(exact));
  } else {
    const step = 2 ** (Math.floor(Math.log2(exact - 1)) - 3);
    size = Math.ceil(exact / step) * step;
  }
  return size <= maxBufferSize ? size : exact;
}

/**
 * A cache of released buffers of one usage, keyed by size class.
 *
 * @example
 * ```ts
 * import { BufferPool, STORAGE_USAGE } from "./buffer_pool.ts";
 * import { getGpu } from "./device.ts";
 * const gpu = await getGpu();
 * const pool = new BufferPool(gpu, STORAGE_USAGE);
 * const b = pool.acquire(4000);
 * pool.release(b);
 * console.assert(pool.acquire(4000) === b);
 * ```
 */
export class BufferPool {
  /** Upper bound on the bytes kept cached; older buffers are destroyed beyond it. */
  maxCachedBytes: number;
  #free = new Map<number, GPUBuffer[]>();
  #order = new Set<GPUBuffer>(); // oldest release first, for eviction
  #cachedBytes = 0;

  /**
   * @param gpu the device buffers are created on
   * @param usage the GPUBufferUsage flags of every buffer in this pool
   * @param maxCachedBytes bound on cached bytes (default 512 MiB)
   */
  constructor(
    readonly gpu: Gpu,
    readonly usage: GPUBufferUsageFlags,
    maxCachedBytes = DEFAULT_MAX_CACHED_BYTES,
  ) {
    this.maxCachedBytes = maxCachedBytes;
  }

  /** Bytes currently held in the cache (not in use by any tensor). */
  get cachedBytes(): number {
    return this.#cachedBytes;
  }

  /**
   * A buffer of at least `bytes`; reused when one of its size class is free.
   * A fresh buffer is zero-filled (WebGPU guarantees it); a reused one is not.
   *
   * @param bytes the size needed
   * @param zeroed clear a reused buffer's first `bytes` (a queued clear, no wait)
   * @returns a buffer whose `size` is the size class of `bytes`
   */
  acquire(bytes: number, zeroed = false): GPUBuffer {
    const size = sizeClass(bytes, this.gpu.limits.maxBufferSize);
    const reused = this.#free.get(size)?.pop();
    if (reused) {
      this.#order.delete(reused);
      this.#cachedBytes -= size;
      if (zeroed && bytes > 0) {
        const encoder = this.gpu.device.createCommandEncoder();
        encoder.clearBuffer(reused, 0, Math.ceil(bytes / 4) * 4);
        this.gpu.device.queue.submit([encoder.finish()]);
      }
      return reused;
    }
    return this.gpu.device.createBuffer({ size, usage: this.usage });
  }

  /**
   * Returns a buffer for reuse. The caller must be done with it in all
   * unsubmitted work (queue order makes submitted work safe).
   *
   * @param buffer a buffer from `acquire`
   * @returns nothing
   */
  release(buffer: GPUBuffer): void {
    if (buffer.size > this.maxCachedBytes) {
      buffer.destroy();
      return;
    }
    this.#trimTo(this.maxCachedBytes - buffer.size);
    const list = this.#free.get(buffer.size) ?? [];
    list.push(buffer);
    this.#free.set(buffer.size, list);
    this.#order.add(buffer);
    this.#cachedBytes += buffer.size;
  }

  /**
   * Destroys cached buffers, oldest first, until at most `keepBytes` remain.
   *
   * @param keepBytes bytes to keep cached (default 0: free everything)
   * @returns the number of bytes freed
   */
  trim(keepBytes = 0): number {
    const before = this.#cachedBytes;
    this.#trimTo(keepBytes);
    return before - this.#cachedBytes;
  }

  #trimTo(keepBytes: number): void {
    for (const buffer of this.#order) {
      if (this.#cachedBytes <= keepBytes) break;
      this.#order.delete(buffer);
      const list = this.#free.get(buffer.size)!;
      list.splice(list.indexOf(buffer), 1);
      this.#cachedBytes -= buffer.size;
      buffer.destroy();
    }
  }
}

const storagePools = new WeakMap<GPUDevice, BufferPool>();
const uniformPools = new WeakMap<GPUDevice, BufferPool>();

/**
 * The device's pool of storage buffers (the one GpuTensor allocates from).
 *
 * @param gpu the device
 * @returns its storage pool, created on first use
 *
 * @example
 * ```ts
 * import { storagePool } from "./buffer_pool.ts";
 * import { getGpu } from "./device.ts";
 * const pool = storagePool(await getGpu());
 * pool.maxCachedBytes = 256 * 2 ** 20;
 * pool.trim();
 * ```
 */
export function storagePool(gpu: Gpu): BufferPool {
  let pool = storagePools.get(gpu.device);
  if (!pool) storagePools.set(gpu.device, pool = new BufferPool(gpu, STORAGE_USAGE));
  return pool;
}

/**
 * The device's pool of uniform buffers (CommandBatch's uniform arenas).
 *
 * @param gpu the device
 * @returns its uniform pool, created on first use
 *
 * @example
 * ```ts
 * import { uniformPool } from "./buffer_pool.ts";
 * import { getGpu } from "./device.ts";
 * console.assert(uniformPool(await getGpu()).cachedBytes >= 0);
 * ```
 */
export function uniformPool(gpu: Gpu): BufferPool {
  let pool = uniformPools.get(gpu.device);
  if (!pool) uniformPools.set(gpu.device, pool = new BufferPool(gpu, UNIFORM_USAGE, 16 * 2 ** 20));
  return pool;
}
