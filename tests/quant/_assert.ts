/**
 * The assertions the quant and compress tests use, on top of
 * `node:assert/strict` (JSR's @std/assert is not reachable).
 *
 * @module
 */

import * as nodeAssert from "node:assert/strict";

/** Asserts a truthy value. */
export function assert(cond: unknown, message?: string): asserts cond {
  nodeAssert.ok(cond, message);
}

/** Asserts deep equality (typed arrays compared element-wise against arrays too). */
export function assertEquals(actual: unknown, expected: unknown, message?: string): void {
  const norm = (v: unknown): unknown =>
    ArrayBuffer.isView(v) && !(v instanceof DataView)
      ? Array.from(v as unknown as ArrayLike<number>)
      : v;
  nodeAssert.deepStrictEqual(norm(actual), norm(expected), message);
}

/** Asserts that `fn` throws an instance of `cls` whose message contains `includes`. */
export function assertThrows(
  fn: () => unknown,
  cls: new (...args: never[]) => Error,
  includes?: string,
): Error {
  try {
    fn();
  } catch (e) {
    nodeAssert.ok(
      e instanceof cls,
      `expected ${cls.name}, got ${(e as Error)?.constructor?.name}: ${e}`,
    );
    if (includes !== undefined) {
      nodeAssert.ok(
        (e as Error).message.includes(includes),
        `message ${JSON.stringify((e as Error).message)} lacks ${JSON.stringify(includes)}`,
      );
    }
    return e as Error;
  }
  throw new nodeAssert.AssertionError({ message: `expected ${cls.name} to be thrown` });
}

/** Asserts that two numbers are bitwise-identical float32 values (−0 ≠ +0, NaN = NaN). */
export function assertSameF32(actual: number, expected: number, message?: string): void {
  const a = new Float32Array([actual]);
  const e = new Float32Array([expected]);
  const au = new Uint32Array(a.buffer)[0];
  const eu = new Uint32Array(e.buffer)[0];
  nodeAssert.ok(au === eu, `${message ?? ""} ${actual} !== ${expected}`);
}
