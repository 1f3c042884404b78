/**
 * The assertions the oneshot, modifier and model-free tests use.
 *
 * @module
 */

export { assert, assertEquals, assertRejects, assertThrows } from "../sink/_assert.ts";
