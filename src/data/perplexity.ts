/**
 * Perplexity of a model over fixed-length windows, computed on the GPU.
 *
 * @module
 */

import type { DecoderModel } from "../model/decoder_model.ts";
import { logSoftmaxNll } from "../model/reference_ops.ts";
import type { LinearInputTransform } from "../model/taps.ts";
import { DatasetError } from "./dataset_error.ts";

/** Result of {@link perplexity}. */
export interface PerplexityResult {
  /** exp(nllSum / tokens). */
  ppl: number;
  /** Predicted tokens: every token after the first of each window. */
  tokens: number;
  /** Sum of the per-token negative log-likelihoods (nats). */
  nllSum: number;
}

/** Options of {@link perplexity}. */
export interface PerplexityOptions {
  /**
   * Tokens per forward pass; windows are batched up to this many (at least
   * one window per pass). Default 4096.
   */
  tokensPerBatch?: number;
  /** Called after each batch with the windows done so far. */
  onProgress?: (windowsDone: number, windowsTotal: number) => void;
  /**
   * Transforms Linear inputs in every layer (simulates the activation
   * quantization a serving engine applies); the forward then runs layer by
   * layer and the logits are read back.
   */
  transformLinearInput?: LinearInputTransform;
}

/**
 * Perplexity over equal-length windows: each window is one sequence, every
 * token after its first is predicted, and the mean NLL over all of them is
 * exponentiated (the convention of shared/golden/README.md).
 *
 * @param model the decoder
 * @param windows token windows, all the same length (>= 2)
 * @param options batching and progress
 * @returns perplexity, predicted token count and the NLL sum
 * @throws {DatasetError} when there are no windows or their lengths differ
 * @example
 * ```ts ignore
 * import { perplexity } from "./perplexity.ts";
 * const { ppl, tokens } = await perplexity(model, windows);
 * ```
 */
export async function perplexity(
  model: DecoderModel,
  windows: readonly Int32Array[],
  options: PerplexityOptions = {},
): Promise<PerplexityResult> {
  if (windows.length === 0) throw new DatasetError("perplexity: no windows to evaluate");
  const seqLen = windows[0].length;
  if (seqLen < 2) throw new DatasetError(`perplexity: windows need >= 2 tokens, got ${seqLen}`);
  for (let i = 0; i < windows.length; i++) {
    if (windows[i].length !== seqLen) {
      throw new DatasetError(
        `perplexity: window ${i} has ${windows[i].length} tokens; expected ${seqLen} like window 0`,
      );
    }
  }
  const perBatch = Math.max(1, Math.floor((options.tokensPerBatch ?? 4096) / seqLen));
  let nllSum = 0;
  let tokens = 0;
  for (let w0 = 0; w0 < windows.length; w0 += perBatch) {
    const group = windows.slice(w0, w0 + perBatch);
    const ids = new Int32Array(group.length * seqLen);
    group.forEach((w, i) => ids.set(w, i * seqLen));
    const nll = options.transformLinearInput === undefined
      ? await model.nll(ids, group.length)
      : await transformedNll(model, ids, group.length, options.transformLinearInput);
    for (const x of nll) nllSum += x;
    tokens += nll.length;
    options.onProgress?.(w0 + group.length, windows.length);
  }
  return { ppl: Math.exp(nllSum / tokens), tokens, nllSum };
}

/** NLL of every predicted token, with Linear inputs transformed in every layer. */
async function transformedNll(
  model: DecoderModel,
  ids: Int32Array,
  sequences: number,
  transformLinearInput: LinearInputTransform,
): Promise<Float64Array> {
  const seqLen = ids.length / sequences;
  let hidden = await model.embed(ids, sequences, seqLen);
  try {
    for (let k = 0; k < model.numLayers; k++) {
      const next = await model.runLayer(k, hidden, { transformLinearInput });
      hidden.destroy();
      hidden = next;
    }
    const logits = await model.logits(hidden);
    const targets = new Int32Array(ids.length);
    for (let r = 0; r < ids.length; r++) targets[r] = r % seqLen === seqLen - 1 ? -1 : ids[r + 1];
    const per = logSoftmaxNll(logits, targets, model.config.vocabSize);
    const out = new Float64Array(sequences * (seqLen - 1));
    let n = 0;
    for (let r = 0; r < per.length; r++) if (targets[r] >= 0) out[n++] = per[r];
    return out;
  } finally {
    hidden.destroy();
  }
}
