/**
 * CommandBatch: records kernel dispatches and submits them together, because
 * every awaited round trip to the GPU costs milliseconds (≈11 ms on llvmpipe)
 * while a recorded dispatch costs microseconds.
 *
 * @module
 */

import { uniformPool } from "./buffer_pool.ts";
import { type Gpu, throwIfGpuFailed, unlessGpuFails } from "./device.ts";
import { ImmutableTensorError, ShapeError } from "./errors.ts";
import { GpuTensor } from "./tensor.ts";
import { clearPending, markPending } from "./_pending.ts";
import { mayWriteBinding } from "./_writable_bindings.ts";
import { dynamicBindings } from "./_dynamic_bindings.ts";

/**
 * What may be bound at `@group(0) @binding(i)`: a tensor (bound to its data
 * range), a raw buffer (bound whole), a byte range of a buffer (e.g. a
 * uniform window into packed tiles), or bytes for a small uniform buffer.
 */
export type Binding =
  | GpuTensor
  | GPUBuffer
  | { buffer: GPUBuffer; offset: number; size: number }
  | { uniform: ArrayBufferView };

interface Command {
  pipeline: GPUComputePipeline;
  bindings: Binding[];
  workgroups: [number, number, number];
  label?: string;
}

/**
 * A queue of dispatches on one device. Nothing waits until `done()`.
 *
 * @example
 * ```ts
 * import { CommandBatch } from "./batch.ts";
 * import { getGpu } from "./device.ts";
 * import { kernelSync } from "./kernel.ts";
 * import { GpuTensor } from "./tensor.ts";
 * const gpu = await getGpu();
 * const x = GpuTensor.fromArray(gpu, new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]);
 * const y = GpuTensor.allocate(gpu, [3, 2]);
 * const batch = new CommandBatch(gpu);
 * batch.dispatch(kernelSync(gpu, "transpose.wgsl"), [
 *   x, y, { uniform: new Uint32Array([2, 3]) },
 * ], [1, 1], "transpose");
 * console.assert((await y.readF32())[1] === 4);
 * ```
 */
export class CommandBatch {
  #commands: Command[] = [];
  #used = new Set<GPUBuffer>();
  #afterSubmit: Array<() => void> = [];
  #memos = new Map<GPUBuffer, Map<string, unknown>>();

  /**
   * Creates an empty batch.
   *
   * @param gpu the device the dispatches run on
   */
  constructor(readonly gpu: Gpu) {}

  /** Number of recorded dispatches not yet submitted. */
  get pending(): number {
    return this.#commands.length;
  }

  /**
   * Records one dispatch; binding i goes to `@group(0) @binding(i)`.
   *
   * @param pipeline a pipeline from `loadKernel` / `kernelSync`
   * @param bindings resources in binding order
   * @param workgroups workgroup counts [x, y?, z?], each ≤ maxComputeWorkgroupsPerDimension
   * @param label names the dispatch in GPU error messages
   * @returns nothing
   * @throws {ImmutableTensorError} when an immutable tensor is bound where the kernel may write
   */
  dispatch(
    pipeline: GPUComputePipeline,
    bindings: Binding[],
    workgroups: [number, number?, number?],
    label?: string,
  ): void {
    const counts: [number, number, number] = [
      workgroups[0],
      workgroups[1] ?? 1,
      workgroups[2] ?? 1,
    ];
    const max = this.gpu.limits.maxComputeWorkgroupsPerDimension;
    for (const n of counts) {
      if (!Number.isInteger(n) || n < 0 || n > max) {
        throw new ShapeError(
          `${label ?? pipeline.label}: workgroup count [${counts}] must be integers in 0..${max}` +
            ` (fold large 1-D dispatches with foldWorkgroups)`,
        );
      }
    }
    for (const [i, b] of bindings.entries()) {
      // A dispatch that may write a buffer ends the life of what was derived from its contents.
      const written = b instanceof GpuTensor ? b.buffer : "buffer" in b ? b.buffer : b;
      if (written instanceof GPUBuffer && mayWriteBinding(pipeline, i)) {
        this.#memos.delete(written);
      }
      if (b instanceof GpuTensor) {
        if (b.destroyed) {
          throw new ShapeError(`${label ?? pipeline.label}: binds a destroyed tensor [${b.shape}]`);
        }
        // Structural guarantee behind GpuTensor.derived: an immutable tensor is never written.
        if (b.immutable && mayWriteBinding(pipeline, i)) {
          throw new ImmutableTensorError(
            `${label ?? pipeline.label}: binding ${i} may write the immutable tensor [${b.shape}]`,
          );
        }
        if (b.gpu.device !== this.gpu.device) {
          throw new ShapeError(`${label ?? pipeline.label}: binds a tensor of another device`);
        }
        this.#used.add(b.buffer);
      } else if (b instanceof GPUBuffer) {
        this.#used.add(b);
      } else if ("buffer" in b) {
        this.#used.add(b.buffer);
      }
    }
    if (counts.includes(0)) return;
    this.#commands.push({ pipeline, bindings: [...bindings], workgroups: counts, label });
    markPending(this.gpu.device, this);
  }

  /**
   * Encodes the recorded dispatches into one compute pass and submits them
   * (no wait). Safe to call repeatedly.
   *
   * @returns nothing
   */
  submit(): void {
    const commands = this.#commands;
    const callbacks = this.#afterSubmit;
    this.#commands = [];
    this.#afterSubmit = [];
    this.#used = new Set();
    this.#memos = new Map();
    clearPending(this.gpu.device, this);
    if (commands.length > 0) this.#encodeAndSubmit(commands);
    for (const fn of callbacks) fn();
  }

