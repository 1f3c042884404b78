// ArrayPool.trim (src/engine/cpu/_array_pool.ts) frees its pooled arrays at once (their buffers
// are detached), never an array a live tensor still holds, and a CPU engine's tensors stay
// readable across Engine.trim().

import assert from "node:assert/strict";
import { ArrayPool } from "../../src/engine/cpu/_array_pool.ts";
import { CpuEngine } from "../../src/engine/cpu_engine.ts";

Deno.test("ArrayPool.trim detaches pooled arrays and leaves held ones alone", () => {
  const pool = new ArrayPool(2 ** 20);
  const pooled = pool.take(1000, true);
  const held = pool.take(1000, true);
  pool.retain(pooled);
  pool.retain(held);
  held.fill(7);
  pool.release(pooled); // back in the pool, no tensor holds it
  assert.equal(pool.pooledBytes, 4000);
  pool.trim();
  assert.equal(pool.pooledBytes, 0);
  assert.equal(pooled.length, 0, "the pooled array's memory was returned (detached)");
  assert.equal(held.length, 1000);
  assert.ok(held.every((v) => v === 7), "the held array is untouched");
  const fresh = pool.take(1000, false);
  assert.notEqual(fresh, pooled, "a trimmed array is never handed out again");
  assert.equal(fresh.length, 1000);
});

Deno.test("ArrayPool.trim leaves views of a shared or larger buffer to the GC", () => {
  const pool = new ArrayPool(2 ** 20);
  const big = new Float32Array(16);
  const view = big.subarray(4, 8);
  pool.retain(view);
  pool.release(view);
  pool.trim();
  assert.equal(big.length, 16, "the buffer another array shares is not detached");
  assert.equal(view.length, 4);
});

Deno.test("CpuEngine.trim frees only released tensors' arrays", async () => {
  const e = new CpuEngine();
  const a = e.upload(new Float32Array([1, 2, 3, 4]), [2, 2]);
  const b = e.add(a, a);
  const dead = e.add(a, b);
  dead.destroy();
  e.trim();
  const [got] = await e.read([b]);
  assert.deepEqual(got, new Float32Array([2, 4, 6, 8]));
  const c = e.add(a, a);
  assert.deepEqual((await e.read([c]))[0], new Float32Array([2, 4, 6, 8]));
});
