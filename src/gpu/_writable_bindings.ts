/**
 * Which `@group(0)` bindings a pipeline's shader may write (declared
 * `var<storage, read_write>`), so that a dispatch can refuse to bind an
 * immutable tensor where a kernel could change it. Every place that creates
 * a pipeline registers its WGSL source here; a pipeline that was never
 * registered counts as writing every binding.
 *
 * @module
 */

const writable = new WeakMap<GPUComputePipeline, ReadonlySet<number>>();

// `@binding(i)` followed, within the same declaration, by `var<storage, read_write>`.
const READ_WRITE = /@binding\(\s*(\d+)\s*\)[^;]*?var\s*<\s*storage\s*,\s*read_write\s*>/g;

/** Records the bindings `code` declares read_write (any entry point: conservative). */
export function registerWritableBindings(pipeline: GPUComputePipeline, code: string): void {
  const found = new Set<number>();
  for (const match of code.matchAll(READ_WRITE)) found.add(Number(match[1]));
  writable.set(pipeline, found);
}

/** Whether `pipeline` may write binding `index` (true when its source was never registered). */
export function mayWriteBinding(pipeline: GPUComputePipeline, index: number): boolean {
  return writable.get(pipeline)?.has(index) ?? true;
}
