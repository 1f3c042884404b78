/**
 * Calibration samples grouped into GPU forwards. Upstream feeds one sample
 * per forward (`batch_size` 1), and its observers update once per forward;
 * llmc packs several equal-length samples into one `runLayer` call to save
 * GPU round trips, and keeps upstream's per-sample semantics by reducing
 * statistics per sample (see sample_statistics.ts).
 *
 * @module
 */

import { LlmcError } from "../errors.ts";

/** Samples that cannot be calibrated on (empty, or shorter than one token). */
export class CalibrationDataError extends LlmcError {}

/** Equal-length samples run through the model in one forward. */
export interface CalibrationBatch {
  /** Position of this batch in the run. */
  readonly index: number;
  /** Index of its first sample among all samples. */
  readonly firstSample: number;
  /** Number of samples (sequences) in it. */
  readonly sequences: number;
  /** Tokens per sample. */
  readonly seqLen: number;
  /** Token ids, [sequences · seqLen]. */
  readonly ids: Int32Array;
}

/**
 * Packs consecutive samples of equal length into batches of at most
 * `tokensPerForward` tokens (at least one sample each), keeping sample order.
 *
 * @param samples token sequences, in calibration order
 * @param tokensPerForward token budget of one forward
 * @returns the batches, covering every sample once, in order
 * @throws {CalibrationDataError} for no samples or an empty sample
 * @example
 * ```ts
 * import { calibrationBatches } from "./calibration_batches.ts";
 * const s = [new Int32Array(4), new Int32Array(4), new Int32Array(4), new Int32Array(2)];
 * calibrationBatches(s, 8).map((b) => [b.firstSample, b.sequences, b.seqLen]);
 * // [[0, 2, 4], [2, 1, 4], [3, 1, 2]]
 * ```
 */
export function calibrationBatches(
  samples: readonly Int32Array[],
  tokensPerForward: number,
): CalibrationBatch[] {
  if (samples.length === 0) throw new CalibrationDataError("no calibration samples");
  const out: CalibrationBatch[] = [];
  let i = 0;
  while (i < samples.length) {
    const seqLen = samples[i].length;
    if (seqLen < 1) throw new CalibrationDataError(`calibration sample ${i} has no tokens`);
    const most = Math.max(1, Math.floor(tokensPerForward / seqLen));
    let n = 1;
    while (n < most && i + n < samples.length && samples[i + n].length === seqLen) n++;
    const ids = new Int32Array(n * seqLen);
    for (let j = 0; j < n; j++) ids.set(samples[i + j], j * seqLen);
    out.push({ index: out.length, firstSample: i, sequences: n, seqLen, ids });
    i += n;
  }
  return out;
}
