import assert from "node:assert/strict";
import {
  hadamardConstruction,
  hadamardFactors,
  hadamardMatrix,
  isPowerOfTwo,
  sylvester,
} from "../../src/transform/hadamard.ts";
import { FiniteField, primePower } from "../../src/transform/_finite_field.ts";
import {
  blockTransformOf,
  buildTransform,
  normalizedMatrix,
  permutedTransform,
  randomOrthogonal,
  randomPermutation,
  TRANSFORM_TYPES,
} from "../../src/transform/transform_matrix.ts";
import {
  applyLeft,
  applyRight,
  fastWalshHadamard,
  multiplyLeft,
  multiplyRight,
} from "../../src/transform/block_apply.ts";
import { TransformError } from "../../src/transform/errors.ts";

/** max |M Mᵀ − c·I| over the entries. */
function gramError(m: ArrayLike<number>, n: number, c: number): number {
  let worst = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += m[i * n + k] * m[j * n + k];
      worst = Math.max(worst, Math.abs(s - (i === j ? c : 0)));
    }
  }
  return worst;
}

/** Sylvester by the recursive block definition, independently of sylvester(). */
function sylvesterByBlocks(n: number): number[][] {
  if (n === 1) return [[1]];
  const h = sylvesterByBlocks(n / 2);
  return [...h.map((r) => [...r, ...r]), ...h.map((r) => [...r, ...r.map((v) => -v)])];
}

Deno.test("sylvester equals the block recursion H2k = [[Hk, Hk], [Hk, -Hk]] exactly", () => {
  for (const n of [1, 2, 4, 8, 16, 64, 128]) {
    assert.deepEqual(Array.from(sylvester(n)), sylvesterByBlocks(n).flat(), `n = ${n}`);
  }
  assert.deepEqual(Array.from(sylvester(4)), [
    1,
    1,
    1,
    1,
    1,
    -1,
    1,
    -1,
    1,
    1,
    -1,
    -1,
    1,
    -1,
    -1,
    1,
  ]);
});

Deno.test("hadamard refuses sizes that are not powers of two, as upstream and vLLM do", () => {
  for (const n of [12, 172, 768, 3]) {
    assert.throws(() => sylvester(n), (e) =>
      e instanceof TransformError &&
      e.message.includes("Cannot construct deterministic hadamard of size != 2^n") &&
      e.message.includes(String(n)));
    assert.throws(() => buildTransform("hadamard", n, 0), TransformError);
  }
});

Deno.test("finite fields: prime powers and the quadratic character", () => {
  assert.deepEqual(primePower(243), [3, 5]);
  assert.deepEqual(primePower(49), [7, 2]);
  assert.equal(primePower(45), null);
  for (const q of [7, 9, 25, 27, 49]) {
    const f = new FiniteField(q);
    let squares = 0;
    for (let a = 1; a < q; a++) squares += f.chi(a) === 1 ? 1 : 0;
    assert.equal(squares, (q - 1) / 2, `GF(${q}) has (q-1)/2 non-zero squares`);
    // χ is multiplicative: for q ≡ 3 mod 4, χ(−1) = −1 so χ(b − a) = −χ(a − b).
    if (q % 4 === 3) { for (let a = 1; a < q; a++) assert.equal(f.chi(f.sub(0, a)), -f.chi(a)); }
    else for (let a = 1; a < q; a++) assert.equal(f.chi(f.sub(0, a)), f.chi(a));
  }
});

Deno.test("every constructible order 1…256 gives H Hᵀ = n I exactly; the gaps are named", () => {
  const missing: number[] = [];
  for (let n = 1; n <= 256; n++) {
    if (n > 2 && n % 4 !== 0) {
      assert.equal(hadamardConstruction(n), null);
      continue;
    }
    if (hadamardConstruction(n) === null) {
      missing.push(n);
      assert.throws(
        () => hadamardMatrix(n),
        (e) => e instanceof TransformError && e.message.includes(`size ${n}`),
      );
      continue;
    }
    const h = hadamardMatrix(n);
    assert.ok(h.every((v) => v === 1 || v === -1), `order ${n} is ±1`);
    assert.equal(gramError(h, n, n), 0, `order ${n}`);
  }
  // Sloane's library covers every multiple of 4 up to 256.
  assert.deepEqual(missing, []);
  // Williamson, Turyn and other orders Paley cannot reach come from the library.
  for (const n of [92, 116, 156, 172, 184, 188, 232, 236]) {
    assert.equal(hadamardConstruction(n)?.kind, "sloane", `order ${n}`);
  }
});

