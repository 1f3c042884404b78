/**
 * Per-sample minima and maxima of activations, reduced on the GPU while a
 * layer's batch is being recorded, so only `samples × slots` numbers come
 * back instead of the activations. One sample per observation reproduces
 * upstream's batch-size-1 observer updates even though llmc packs several
 * samples into one forward.
 *
 * Layouts (rows are `sequences · seqLen` tokens, sample-major):
 * - tensor strategy on `[rows, C]`: one slot per sample;
 * - attn_head strategy on `[rows, heads · headDim]`: one slot per head.
 *
 * @module
 */

import type { Engine, Tensor } from "../engine/engine.ts";
import type { MinMax } from "../quant/calibration_view.ts";

/** Reductions recorded for one tensor of one forward, not yet read back. */
export interface PendingSampleMinMax {
  /** Minima, `[slots · sequences]` slot-major (`[sequences]` for one slot). */
  readonly min: Tensor;
  /** Maxima, same layout. */
  readonly max: Tensor;
  /** Samples in the forward. */
  readonly sequences: number;
  /** Qparam slots per sample (1 for tensor, heads for attn_head). */
  readonly slots: number;
}

function perSample(
  engine: Engine,
  perToken: Tensor,
  sequences: number,
  seqLen: number,
  op: "min" | "max",
) {
  const out = engine.reduceRows(engine.reshape(perToken, [sequences, seqLen]), op);
  perToken.destroy();
  return out;
}

/**
 * Records per-sample min and max over all tokens and features of `x`
 * (tensor-strategy statistics: upstream's `(b·s, 1, h)` view, one call per sample).
 *
 * @param engine the layer's engine (ops are recorded there)
 * @param x activations `[sequences · seqLen, C]` (not modified)
 * @param sequences samples in `x`
 * @param seqLen tokens per sample
 * @returns the pending reductions
 * @example
 * ```ts ignore
 * const p = recordTensorMinMax(tap.engine, tap.x, tap.sequences, tap.seqLen);
 * ```
 */
export function recordTensorMinMax(
  engine: Engine,
  x: Tensor,
  sequences: number,
  seqLen: number,
): PendingSampleMinMax {
  const cols = x.numel / (sequences * seqLen);
  const rows = engine.reshape(x, [sequences * seqLen, cols]);
  const perToken = engine.reduceRowsMinMax(rows);
  return {
    min: perSample(engine, perToken.min, sequences, seqLen, "min"),
    max: perSample(engine, perToken.max, sequences, seqLen, "max"),
    sequences,
    slots: 1,
  };
}

/**
 * Records per-sample, per-head min and max of attention states
 * (attn_head statistics: upstream's `(b·s, heads, 1, 1, d)` view).
 *
 * @param engine the layer's engine (ops are recorded there)
 * @param x states `[sequences · seqLen, heads · headDim]` (not modified)
 * @param sequences samples in `x`
 * @param seqLen tokens per sample
 * @param heads heads in `x`
 * @returns the pending reductions (slot-major: head h of sample b at `h · sequences + b`)
 * @example
 * ```ts ignore
 * const p = recordHeadMinMax(tap.engine, tap.k, tap.sequences, tap.seqLen, tap.kvHeads);
 * ```
 */
export function recordHeadMinMax(
  engine: Engine,
  x: Tensor,
  sequences: number,
  seqLen: number,
  heads: number,
): PendingSampleMinMax {
  const rows = sequences * seqLen;
  const headDim = x.numel / (rows * heads);
  const perTokenHead = engine.reduceRowsMinMax(engine.reshape(x, [rows * heads, headDim]));
  const reduce = (perToken: Tensor, op: "min" | "max") => {
    const headMajor = engine.transpose(engine.reshape(perToken, [rows, heads]));
    perToken.destroy();
    const out = engine.reduceRows(engine.reshape(headMajor, [heads * sequences, seqLen]), op);
    headMajor.destroy();
    return out;
  };
  return {
    min: reduce(perTokenHead.min, "min"),
    max: reduce(perTokenHead.max, "max"),
    sequences,
    slots: heads,
  };
}

/**
 * Reads pending reductions back with one GPU round trip and splits them
 * into one observation per sample.
 *
 * @param engine the engine they were recorded on
 * @param pending reductions, in any order
 * @returns for each pending entry, its samples' per-slot min/max in sample order
 * @example
 * ```ts ignore
 * const [perSample] = await readSampleMinMax(engine, [p]);
 * perSample[0].max; // sample 0's max per slot
 * ```
 */
export async function readSampleMinMax(
  engine: Engine,
  pending: readonly PendingSampleMinMax[],
): Promise<MinMax[][]> {
  const host = await engine.read(pending.flatMap((p) => [p.min, p.max])) as Float32Array[];
  for (const p of pending) {
    p.min.destroy();
    p.max.destroy();
  }
  return pending.map((p, j) => {
    const lo = host[2 * j];
    const hi = host[2 * j + 1];
    const out: MinMax[] = [];
    for (let b = 0; b < p.sequences; b++) {
      const min = new Float32Array(p.slots);
      const max = new Float32Array(p.slots);
      for (let s = 0; s < p.slots; s++) {
        min[s] = lo[s * p.sequences + b];
        max[s] = hi[s * p.sequences + b];
      }
      out.push({ min, max });
    }
    return out;
  });
}
