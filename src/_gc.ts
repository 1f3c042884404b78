/**
 * A full garbage collection on request, where the runtime allows one.
 *
 * The CPU engine's tensors and the cached activations are ArrayBuffers that
 * V8 frees only when a collection finds them dead, and it starts one by its
 * own heuristics (heap growth, external memory grown by some tens of MB),
 * not when a phase of the run ends. Between phases whose working sets differ
 * (a layer's calibration forwards, its quantization, the next layer) the
 * dead set of one phase then still sits beside the live set of the next, so
 * peak memory counts both. Collecting at those boundaries costs a few
 * milliseconds per layer.
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

/**
 * Runs a full garbage collection if the runtime lets us; otherwise nothing.
 *
 * @returns whether a collection ran
 * @example
 * ```ts
 * import { collectGarbage } from "./_gc.ts";
 * collectGarbage();
 * ```
 */
export function collectGarbage(): boolean {
  if (gc === undefined) {
    try {
      setFlagsFromString("--expose-gc");
      const f = runInNewContext("gc");
      gc = typeof f === "function" ? f as () => void : null;
    } catch {
      gc = null;
    }
  }
  gc?.();
  return gc !== null;
}
