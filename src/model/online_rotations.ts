/**
 * A decoder layer's online transforms (R3, R4, QuIP's u/v; see
 * src/transform/online_transforms.ts) on the engine: type `hadamard` runs
 * the fast Walsh–Hadamard transform (O(n log n) per run of n, as vLLM does;
 * the stored Sylvester matrix is not even read); `random-hadamard` whose
 * stored matrix is llmc's `(S_m ⊗ H_K) · diag(signs)` (checked entry by
 * entry at load) runs factored: the signs, a `[·, K] × [K, K]` product and
 * the strided Walsh–Hadamard butterflies in one engine op, O(n (log m + K))
 * per run; the other types (and matrices of another construction) a
 * block-diagonal product with the stored matrix (one `[rows·c/n, n] × [n, n]`
 * matmul; a randomized Hadamard, `W[perm][:, perm]` with its stored `perm`,
 * runs that way too). Activations stay float32: the scheme's `precision` is the
 * stored matrix's dtype; llmc applies it at the engine's float32.
 *
 * @module
 */

import type { Engine, ProductTransform, Tensor } from "../engine/engine.ts";
import type { OnlineApplication, OnlineLocation } from "../transform/online_transforms.ts";
import { hadamardFactors, isPowerOfTwo } from "../transform/hadamard.ts";
import { TransformError } from "../transform/errors.ts";
import { checkPermutation, permuted } from "../transform/transform_matrix.ts";
import { DecoderModelError } from "./model_error.ts";
import { releaseRead, type WeightSource } from "./weight_source.ts";

/**
 * One loaded transform: a Walsh–Hadamard size, an uploaded `[n, n]` matmul
 * weight, or a random-hadamard matrix's factors.
 */
interface Loaded {
  /** Identifies equal transforms, so modules sharing one share the rotated activation. */
  readonly key: string;
  readonly size: number;
  /** The matmul weight Mᵀ (so that `matmul(x, w) = x · M`), normalization folded in; null for FWHT. */
  readonly weight: Tensor | null;
  /** The host values that identify it (weight or signs), to tell equal ones apart from hash collisions. */
  readonly values?: Float32Array;
  /** A stored random-hadamard `W = (S_m ⊗ H_K) · diag(signs)`, applied factored. */
  readonly factored?: Factored;
}

/** `x · M` for M = W/√n (or Wᵀ/√n) with `W = (S_m ⊗ H_K) · D`: O(n (log m + K)) per run. */
interface Factored {
  /** K. */
  readonly k: number;
  /** The K × K step's matmul weight (H_Kᵀ, or H_K for Wᵀ), null when K = 1. */
  readonly base: Tensor | null;
  /** D/√n, `[n]`. */
  readonly signs: Tensor;
  /** M = Wᵀ/√n = D·(S_m ⊗ H_Kᵀ)/√n (the signs come first). */
  readonly inverse: boolean;
}

/**
 * The online transforms of one decoder layer, uploaded.
 *
 * @example
 * ```ts ignore
 * const online = await OnlineRotations.load(engine, source, plan.get(0) ?? []);
 * const x2 = online.apply("model.layers.0.mlp.down_proj", "input", x); // null: none there
 * online.destroy();
 * ```
 */
export class OnlineRotations {
  private constructor(
    private readonly engine: Engine,
    private readonly byPlace: Map<string, Loaded[]>,
    private readonly owned: Tensor[],
  ) {}

  /**
   * Reads and uploads a layer's online transforms.
   *
   * @param engine the engine
   * @param source the checkpoint (the stored matrices are read from it)
   * @param applications the layer's online applications
   * @returns the loaded transforms
   * @throws {DecoderModelError} naming a missing or misshapen stored matrix
   */
  static async load(
    engine: Engine,
    source: WeightSource,
    applications: readonly OnlineApplication[],
  ): Promise<OnlineRotations> {
    const byPlace = new Map<string, Loaded[]>();
    const owned: Tensor[] = [];
    const shared = new Map<string, Loaded>();
    try {
      for (const a of applications) {
        const loaded = await loadOne(engine, source, a, shared, owned);
        const place = `${a.module}:${a.location}`;
        byPlace.set(place, [...(byPlace.get(place) ?? []), loaded]);
      }
    } catch (e) {
      for (const t of owned) t.destroy();
      throw e;
    }
    return new OnlineRotations(engine, byPlace, owned);
  }