  /**
   * Submits pending work and waits until the GPU has finished all of it.
   *
   * @returns resolves when the queue is idle; rejects with the GPU's error
   */
  async done(): Promise<void> {
    this.submit();
    await unlessGpuFails(this.gpu, this.gpu.device.queue.onSubmittedWorkDone());
    throwIfGpuFailed(this.gpu);
  }

  /** @internal True if unsubmitted commands bind `buffer`. */
  uses(buffer: GPUBuffer): boolean {
    return this.#used.has(buffer);
  }

  /**
   * @internal A value derived from `buffer`'s contents as they stand at this
   * point of the batch (e.g. an operand's packed tiles, recorded by `make`),
   * made on first use and returned again until a later dispatch may write
   * `buffer` or the batch is submitted. Why: products that share an input
   * (q, k and v of one layer) pack it once.
   */
  memo<T>(buffer: GPUBuffer, key: string, make: () => T): T {
    let memos = this.#memos.get(buffer);
    if (memos?.has(key)) return memos.get(key) as T;
    const value = make();
    if (!memos) this.#memos.set(buffer, memos = new Map());
    memos.set(key, value);
    return value;
  }

  /** @internal Runs `fn` right after the next submit. */
  afterSubmit(fn: () => void): void {
    this.#afterSubmit.push(fn);
  }

  #encodeAndSubmit(commands: Command[]): void {
    const device = this.gpu.device;
    const align = this.gpu.limits.minUniformBufferOffsetAlignment;
    // One arena per submit holds every uniform: one writeBuffer instead of many buffers.
    const offsets: number[] = [];
    let arenaBytes = 0;
    for (const c of commands) {
      for (const b of c.bindings) {
        if (isUniform(b)) {
          offsets.push(arenaBytes);
          arenaBytes += Math.ceil(uniformSize(b) / align) * align;
        }
      }
    }
    let arena: GPUBuffer | undefined;
    if (arenaBytes > 0) {
      arena = uniformPool(this.gpu).acquire(arenaBytes);
      const bytes = new Uint8Array(arenaBytes);
      let i = 0;
      for (const c of commands) {
        for (const b of c.bindings) {
          if (isUniform(b)) {
            const view = b.uniform;
            bytes.set(new Uint8Array(view.buffer, view.byteOffset, view.byteLength), offsets[i++]);
          }
        }
      }
      device.queue.writeBuffer(arena, 0, bytes);
    }
    const encoder = device.createCommandEncoder({ label: "CommandBatch" });
    const pass = encoder.beginComputePass();
    // Bind groups of pipelines with dynamic-offset bindings, shared by the dispatches that bind
    // the same resources (their offsets go to setBindGroup).
    const shared = new Map<string, GPUBindGroup>();
    let lastPipeline: GPUComputePipeline | undefined;
    let u = 0;
    for (const c of commands) {
      const dynamic = dynamicBindings(c.pipeline);
      const dynamicOffsets: number[] = [];
      const entries: GPUBindGroupEntry[] = c.bindings.map((b, binding) => {
        let resource: GPUBufferBinding;
        if (b instanceof GpuTensor) resource = b.bindingResource;
        else if (isUniform(b)) {
          resource = { buffer: arena!, offset: offsets[u++], size: uniformSize(b) };
        } else if (b instanceof GPUBuffer) resource = { buffer: b };
        else resource = { buffer: b.buffer, offset: b.offset, size: b.size };
        if (dynamic.includes(binding)) {
          dynamicOffsets.push(resource.offset ?? 0);
          resource = { buffer: resource.buffer, offset: 0, size: resource.size };
        }
        return { binding, resource };
      });
      const label = c.label ?? c.pipeline.label;
      if (c.pipeline !== lastPipeline) pass.setPipeline(lastPipeline = c.pipeline);
      const create = () =>
        device.createBindGroup({ label, layout: c.pipeline.getBindGroupLayout(0), entries });
      if (dynamic.length === 0) {
        pass.setBindGroup(0, create());
      } else {
        const key = `${objectId(c.pipeline)} ${entries.map(resourceKey).join(" ")}`;
        let group = shared.get(key);
        if (!group) shared.set(key, group = create());
        pass.setBindGroup(0, group, dynamicOffsets);
      }
      pass.dispatchWorkgroups(...c.workgroups);
    }
    pass.end();
    device.queue.submit([encoder.finish()]);
    // Queue order makes reuse safe: any later writeBuffer to the arena runs after this submit.
    if (arena) uniformPool(this.gpu).release(arena);
  }
}

const ids = new WeakMap<object, number>();
let nextId = 0;

/** A stable number per buffer or pipeline object, for bind-group cache keys. */
function objectId(o: object): number {
  let id = ids.get(o);
  if (id === undefined) ids.set(o, id = nextId++);
  return id;
}

function resourceKey(e: GPUBindGroupEntry): string {
  const r = e.resource as GPUBufferBinding;
  return `${objectId(r.buffer)}:${r.offset ?? 0}:${r.size ?? "all"}`;
}

function isUniform(b: Binding): b is { uniform: ArrayBufferView } {
  return !(b instanceof GpuTensor) && !(b instanceof GPUBuffer) && "uniform" in b;
}

/** Uniform structs are sized in 16-byte steps; padding the binding keeps minBindingSize met. */
function uniformSize(b: { uniform: ArrayBufferView }): number {
  return Math.max(16, Math.ceil(b.uniform.byteLength / 16) * 16);
}
