/**
 * A full garbage collection on request, where the runtime allows one.
 *
 * The CPU engine's tensors and the cached activations are ArrayBuffers that
 * V8 frees only when a collection finds them dead, and it starts one by its
 * own heuristics (heap growth, external memory grown by some tens of MB),
 * not when a phase of the run ends. Between phases whose working sets differ
 * (a layer's calibration forwards, its quantization, the next layer) the
 * dead set of one phase then still sits beside the live set of the next, so
 * peak memory counts both.
 *
 * A collection is not cheap: Deno's `gc` is V8's low-memory notification (two
 * memory-reducing full mark-compacts, 15–40 ms on the 2-core development
 * machine, more under load), whatever the arguments. So a boundary collects
 * only when the bytes in use (V8's `external` ArrayBuffer memory plus its JS
 * heap) grew by more than {@link DEFAULT_MIN_GROWTH_BYTES} since the last
 * collection: less dead data than that cannot raise the peak by more, and the
 * CPU engine's pooled arrays, the bulk of a forward's dead set, are freed at
 * once by `Engine.trim()`.
 *
 * V8 exposes `gc()` only with `--expose-gc`; the flag can be set at run time
 * through `node:v8`, after which a new `node:vm` context sees the function
 * (Node's documented pattern). Where that fails, `collectGarbage` does
 * nothing.
 *
 * @module
 */

import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

let gc: (() => void) | null | undefined;
/** ArrayBuffer and JS heap bytes in use after the last collection (0 before the first). */
let usedAfterLast = 0;

/** Growth of the bytes in use since the last collection below which none runs: 8 MiB. */
export const DEFAULT_MIN_GROWTH_BYTES = 8 * 2 ** 20;

/** Options of {@link collectGarbage}. */
export interface CollectGarbageOptions {
  /**
   * Collect only when the bytes in use (ArrayBuffers and the JS heap) grew by
   * more than this since the last collection (default {@link DEFAULT_MIN_GROWTH_BYTES}; 0: always).
   */
  readonly minGrowthBytes?: number;
}

/**
 * Runs a full garbage collection if the runtime lets us and enough memory
 * may have died since the last one; otherwise nothing.
 *
 * @param options when to skip the collection
 * @returns whether a collection ran
 * @example
 * ```ts
 * import { collectGarbage } from "./_gc.ts";
 * collectGarbage(); // only when memory in use grew by more than 8 MiB since the last one
 * collectGarbage({ minGrowthBytes: 0 }); // always
 * ```
 */
export function collectGarbage(options: CollectGarbageOptions = {}): boolean {
  if (gc === undefined) {
    try {
      setFlagsFromString("--expose-gc");
      const f = runInNewContext("gc");
      gc = typeof f === "function" ? f as () => void : null;
    } catch {
      gc = null;
    }
  }
  if (gc === null) return false;
  const minGrowth = options.minGrowthBytes ?? DEFAULT_MIN_GROWTH_BYTES;
  const used = usedBytes();
  // V8's own collections since the last one count as a lower baseline.
  usedAfterLast = Math.min(usedAfterLast, used);
  if (minGrowth > 0 && used - usedAfterLast <= minGrowth) return false;
  gc();
  usedAfterLast = usedBytes();
  return true;
}

/** ArrayBuffer bytes plus the JS heap's used bytes (live or not yet collected). */
function usedBytes(): number {
  const m = Deno.memoryUsage();
  return m.external + m.heapUsed;
}