Deno.test("orders above 256 use the largest library order with a power-of-two quotient", () => {
  const base = (n: number) => {
    let c = hadamardConstruction(n);
    while (c?.kind === "double") c = c.half;
    return c;
  };
  assert.deepEqual(base(344), { kind: "sloane", n: 172, name: "had.172.will" });
  assert.equal(base(768)?.n, 192); // not Paley I's 384: compressed-tensors picks 192 too
  assert.equal(base(1376)?.n, 172);
  // 260 = 4 · 65: no library order divides it with a power-of-two quotient; Paley cannot build it.
  assert.equal(hadamardConstruction(260), null);
  assert.throws(
    () => hadamardMatrix(260),
    (e) => e instanceof TransformError && e.message.includes("size 260"),
  );
  const h = hadamardMatrix(344);
  assert.equal(gramError(h, 344, 344), 0);
});

Deno.test("768 (Sloane's 192, doubled twice): orthogonal to 1e-6 after normalization", () => {
  assert.equal(hadamardConstruction(768)?.kind, "double");
  const t = buildTransform("random-hadamard", 768, 7);
  const m = normalizedMatrix(t);
  assert.ok(gramError(m, 768, 1) < 1e-6);
  assert.ok(t.stored.every((v) => v === 1 || v === -1));
});

Deno.test("random-hadamard and random-matrix are orthogonal, seeded and reproducible", () => {
  for (const type of TRANSFORM_TYPES) {
    for (const n of [8, 12, 20, 64]) {
      if (type === "hadamard" && !isPowerOfTwo(n)) continue;
      const a = buildTransform(type, n, 3);
      assert.ok(gramError(normalizedMatrix(a), n, 1) < 1e-6, `${type} ${n}`);
      assert.deepEqual(a.stored, buildTransform(type, n, 3).stored, `${type} ${n} same seed`);
      if (type !== "hadamard") {
        assert.notDeepEqual(a.stored, buildTransform(type, n, 4).stored, `${type} ${n} seeds`);
      }
    }
  }
  assert.throws(
    () => buildTransform("random-hadamard", 260, 0),
    (e) => e instanceof TransformError && e.message.includes("size 260"),
  );
  const q = randomOrthogonal(5, 1);
  assert.ok(gramError(q, 5, 1) < 1e-12);
});

Deno.test("fast Walsh–Hadamard equals the dense Sylvester product", () => {
  const n = 32;
  const rows = 3;
  const x = Float64Array.from({ length: rows * n }, (_, i) => Math.sin(i * 1.7));
  const dense = x.slice();
  const h = Float64Array.from(sylvester(n));
  multiplyRight(dense, rows, n, h, n, false, "x");
  const fast = x.slice();
  fastWalshHadamard(fast, n, 1);
  for (let i = 0; i < x.length; i++) assert.ok(Math.abs(fast[i] - dense[i]) < 1e-12);
  fastWalshHadamard(fast, n, 1 / n); // H H = n I
  for (let i = 0; i < x.length; i++) assert.ok(Math.abs(fast[i] - x[i]) < 1e-12);
  assert.throws(() => fastWalshHadamard(new Float64Array(12), 12), TransformError);
});

Deno.test("block-diagonal application: right and left products act per block", () => {
  const m = normalizedMatrix(buildTransform("random-hadamard", 4, 1));
  // X [2, 8] · diag(M, M)
  const x = Float64Array.from({ length: 16 }, (_, i) => i + 1);
  const y = x.slice();
  multiplyRight(y, 2, 8, m, 4, false, "x");
  for (let r = 0; r < 2; r++) {
    for (let blk = 0; blk < 2; blk++) {
      for (let j = 0; j < 4; j++) {
        let s = 0;
        for (let i = 0; i < 4; i++) s += x[r * 8 + blk * 4 + i] * m[i * 4 + j];
        assert.ok(Math.abs(y[r * 8 + blk * 4 + j] - s) < 1e-12);
      }
    }
  }
  // Mᵀ undoes M (orthogonal), on the left too.
  multiplyRight(y, 2, 8, m, 4, true, "x");
  for (let i = 0; i < 16; i++) assert.ok(Math.abs(y[i] - x[i]) < 1e-12);
  const z = x.slice(); // [8, 2]
  multiplyLeft(z, 8, 2, m, 4, false, "z");
  multiplyLeft(z, 8, 2, m, 4, true, "z");
  for (let i = 0; i < 16; i++) assert.ok(Math.abs(z[i] - x[i]) < 1e-12);
  assert.throws(
    () => multiplyRight(x, 2, 8, m.subarray(0, 9), 3, false, "w.weight"),
    (e) => e instanceof TransformError && e.message.includes("w.weight"),
  );
});

