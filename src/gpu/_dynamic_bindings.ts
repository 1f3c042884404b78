/**
 * Which `@group(0)` bindings of a pipeline take a dynamic offset (its
 * explicit layout declares `hasDynamicOffset`), so that `CommandBatch` can
 * bind them through one bind group per submit and pass each dispatch's
 * offsets to `setBindGroup`, instead of creating a bind group per dispatch.
 * Why: on llvmpipe a bind group of 11 entries costs about 40 µs of the main
 * thread to create (measured on a 2-core Zen 3), while the worker threads
 * wait; the uniform-window matmul records about 130 dispatches per 1024³
 * product, all binding the same buffers at different offsets.
 *
 * A pipeline registers here when it is created with such a layout; an
 * unregistered pipeline (layout "auto") gets a bind group per dispatch.
 *
 * @module
 */

const dynamic = new WeakMap<GPUComputePipeline, readonly number[]>();

/**
 * Records that bindings `indices` of `pipeline` take dynamic offsets (its
 * layout was created with `hasDynamicOffset` on exactly these).
 */
export function registerDynamicBindings(
  pipeline: GPUComputePipeline,
  indices: readonly number[],
): void {
  dynamic.set(pipeline, [...indices].sort((a, b) => a - b));
}

/** The bindings of `pipeline` that take dynamic offsets, ascending (empty when none). */
export function dynamicBindings(pipeline: GPUComputePipeline): readonly number[] {
  return dynamic.get(pipeline) ?? [];
}
