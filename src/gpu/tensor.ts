/**
 * GpuTensor: a dense, row-major array in a pooled GPU storage buffer.
 * Uploads are queued without waiting; readback happens only on request.
 *
 * @module
 */

import { storagePool } from "./buffer_pool.ts";
import { type Gpu, unlessGpuFails } from "./device.ts";
import { ShapeError, TensorTooLargeError } from "./errors.ts";
import { flushWritersOf, whenUnused } from "./_pending.ts";

/** Element types a GpuTensor can hold (all 4 bytes wide). */
export type GpuDType = "f32" | "u32" | "i32";

/** The host array type of each dtype. */
export type HostArray = Float32Array | Uint32Array | Int32Array;

const BYTES_PER_ELEMENT = 4;
const EMPTY_BINDING_BYTES = 16;
/**
 * Queued upload bytes after which the queue is flushed. `writeBuffer` copies
 * into a staging buffer that lives until the next submit: without a flush a
 * layer's uploads would hold a second copy of the layer until its batch is
 * submitted (measured on llvmpipe: 72 MiB of uploads peaked 145 MiB above
 * the baseline unflushed, 79 MiB flushed every 6 MiB).
 */
const FLUSH_UPLOAD_BYTES = 8 * 2 ** 20;
const unflushed = new WeakMap<GPUDevice, number>();

/**
 * A dense row-major tensor on the GPU. Create with `fromArray` or `empty`,
 * release with `destroy` (the buffer returns to the pool).
 *
 * @example
 * ```ts
 * import { getGpu } from "./device.ts";
 * import { GpuTensor } from "./tensor.ts";
 * const gpu = await getGpu();
 * const t = GpuTensor.fromArray(gpu, new Float32Array([1, 2, 3, 4]), [2, 2]);
 * console.assert((await t.readF32())[3] === 4);
 * t.destroy();
 * ```
 */
export class GpuTensor {
  #destroyed = false;
  #immutable = false;
  /** Copies derived from an immutable tensor's data (e.g. packed tiles), freed with it. */
  #derived = new Map<string, { destroy(): void }>();

  /**
   * Wraps an existing buffer. Prefer `fromArray`, `empty` or `allocate`.
   *
   * @param gpu the device owning `buffer`
   * @param buffer a storage buffer at least `numel * 4` bytes long
   * @param shape the dimensions, row-major
   * @param dtype the element type
   * @param owner whether `destroy` returns `buffer` to the pool (false for views)
   */
  constructor(
    readonly gpu: Gpu,
    readonly buffer: GPUBuffer,
    readonly shape: readonly number[],
    readonly dtype: GpuDType = "f32",
    private readonly owner = true,
  ) {}

  /** Number of elements. */
  get numel(): number {
    return numelOf(this.shape);
  }

  /** Bytes of data (the buffer may be larger: it comes from a size-class pool). */
  get byteLength(): number {
    return this.numel * BYTES_PER_ELEMENT;
  }

  /**
   * True for a tensor uploaded with `{ immutable: true }` (and its views): no
   * kernel may bind it where it could write (CommandBatch.dispatch refuses),
   * so copies derived from its data stay valid for its whole life.
   */
  get immutable(): boolean {
    return this.#immutable;
  }

  /**
   * A copy derived from this immutable tensor's data, made by `make` on first
   * use under `key` and reused after; destroyed with this tensor. Only
   * immutable tensors that own their buffer have derived copies: their data
   * can never change, so a derived copy can never go stale.
   *
   * @param key what the copy is (and its layout)
   * @param make builds the copy (called once per key)
   * @returns the cached or new copy
   * @throws {ShapeError} for a mutable tensor, a view or a destroyed tensor
   *
   * @example
   * ```ts
   * import { getGpu } from "./device.ts";
   * import { GpuTensor } from "./tensor.ts";
   * const w = GpuTensor.fromArray(await getGpu(), new Float32Array(4), [2, 2], { immutable: true });
   * const copy = { destroyed: false, destroy() { this.destroyed = true; } };
   * console.assert(w.derived("copy", () => copy) === copy);
   * w.destroy();
   * console.assert(copy.destroyed);
   * ```
   */
  derived<T extends { destroy(): void }>(key: string, make: () => T): T {
    if (!this.#immutable || !this.owner || this.#destroyed) {
      throw new ShapeError(
        `derived copy "${key}" of [${this.shape}]: only a live immutable tensor that owns ` +
          `its buffer has derived copies`,
      );
    }
    let copy = this.#derived.get(key);
    if (!copy) this.#derived.set(key, copy = make());
    return copy as T;
  }

  /** True once `destroy` was called on this tensor (or on the tensor it views). */
  get destroyed(): boolean {
    return this.#destroyed;
  }

