/**
 * A small seeded pseudo-random generator, so sampling and shuffles are
 * reproducible across runs and machines.
 *
 * @module
 */

/**
 * mulberry32: a 32-bit-state generator with a full 2³² period, ample for
 * sampling tokens and shuffling datasets (not for cryptography).
 *
 * @param seed any integer; only its low 32 bits matter
 * @returns a function returning uniform floats in [0, 1)
 * @example
 * ```ts
 * import { seededRandom } from "./seeded_random.ts";
 * const random = seededRandom(42);
 * const x = random(); // the same on every run
 * ```
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Fisher–Yates shuffle into a new array.
 *
 * @param items the items
 * @param random a generator of floats in [0, 1), e.g. {@link seededRandom}
 * @returns a shuffled copy
 * @example
 * ```ts
 * import { seededRandom, shuffled } from "./seeded_random.ts";
 * shuffled([1, 2, 3, 4], seededRandom(0)).length; // 4
 * ```
 */
export function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}
