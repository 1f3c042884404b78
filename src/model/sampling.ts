/**
 * Choosing the next token from a row of logits: greedy argmax, or sampling
 * with a temperature and nucleus (top-p) truncation.
 *
 * @module
 */

/**
 * The index of the largest logit; the first one on ties, like `torch.argmax`.
 *
 * @param logits one row of logits
 * @returns the greedy token id
 * @example
 * ```ts
 * import { argmax } from "./sampling.ts";
 * argmax(new Float32Array([0.1, 2, 2, -1])); // 1
 * ```
 */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/** How to pick tokens. */
export interface SamplingOptions {
  /** Softmax temperature; 0 (the default) means greedy. */
  temperature?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches topP; default 1. */
  topP?: number;
}

/**
 * Picks a token: greedy when the temperature is 0, otherwise samples from
 * softmax(logits / temperature) restricted to the top-p nucleus (as
 * transformers' TopPLogitsWarper: the most likely tokens whose cumulative
 * probability reaches top_p, at least one).
 *
 * @param logits one row of logits
 * @param options temperature and top-p
 * @param random uniform floats in [0, 1), e.g. `seededRandom(seed)`
 * @returns the chosen token id
 * @example
 * ```ts
 * import { sampleToken } from "./sampling.ts";
 * import { seededRandom } from "./seeded_random.ts";
 * sampleToken(new Float32Array([0, 5, 0]), { temperature: 0.7, topP: 0.9 }, seededRandom(1)); // 1
 * ```
 */
export function sampleToken(
  logits: ArrayLike<number>,
  options: SamplingOptions,
  random: () => number,
): number {
  const temperature = options.temperature ?? 0;
  if (!(temperature > 0)) return argmax(logits);
  const topP = options.topP ?? 1;
  const n = logits.length;
  let max = -Infinity;
  for (let i = 0; i < n; i++) max = Math.max(max, logits[i]);
  const probs = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += probs[i] = Math.exp((logits[i] - max) / temperature);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => probs[b] - probs[a]);
  let kept = 0;
  let mass = 0;
  while (kept < n && (kept === 0 || mass / sum < topP)) mass += probs[order[kept++]];
  let r = random() * mass;
  for (let i = 0; i < kept; i++) {
    r -= probs[order[i]];
    if (r < 0) return order[i];
  }
  return order[kept - 1];
}
