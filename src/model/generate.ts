/**
 * Autoregressive text generation with a {@link DecoderModel}.
 *
 * @module
 */

import type { DecoderModel } from "./decoder_model.ts";
import { DecoderModelError } from "./model_error.ts";
import { sampleToken, type SamplingOptions } from "./sampling.ts";
import { seededRandom } from "./seeded_random.ts";

/** Options of {@link generate}. */
export interface GenerateOptions extends SamplingOptions {
  /** How many tokens to append. */
  maxNewTokens: number;
  /** Seed of the sampler (ignored when greedy); default 0. */
  seed?: number;
  /** Stop after emitting one of these ids (default: none, so EOS is ignored). */
  stopIds?: readonly number[];
  /** Called with each new token as soon as it is chosen. */
  onToken?: (id: number) => void;
}

/**
 * Appends up to `maxNewTokens` tokens to `prompt`, greedily by default. Each
 * step runs the full forward pass over the sequence so far (no KV cache: the
 * layer-wise model is built for calibration, and this keeps generation a
 * plain use of it). Generation stops early at a stop id or when the sequence
 * reaches max_position_embeddings.
 *
 * @param model the decoder
 * @param prompt the prompt's ids (usually starting with BOS)
 * @param options length, sampling, seed, stop ids, streaming callback
 * @returns the prompt followed by the generated ids
 * @throws {DecoderModelError} for an empty prompt or a bad maxNewTokens
 * @example
 * ```ts ignore
 * import { generate } from "./generate.ts";
 * const ids = await generate(model, [1], { maxNewTokens: 64 });
 * ```
 */
export async function generate(
  model: DecoderModel,
  prompt: readonly number[],
  options: GenerateOptions,
): Promise<number[]> {
  if (prompt.length === 0) throw new DecoderModelError("generate: the prompt has no tokens");
  if (!Number.isInteger(options.maxNewTokens) || options.maxNewTokens < 0) {
    throw new DecoderModelError(
      `generate: maxNewTokens must be a non-negative integer, got ${options.maxNewTokens}`,
    );
  }
  const random = seededRandom(options.seed ?? 0);
  const stop = new Set(options.stopIds ?? []);
  const limit = model.config.maxPositionEmbeddings;
  const V = model.config.vocabSize;
  const ids = [...prompt];
  for (let step = 0; step < options.maxNewTokens && ids.length < limit; step++) {
    const logits = await model.forward(Int32Array.from(ids));
    const last = logits.subarray((ids.length - 1) * V, ids.length * V);
    const next = sampleToken(last, options, random);
    ids.push(next);
    options.onToken?.(next);
    if (stop.has(next)) break;
  }
  return ids;
}