  /**
   * An identity for the transforms at a place: equal keys, equal results.
   *
   * @param module the full module name
   * @param location where
   * @returns "" when nothing applies there
   */
  keyOf(module: string, location: OnlineLocation): string {
    return (this.byPlace.get(`${module}:${location}`) ?? []).map((l) => l.key).join("+");
  }

  /**
   * Applies the transforms at a place to `x` `[rows, cols]`.
   *
   * @param module the full module name
   * @param location where
   * @param x the activation; not modified
   * @returns a new tensor of x's shape (the caller owns it), or null when nothing applies
   */
  apply(module: string, location: OnlineLocation, x: Tensor): Tensor | null {
    const list = this.byPlace.get(`${module}:${location}`);
    if (list === undefined) return null;
    let cur = x;
    for (const t of list) {
      const next = this.#one(t, cur);
      if (cur !== x) cur.destroy();
      cur = next;
    }
    return cur;
  }

  /**
   * The transforms at a place as one {@link ProductTransform}, for an op that
   * runs it on a product it computes (`Engine.swiGlu`'s `after`): the same
   * `walshHadamard` that {@link apply} runs there.
   *
   * @param module the full module name
   * @param location where
   * @returns undefined when nothing applies there, null when what applies is
   *   not one Walsh–Hadamard transform (a dense product, or several)
   */
  productTransform(module: string, location: OnlineLocation): ProductTransform | null | undefined {
    const list = this.byPlace.get(`${module}:${location}`);
    if (list === undefined) return undefined;
    return list.length === 1 ? walshHadamardOf(list[0]) : null;
  }

  #one(t: Loaded, x: Tensor): Tensor {
    const e = this.engine;
    const w = walshHadamardOf(t);
    if (w !== null) return e.walshHadamard(x, w.n, w.scale, w.stride, w.signs, w.base);
    // Not a Walsh–Hadamard transform: a stored dense matrix, uploaded.
    const weight = t.weight!;
    const cols = x.shape[x.shape.length - 1];
    if (cols === t.size) return e.matmul(x, weight);
    const blocks = e.matmul(e.reshape(x, [x.numel / t.size, t.size]), weight);
    const out = e.copy(e.reshape(blocks, [...x.shape]));
    blocks.destroy();
    return out;
  }

  /** Releases the uploaded matrices. */
  destroy(): void {
    for (const t of this.owned) t.destroy();
  }
}

/**
 * A loaded transform as one `walshHadamard`, or null for a dense product:
 * type `hadamard` the plain transform scaled by 1/√n; a factored
 * random-hadamard its signs (times 1/√n) before (inverse) or after,
 * x·(I ⊗ H_K) and the strided butterflies `S_m ⊗ I_K` (the CPU engine runs
 * them on each run of n while it is in its kernels' memory; the products of
 * a `[numel/K, K]` matmul and `mul`, bit for bit).
 */
function walshHadamardOf(t: Loaded): ProductTransform | null {
  const f = t.factored;
  if (f !== undefined) {
    const signs = { values: f.signs, first: f.inverse };
    return { n: t.size, scale: 1, stride: f.k, signs, base: f.base ?? undefined };
  }
  return t.weight === null ? { n: t.size, scale: 1 / Math.sqrt(t.size), stride: 1 } : null;
}