Deno.test("hadamardFactors: the matrix is exactly S_m ⊗ H_K", () => {
  for (const n of [1, 8, 12, 24, 40, 96, 136, 172, 344, 768]) {
    const { sylvesterSize: m, base, baseSize: k } = hadamardFactors(n);
    assert.equal(m * k, n);
    const s = sylvester(m);
    const h = hadamardMatrix(n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        const v = s[Math.floor(i / k) * m + Math.floor(j / k)] * base[(i % k) * k + (j % k)];
        if (h[i * n + j] !== v) assert.fail(`order ${n}: (${i}, ${j})`);
      }
    }
  }
  assert.throws(() => hadamardFactors(260), (e) => e instanceof TransformError);
});

Deno.test("fast products through the Hadamard factors equal the dense block products", () => {
  for (
    const [type, n] of [
      ["hadamard", 16],
      ["random-hadamard", 12],
      ["random-hadamard", 40], // Sloane's 40 alone
      ["random-hadamard", 264], // S_2 ⊗ Sloane's 132: butterflies and a base together
      ["random-hadamard", 172],
    ] as const
  ) {
    const built = buildTransform(type, n, 9);
    // randomize: W[perm][:, perm] keeps the fast path (scatter, factors, gather).
    for (
      const t of [
        blockTransformOf(built),
        blockTransformOf(permutedTransform(built, randomPermutation(n, 9))),
      ]
    ) {
      assert.ok(t.fast !== undefined);
      if (n === 264) assert.deepEqual([t.fast.sylvesterSize, t.fast.baseSize], [2, 132]);
      const rows = n;
      const cols = 2 * n;
      const x = Float64Array.from({ length: rows * cols }, (_, i) => Math.cos(i * 0.37));
      for (const transpose of [false, true]) {
        const dense = x.slice();
        const fast = x.slice();
        multiplyRight(dense, rows, cols, t.matrix, n, transpose, "x");
        applyRight(fast, rows, cols, t, transpose, "x");
        for (let i = 0; i < x.length; i++) assert.ok(Math.abs(fast[i] - dense[i]) < 1e-12);
        const denseL = x.slice();
        const fastL = x.slice();
        multiplyLeft(denseL, rows, cols, t.matrix, n, transpose, "x");
        applyLeft(fastL, rows, cols, t, transpose, "x");
        for (let i = 0; i < x.length; i++) assert.ok(Math.abs(fastL[i] - denseL[i]) < 1e-12);
      }
    }
  }
});

Deno.test("randomPermutation is seeded; permutedTransform is W[perm][:, perm] and refuses non-permutations", () => {
  const p = randomPermutation(64, 5);
  assert.deepEqual(p, randomPermutation(64, 5));
  assert.notDeepEqual(p, randomPermutation(64, 6));
  assert.deepEqual([...p].sort((a, b) => a - b), Array.from({ length: 64 }, (_, i) => i));
  const t = buildTransform("random-hadamard", 12, 3);
  const u = permutedTransform(t, randomPermutation(12, 3));
  const perm = u.factors!.perm!;
  for (let i = 0; i < 12; i++) {
    for (let j = 0; j < 12; j++) {
      assert.equal(u.stored[i * 12 + j], t.stored[perm[i] * 12 + perm[j]]);
    }
  }
  for (const bad of [[0, 0, 1, 2], [0, 1, 2], [0, 1, 2, 4]]) {
    assert.throws(
      () => permutedTransform(buildTransform("hadamard", 4, 0), bad),
      (e) => e instanceof TransformError && e.message.includes("perm"),
    );
  }
});
