/**
 * Workgroup-count arithmetic: how many workgroups cover n items, and how to
 * fold a 1-D count that exceeds maxComputeWorkgroupsPerDimension into 2-D.
 *
 * A folded kernel recovers its linear workgroup index as
 * `wid.x + wid.y * nwg.x` (with `@builtin(num_workgroups) nwg`) and skips
 * indices past the end, since x·y may exceed the count.
 *
 * @module
 */

import type { Gpu } from "./device.ts";
import { ShapeError } from "./errors.ts";

/**
 * The number of workgroups of `size` invocations that cover `n` items.
 *
 * @param n items to cover
 * @param size items per workgroup
 * @returns ceil(n / size)
 *
 * @example
 * ```ts
 * import { workgroupsFor } from "./workgroups.ts";
 * console.assert(workgroupsFor(1000, 256) === 4);
 * ```
 */
export function workgroupsFor(n: number, size: number): number {
  return Math.ceil(n / size);
}

/**
 * A 1-D workgroup count as [x, y] with x ≤ maxComputeWorkgroupsPerDimension.
 *
 * @param gpu the device whose limit applies
 * @param count total workgroups needed
 * @returns [x, y] with x·y ≥ count (y = 1 when count fits one dimension)
 * @throws {ShapeError} when even x·y cannot reach count
 *
 * @example
 * ```ts
 * import { foldWorkgroups } from "./workgroups.ts";
 * import { getGpu } from "./device.ts";
 * const [x, y] = foldWorkgroups(await getGpu(), 100_000);
 * console.assert(x * y >= 100_000);
 * ```
 */
export function foldWorkgroups(gpu: Gpu, count: number): [number, number] {
  return foldCount(count, gpu.limits.maxComputeWorkgroupsPerDimension);
}

/**
 * `foldWorkgroups` for an explicit per-dimension limit (testable without a GPU).
 *
 * @param count total workgroups needed
 * @param maxPerDimension the device's maxComputeWorkgroupsPerDimension
 * @returns [x, y] with x ≤ maxPerDimension, y ≤ maxPerDimension and x·y ≥ count
 *
 * @example
 * ```ts
 * import { foldCount } from "./workgroups.ts";
 * console.assert(foldCount(10, 4).join() === "4,3");
 * ```
 */
export function foldCount(count: number, maxPerDimension: number): [number, number] {
  if (count <= maxPerDimension) return [count, 1];
  const y = Math.ceil(count / maxPerDimension);
  if (y > maxPerDimension) {
    throw new ShapeError(`${count} workgroups exceed ${maxPerDimension}² (one 2-D dispatch)`);
  }
  // Balance x over the y rows so the overshoot x·y - count stays below y.
  return [Math.ceil(count / y), y];
}