async function loadOne(
  engine: Engine,
  source: WeightSource,
  a: OnlineApplication,
  shared: Map<string, Loaded>,
  owned: Tensor[],
): Promise<Loaded> {
  const n = a.size;
  if (a.type === "hadamard" && a.perm === null) {
    if (!isPowerOfTwo(n)) {
      throw new DecoderModelError(
        `${a.tensor}: Cannot construct deterministic hadamard of size != 2^n: ${n}`,
      );
    }
    // vLLM too ignores the stored values of type hadamard (Sylvester's, symmetric).
    return { key: `fwht${n}`, size: n, weight: null };
  }
  // A checkpoint may keep one copy of a group's shared matrix (tied parameters).
  const name = [a.tensor, ...(a.sameMatrix ?? [])].find((t) => source.has(t));
  if (name === undefined) {
    throw new DecoderModelError(
      `${a.tensor}: the ${a.group} ${a.location} transform of ${a.module} is missing from the checkpoint`,
    );
  }
  let read: Float32Array | null = null;
  const readStored = async () => {
    const r = await source.readF32(name);
    if (r.length !== n * n) {
      throw new DecoderModelError(`${name}: expected [${n}, ${n}], got ${r.length} values`);
    }
    return r;
  };
  if (a.type === "random-hadamard" && a.perm === null) {
    // Every forward loads its layer's transforms: the n² check of a stored matrix's
    // construction runs once per source, and its factors are kept.
    const known = FACTORS.get(source) ?? new Map<string, HostFactors | null>();
    FACTORS.set(source, known);
    const key = `${name}:${a.inverse}`;
    let factors = known.get(key);
    if (factors === undefined) {
      read = await readStored();
      factors = factorsOf(read, n, a.inverse);
      known.set(key, factors);
    }
    if (factors !== null) {
      if (read !== null) releaseRead(source, read);
      return uploadFactored(engine, factors, n, a.inverse, shared, owned);
    }
  }
  read ??= await readStored();
  const stored = a.perm === null ? read : permuted(read, n, await readPermutation(source, a, name));
  if (stored !== read) releaseRead(source, read);
  // x · M with M = W/√n or Wᵀ/√n (Hadamard types), W (random-matrix); matmul wants Mᵀ.
  const hadamard = a.type !== "random-matrix";
  const s = hadamard ? 1 / Math.sqrt(n) : 1;
  const transposeForMatmul = !(hadamard && a.inverse);
  const w = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      w[i * n + j] = (transposeForMatmul ? stored[j * n + i] : stored[i * n + j]) * s;
    }
  }
  releaseRead(source, stored);
  // Equal matrices (every module of a non-randomized group) share one upload and key.
  const hash = hashValues(w);
  for (let i = 0;; i++) {
    const key = `${hash}#${i}`;
    const known = shared.get(key);
    if (known === undefined) {
      const weight = engine.upload(w, [n, n]);
      owned.push(weight);
      const loaded = { key, size: n, weight, values: w };
      shared.set(key, loaded);
      return loaded;
    }
    if (known.values!.every((v, j) => v === w[j])) return known;
  }
}

/**
 * A stored random-hadamard matrix as `(S_m ⊗ H_K) · diag(signs)` with llmc's
 * factors of n (`hadamardFactors`, Sloane's K), uploaded as the K × K step's
 * weight and the signs; null when the stored values are not of that form
 * (another construction's matrix), which then runs as the dense product.
 */
/** A stored random-hadamard matrix's factors on the host (see {@link Factored}). */
interface HostFactors {
  /** K. */
  readonly k: number;
  /** H_Kᵀ (H_K for Wᵀ), `[K, K]`; null when K = 1. */
  readonly base: Float32Array | null;
  /** D/√n, `[n]`. */
  readonly scaledSigns: Float32Array;
}

/**
 * Per weight source, what {@link factorsOf} found for each stored matrix
 * (`name:inverse`; null: not llmc's construction). The stored matrices of a
 * checkpoint do not change while it is open.
 */
const FACTORS = new WeakMap<WeightSource, Map<string, HostFactors | null>>();

/**
 * The factors of a stored `[n, n]` random-hadamard matrix when it is llmc's
 * `(S_m ⊗ H_K) · diag(signs)`, checked entry by entry; null otherwise.
 */