  /**
   * Uploads `data` (queue.writeBuffer: no wait; the queue is flushed
   * after every 8 MiB of uploads so their staging copies do not pile up).
   * `data` is copied at once: the caller may reuse or release it on return.
   *
   * @param gpu the device
   * @param data the elements, row-major; its type sets the dtype
   * @param shape the dimensions; their product must equal `data.length`
   * @param options.immutable no kernel may ever write it (weights: lets
   *   matmul reuse a packed copy, see {@link GpuTensor.derived})
   * @returns the new tensor
   * @throws {TensorTooLargeError} beyond maxStorageBufferBindingSize
   *
   * @example
   * ```ts
   * import { getGpu } from "./device.ts";
   * import { GpuTensor } from "./tensor.ts";
   * const ids = GpuTensor.fromArray(await getGpu(), new Uint32Array([5, 7]), [2]);
   * console.assert(ids.dtype === "u32");
   * ```
   */
  static fromArray(
    gpu: Gpu,
    data: HostArray,
    shape: number[],
    options: { immutable?: boolean } = {},
  ): GpuTensor {
    const dtype = dtypeOf(data);
    checkShape(gpu, shape, dtype);
    if (numelOf(shape) !== data.length) {
      throw new ShapeError(
        `fromArray: shape [${shape}] holds ${numelOf(shape)} elements but data has ${data.length}`,
      );
    }
    const buffer = storagePool(gpu).acquire(data.byteLength);
    if (data.length > 0) {
      const queue = gpu.device.queue;
      // A SharedArrayBuffer-backed view is copied like any other; the DOM type is narrower.
      queue.writeBuffer(buffer, 0, data as Float32Array<ArrayBuffer>);
      const pending = (unflushed.get(gpu.device) ?? 0) + data.byteLength;
      // An empty submit sends the queued writes and frees their staging; order is unchanged.
      if (pending >= FLUSH_UPLOAD_BYTES) queue.submit([]);
      unflushed.set(gpu.device, pending >= FLUSH_UPLOAD_BYTES ? 0 : pending);
    }
    const tensor = new GpuTensor(gpu, buffer, [...shape], dtype);
    tensor.#immutable = options.immutable ?? false;
    return tensor;
  }

  /**
   * A zero-filled tensor.
   *
   * @param gpu the device
   * @param shape the dimensions
   * @param dtype the element type (default "f32")
   * @returns the new tensor
   * @throws {TensorTooLargeError} beyond maxStorageBufferBindingSize
   *
   * @example
   * ```ts
   * import { getGpu } from "./device.ts";
   * import { GpuTensor } from "./tensor.ts";
   * const acc = GpuTensor.empty(await getGpu(), [64, 64]);
   * console.assert(acc.byteLength === 64 * 64 * 4);
   * ```
   */
  static empty(gpu: Gpu, shape: number[], dtype: GpuDType = "f32"): GpuTensor {
    checkShape(gpu, shape, dtype);
    const buffer = storagePool(gpu).acquire(numelOf(shape) * BYTES_PER_ELEMENT, true);
    return new GpuTensor(gpu, buffer, [...shape], dtype);
  }

  /**
   * A tensor whose contents are undefined (a reused buffer is not cleared):
   * for kernel outputs that write every element.
   *
   * @param gpu the device
   * @param shape the dimensions
   * @param dtype the element type (default "f32")
   * @returns the new tensor
   * @throws {TensorTooLargeError} beyond maxStorageBufferBindingSize
   *
   * @example
   * ```ts
   * import { getGpu } from "./device.ts";
   * import { GpuTensor } from "./tensor.ts";
   * const out = GpuTensor.allocate(await getGpu(), [8, 16]);
   * out.destroy();
   * ```
   */
  static allocate(gpu: Gpu, shape: number[], dtype: GpuDType = "f32"): GpuTensor {
    checkShape(gpu, shape, dtype);
    const buffer = storagePool(gpu).acquire(numelOf(shape) * BYTES_PER_ELEMENT);
    return new GpuTensor(gpu, buffer, [...shape], dtype);
  }

  /**
   * The same buffer seen with another shape (same element count). The view
   * does not own the buffer: destroy the original, not the view.
   *
   * @param shape the new dimensions
   * @returns a view sharing this tensor's buffer
   *
   * @example
   * ```ts
   * import { getGpu } from "./device.ts";
   * import { GpuTensor } from "./tensor.ts";
   * const t = GpuTensor.empty(await getGpu(), [4, 6]);
   * console.assert(t.view([2, 12]).shape[1] === 12);
   * ```
   */
  view(shape: number[]): GpuTensor {
    if (numelOf(shape) !== this.numel) {
      throw new ShapeError(`view: [${this.shape}] cannot be seen as [${shape}]`);
    }
    const view = new GpuTensor(this.gpu, this.buffer, [...shape], this.dtype, false);
    view.#immutable = this.#immutable;
    return view;
  }

  /**
   * Reads the tensor back (submits pending batches that use it first).
   *
   * @returns a host copy, typed by dtype
   *
   * @example
   * ```ts
   * import { getGpu } from "./device.ts";
   * import { GpuTensor } from "./tensor.ts";
   * const t = GpuTensor.fromArray(await getGpu(), new Int32Array([-1]), [1]);
   * console.assert((await t.read())[0] === -1);
   * ```
   */
  async read(): Promise<HostArray> {
    return (await readMany([this]))[0];
  }

