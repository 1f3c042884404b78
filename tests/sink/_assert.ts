/**
 * The few assertions the sink tests use, over `node:assert/strict`.
 *
 * @module
 */

import nodeAssert from "node:assert/strict";

/**
 * Asserts a condition.
 *
 * @param cond the condition
 * @param msg message on failure
 */
export function assert(cond: unknown, msg?: string): asserts cond {
  nodeAssert.ok(cond, msg);
}

/**
 * Asserts deep equality.
 *
 * @param actual the value
 * @param expected what it should be
 * @param msg message on failure
 */
export function assertEquals<T>(actual: unknown, expected: T, msg?: string): void {
  nodeAssert.deepStrictEqual(actual, expected, msg);
}

/**
 * Asserts that a promise rejects with an error of a class whose message contains a text.
 *
 * @param fn the operation
 * @param cls the expected error class
 * @param includes text the message must contain
 * @returns the error
 */
export async function assertRejects<E extends Error>(
  fn: () => Promise<unknown>,
  cls: new (...args: never[]) => E,
  includes?: string,
): Promise<E> {
  try {
    await fn();
  } catch (e) {
    nodeAssert.ok(
      e instanceof cls,
      `expected ${cls.name}, got ${(e as Error)?.name}: ${(e as Error)?.message}`,
    );
    if (includes !== undefined) {
      nodeAssert.ok(
        (e as Error).message.includes(includes),
        `message '${(e as Error).message}' lacks '${includes}'`,
      );
    }
    return e as E;
  }
  throw new nodeAssert.AssertionError({ message: `expected a rejection with ${cls.name}` });
}

/**
 * Asserts that a function throws an error of a class whose message contains a text.
 *
 * @param fn the operation
 * @param cls the expected error class
 * @param includes text the message must contain
 * @returns the error
 */
export function assertThrows<E extends Error>(
  fn: () => unknown,
  cls: new (...args: never[]) => E,
  includes?: string,
): E {
  try {
    fn();
  } catch (e) {
    nodeAssert.ok(
      e instanceof cls,
      `expected ${cls.name}, got ${(e as Error)?.name}: ${(e as Error)?.message}`,
    );
    if (includes !== undefined) {
      nodeAssert.ok(
        (e as Error).message.includes(includes),
        `message '${(e as Error).message}' lacks '${includes}'`,
      );
    }
    return e as E;
  }
  throw new nodeAssert.AssertionError({ message: `expected a throw of ${cls.name}` });
}