function factorsOf(stored: Float32Array, n: number, inverse: boolean): HostFactors | null {
  let f;
  try {
    f = hadamardFactors(n);
  } catch (e) {
    if (e instanceof TransformError) return null;
    throw e;
  }
  const { base, baseSize: k } = f;
  const signs = new Float32Array(n);
  for (let j = 0; j < n; j++) signs[j] = stored[j] * base[j % k];
  // Sylvester's sign of each pair of K-blocks, from a table of the m parities.
  const m = n / k;
  const parity = Int8Array.from({ length: m }, (_, v) => popcountParity(v) ? -1 : 1);
  for (let i = 0; i < n; i++) {
    const bi = Math.floor(i / k);
    const row = (i % k) * k;
    for (let bj = 0, j = 0; bj < m; bj++) {
      const sylvester = parity[bi & bj];
      for (let c = 0; c < k; c++, j++) {
        if (stored[i * n + j] !== sylvester * base[row + c] * signs[j]) return null;
      }
    }
  }
  let w: Float32Array | null = null;
  if (k > 1) {
    w = new Float32Array(k * k);
    for (let r = 0; r < k; r++) {
      for (let c = 0; c < k; c++) w[r * k + c] = inverse ? base[r * k + c] : base[c * k + r];
    }
  }
  return { k, base: w, scaledSigns: signs.map((v) => v / Math.sqrt(n)) };
}

/** Uploads a random-hadamard matrix's factors (once per equal set of signs in a layer). */
function uploadFactored(
  engine: Engine,
  factors: HostFactors,
  n: number,
  inverse: boolean,
  shared: Map<string, Loaded>,
  owned: Tensor[],
): Loaded {
  const { k, scaledSigns } = factors;
  const hash = `rh${inverse ? "ᵀ" : ""}:${hashValues(scaledSigns)}`;
  for (let i = 0;; i++) {
    const key = `${hash}#${i}`;
    const known = shared.get(key);
    if (known !== undefined) {
      if (known.values!.every((v, j) => v === scaledSigns[j])) return known;
      continue;
    }
    const signsT = engine.upload(scaledSigns, [n]);
    owned.push(signsT);
    let baseT: Tensor | null = null;
    if (factors.base !== null) {
      baseT = engine.upload(factors.base, [k, k]);
      owned.push(baseT);
    }
    const factored = { k, base: baseT, signs: signsT, inverse };
    const loaded: Loaded = { key, size: n, weight: null, values: scaledSigns, factored };
    shared.set(key, loaded);
    return loaded;
  }
}

/** Whether v has an odd number of set bits (Sylvester's entry (a, b) is −1 when a & b does). */
function popcountParity(v: number): boolean {
  let odd = false;
  for (; v !== 0; v &= v - 1) odd = !odd;
  return odd;
}

/**
 * The stored permutation of a randomized application (`randomize: true`),
 * next to the matrix actually read (`matrix` may be a shared copy's).
 */
async function readPermutation(
  source: WeightSource,
  a: OnlineApplication,
  matrix: string,
): Promise<Float32Array> {
  const name = matrix.replace(/\.weight$/, ".perm");
  if (!source.has(name)) {
    throw new DecoderModelError(
      `${name}: the permutation of the ${a.group} ${a.location} transform of ${a.module} ` +
        "(transform_config randomize: true) is missing from the checkpoint",
    );
  }
  const perm = await source.readF32(name);
  try {
    checkPermutation(perm, a.size, name);
  } catch (e) {
    if (e instanceof TransformError) throw new DecoderModelError(e.message);
    throw e;
  }
  return perm;
}

/** A 64-bit FNV-style hash of float values (equal matrices share one upload and one rotated activation). */
function hashValues(v: Float32Array): string {
  const bits = new Uint32Array(v.buffer, v.byteOffset, v.length);
  let h1 = 0x811c9dc5, h2 = 0x01000193;
  for (let i = 0; i < bits.length; i++) {
    h1 = Math.imul(h1 ^ bits[i], 0x01000193);
    h2 = Math.imul(h2 ^ bits[i], 0x5bd1e995);
  }
  return `${v.length}:${(h1 >>> 0).toString(16)}${(h2 >>> 0).toString(16)}`;
}
