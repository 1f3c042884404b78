/**
 * The assertions the model and data tests use: deep equality, typed errors
 * with message checks, and the tensor tolerances (relative to the largest
 * reference value, or absolute) that GPU-vs-reference comparisons need.
 *
 * @module
 */

/** Thrown by a failed assertion. */
export class AssertionError extends Error {
  override name = "AssertionError";
}

function show(v: unknown): string {
  if (ArrayBuffer.isView(v) && !(v instanceof DataView)) {
    const a = Array.from(v as unknown as ArrayLike<number>).slice(0, 16);
    return `${v.constructor.name}[${(v as unknown as ArrayLike<number>).length}] [${
      a.join(", ")
    }…]`;
  }
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

function equal(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  if (ArrayBuffer.isView(a)) {
    const x = a as unknown as ArrayLike<unknown>;
    const y = b as unknown as ArrayLike<unknown>;
    if (x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) if (!Object.is(x[i], y[i])) return false;
    return true;
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) =>
    Object.hasOwn(b, k) &&
    equal((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])
  );
}

/** Deep equality: same prototypes, same own keys, elementwise for typed arrays. */
export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  if (!equal(actual, expected)) {
    throw new AssertionError(
      `${message ? message + ": " : ""}expected ${show(expected)}, got ${show(actual)}`,
    );
  }
}

/** Deep inequality. */
export function assertNotEquals<T>(actual: T, expected: T, message?: string): void {
  if (equal(actual, expected)) {
    throw new AssertionError(`${message ? message + ": " : ""}both are ${show(actual)}`);
  }
}

/** The condition holds. */
export function assert(condition: unknown, message = "assertion failed"): asserts condition {
  if (!condition) throw new AssertionError(message);
}

/** The function throws an instance of `type` whose message includes `includes`. */
export function assertThrows(
  fn: () => unknown,
  type: abstract new (...args: never[]) => Error,
  includes: string,
): Error {
  try {
    fn();
  } catch (e) {
    check(e, type, includes);
    return e as Error;
  }
  throw new AssertionError(`expected ${type.name} to be thrown`);
}

/** The promise rejects with an instance of `type` whose message includes `includes`. */
export async function assertRejects(
  fn: () => Promise<unknown>,
  type: abstract new (...args: never[]) => Error,
  includes: string,
): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    check(e, type, includes);
    return e as Error;
  }
  throw new AssertionError(`expected a ${type.name} rejection`);
}

function check(e: unknown, type: abstract new (...args: never[]) => Error, includes: string) {
  if (!(e instanceof type)) {
    throw new AssertionError(`expected ${type.name}, got ${e}`, { cause: e });
  }
  if (!e.message.includes(includes)) {
    throw new AssertionError(`message '${e.message}' lacks '${includes}'`, { cause: e });
  }
}

/**
 * max |actual − expected| / max |expected| ≤ rel (a relative error over the
 * whole tensor, robust to entries near zero).
 *
 * @returns the measured relative error
 */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  rel: number,
  message = "tensors differ",
): number {
  if (actual.length !== expected.length) {
    throw new AssertionError(`${message}: length ${actual.length} != ${expected.length}`);
  }
  let maxDiff = 0;
  let maxRef = 0;
  let at = 0;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    if (!(d <= maxDiff)) {
      maxDiff = d;
      at = i;
    }
    maxRef = Math.max(maxRef, Math.abs(expected[i]));
  }
  const err = maxDiff / (maxRef || 1);
  if (!(err <= rel)) {
    throw new AssertionError(
      `${message}: relative error ${err.toExponential(3)} > ${rel} ` +
        `(at ${at}: ${actual[at]} vs ${expected[at]}, max |ref| ${maxRef})`,
    );
  }
  return err;
}

/** max |actual − expected| ≤ tol. @returns the measured max abs error */
export function assertMaxAbs(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: number,
  message = "tensors differ",
): number {
  if (actual.length !== expected.length) {
    throw new AssertionError(`${message}: length ${actual.length} != ${expected.length}`);
  }
  let maxDiff = 0;
  let at = 0;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    if (!(d <= maxDiff)) {
      maxDiff = d;
      at = i;
    }
  }
  if (!(maxDiff <= tol)) {
    throw new AssertionError(
      `${message}: max abs error ${maxDiff} > ${tol} (at ${at}: ${actual[at]} vs ${expected[at]})`,
    );
  }
  return maxDiff;
}