  /**
   * Reads an f32 tensor back.
   *
   * @returns a host Float32Array copy
   * @throws {ShapeError} when the dtype is not f32
   *
   * @example
   * ```ts
   * import { getGpu } from "./device.ts";
   * import { GpuTensor } from "./tensor.ts";
   * const t = GpuTensor.empty(await getGpu(), [3]);
   * console.assert((await t.readF32()).length === 3);
   * ```
   */
  async readF32(): Promise<Float32Array> {
    if (this.dtype !== "f32") throw new ShapeError(`readF32 on a ${this.dtype} tensor`);
    return (await this.read()) as Float32Array;
  }

  /**
   * Returns the buffer to the pool once no unsubmitted batch uses it.
   * Idempotent; a view's destroy only marks the view.
   *
   * @returns nothing
   *
   * @example
   * ```ts
   * import { getGpu } from "./device.ts";
   * import { GpuTensor } from "./tensor.ts";
   * const t = GpuTensor.empty(await getGpu(), [16]);
   * t.destroy();
   * console.assert(t.destroyed);
   * ```
   */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const copy of this.#derived.values()) copy.destroy();
    this.#derived.clear();
    if (!this.owner) return;
    const device = this.gpu.device;
    whenUnused(device, this.buffer, () => storagePool(this.gpu).release(this.buffer));
  }

  /**
   * The binding resource: the data range only, so `arrayLength` sees numel.
   * An empty tensor binds 16 bytes, since a binding cannot be empty and a
   * vec4 array needs at least one element.
   */
  get bindingResource(): GPUBufferBinding {
    return { buffer: this.buffer, offset: 0, size: this.byteLength || EMPTY_BINDING_BYTES };
  }
}

/**
 * Reads several tensors back with one submit and one wait. The copies are
 * taken when it is called: the tensors may be destroyed or reused as soon
 * as it returns the promise.
 *
 * @param tensors tensors on the same device
 * @returns their host copies, in order
 *
 * @example
 * ```ts
 * import { getGpu } from "./device.ts";
 * import { GpuTensor, readMany } from "./tensor.ts";
 * const gpu = await getGpu();
 * const a = GpuTensor.fromArray(gpu, new Float32Array([1]), [1]);
 * const b = GpuTensor.fromArray(gpu, new Uint32Array([2]), [1]);
 * const [ha, hb] = await readMany([a, b]);
 * console.assert(ha[0] === 1 && hb[0] === 2);
 * ```
 */
export async function readMany(tensors: GpuTensor[]): Promise<HostArray[]> {
  const live = tensors.filter((t) => t.byteLength > 0);
  if (live.length === 0) return tensors.map((t) => hostArray(t.dtype, new ArrayBuffer(0)));
  const gpu = live[0].gpu;
  const device = gpu.device;
  for (const t of live) {
    if (t.destroyed) throw new ShapeError(`read of a destroyed tensor [${t.shape}]`);
    if (t.gpu.device !== device) throw new ShapeError("readMany: tensors on different devices");
    flushWritersOf(device, t.buffer);
  }
  // Every copy is encoded and submitted before the first await, so the
  // values are those at the call: the caller may destroy or overwrite the
  // tensors as soon as readMany returns its promise.
  const encoder = device.createCommandEncoder({ label: "readback" });
  const staging = live.map((t) => {
    const buffer = device.createBuffer({
      size: t.byteLength,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    encoder.copyBufferToBuffer(t.buffer, 0, buffer, 0, t.byteLength);
    return buffer;
  });
  device.queue.submit([encoder.finish()]);
  try {
    await unlessGpuFails(gpu, Promise.all(staging.map((b) => b.mapAsync(GPUMapMode.READ))));
    const copies = new Map<GpuTensor, HostArray>();
    live.forEach((t, i) => copies.set(t, hostArray(t.dtype, staging[i].getMappedRange().slice(0))));
    return tensors.map((t) => copies.get(t) ?? hostArray(t.dtype, new ArrayBuffer(0)));
  } finally {
    for (const b of staging) b.destroy();
  }
}

function hostArray(dtype: GpuDType, bytes: ArrayBuffer): HostArray {
  if (dtype === "u32") return new Uint32Array(bytes);
  if (dtype === "i32") return new Int32Array(bytes);
  return new Float32Array(bytes);
}

function dtypeOf(data: HostArray): GpuDType {
  if (data instanceof Float32Array) return "f32";
  if (data instanceof Uint32Array) return "u32";
  if (data instanceof Int32Array) return "i32";
  throw new ShapeError(`fromArray: expected a Float32Array, Uint32Array or Int32Array`);
}

function numelOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function checkShape(gpu: Gpu, shape: readonly number[], dtype: GpuDType): void {
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new ShapeError(`shape [${shape}] must hold non-negative integers`);
  }
  const bytes = numelOf(shape) * BYTES_PER_ELEMENT;
  const limit = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
  if (bytes > limit) {
    const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
    throw new TensorTooLargeError(
      `tensor [${shape}] ${dtype} is ${mib(bytes)}, more than one storage binding may hold on ` +
        `this device (${mib(limit)}); split weights with ChunkedWeight (src/gpu/chunked.ts)`,
    );
  }
}
