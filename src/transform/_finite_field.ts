/**
 * The quadratic character of a finite field GF(p^k), as Paley's Hadamard
 * constructions need it. Elements are numbered 0 … q−1 by their base-p
 * digits, which are the coefficients of a polynomial over GF(p) reduced
 * modulo a monic irreducible polynomial of degree k.
 *
 * @module
 */

/**
 * `[p, k]` when q = p^k for a prime p and k ≥ 1, else null.
 *
 * @param q the candidate field size
 * @returns the prime and the exponent, or null
 * @example
 * ```ts
 * import { primePower } from "./_finite_field.ts";
 * primePower(27); // [3, 3]
 * ```
 */
export function primePower(q: number): [number, number] | null {
  if (!Number.isInteger(q) || q < 2) return null;
  let p = 2;
  while (p * p <= q && q % p !== 0) p++;
  if (q % p !== 0) p = q;
  let k = 0;
  let r = q;
  while (r % p === 0) {
    r /= p;
    k++;
  }
  return r === 1 ? [p, k] : null;
}

/** Polynomial (coefficients, lowest first) remainder modulo a monic divisor over GF(p). */
function polyMod(a: number[], m: number[], p: number): number[] {
  const r = a.slice();
  const d = m.length - 1;
  for (let i = r.length - 1; i >= d; i--) {
    const c = r[i] % p;
    if (c === 0) continue;
    for (let j = 0; j <= d; j++) r[i - d + j] = (((r[i - d + j] - c * m[j]) % p) + p) % p;
  }
  return r.slice(0, d).map((c) => ((c % p) + p) % p);
}

function digits(x: number, p: number, k: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < k; i++) {
    out.push(x % p);
    x = Math.floor(x / p);
  }
  return out;
}

/** The first monic irreducible polynomial of degree k over GF(p), by trial division. */
function irreducible(p: number, k: number): number[] {
  if (k === 1) return [0, 1];
  for (let low = 0; low < p ** k; low++) {
    const f = [...digits(low, p, k), 1];
    let reducible = false;
    for (let d = 1; d <= Math.floor(k / 2) && !reducible; d++) {
      for (let g = 0; g < p ** d && !reducible; g++) {
        const r = polyMod(f, [...digits(g, p, d), 1], p);
        reducible = r.every((c) => c === 0);
      }
    }
    if (!reducible) return f;
  }
  throw new Error(`no irreducible polynomial of degree ${k} over GF(${p})`); // cannot happen
}

/**
 * The field GF(q) as the Paley constructions use it: element subtraction and
 * the quadratic character χ (0 at 0, 1 on non-zero squares, −1 otherwise).
 *
 * @example
 * ```ts
 * import { FiniteField } from "./_finite_field.ts";
 * const f = new FiniteField(7);
 * f.chi(f.sub(3, 1)); // χ(2) = 1, since 3² = 2 mod 7
 * ```
 */
export class FiniteField {
  /** The number of elements. */
  readonly q: number;
  readonly #p: number;
  readonly #k: number;
  readonly #chi: Int8Array;

  /** @param q a prime power */
  constructor(q: number) {
    const pk = primePower(q);
    if (pk === null) throw new RangeError(`GF(${q}): ${q} is not a prime power`);
    [this.#p, this.#k] = pk;
    this.q = q;
    const f = irreducible(this.#p, this.#k);
    const chi = new Int8Array(q).fill(-1);
    chi[0] = 0;
    for (let a = 1; a < q; a++) {
      const d = digits(a, this.#p, this.#k);
      const sq = new Array(2 * this.#k - 1).fill(0);
      for (let i = 0; i < this.#k; i++) {
        for (let j = 0; j < this.#k; j++) sq[i + j] += d[i] * d[j];
      }
      const r = polyMod(sq, f, this.#p);
      chi[r.reduceRight((acc, c) => acc * this.#p + c, 0)] = 1;
    }
    this.#chi = chi;
  }

  /**
   * a − b.
   *
   * @param a an element
   * @param b an element
   * @returns their difference
   */
  sub(a: number, b: number): number {
    const p = this.#p;
    let out = 0;
    let scale = 1;
    for (let i = 0; i < this.#k; i++) {
      out += ((((a % p) - (b % p)) % p + p) % p) * scale;
      a = Math.floor(a / p);
      b = Math.floor(b / p);
      scale *= p;
    }
    return out;
  }

  /**
   * The quadratic character.
   *
   * @param a an element
   * @returns 0, 1 or −1
   */
  chi(a: number): number {
    return this.#chi[a];
  }
}
