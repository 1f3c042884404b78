/**
 * The sink target writes a layer's resume boundary while the next layer
 * computes: `saveBoundary` resolves with the sink's write still in flight,
 * the next write, boundary or `flush` waits for it, and a failed boundary
 * write is thrown there (never lost as an unhandled rejection).
 */

import assert from "node:assert/strict";
import { ActivationCache, MemoryBudget } from "../../src/graph/activation_cache.ts";
import type { HfModel } from "../../src/io/hf_model.ts";
import type { CheckpointSink } from "../../src/sink/checkpoint_sink.ts";
import { sinkTarget } from "../../src/pipelines/sink_target.ts";

/** A sink whose boundary writes finish (or fail) when the test says. */
function fakeSink() {
  const calls: string[] = [];
  const pending: { k: number; settle: (error?: Error) => void }[] = [];
  const sink = {
    saveBoundary(k: number, bytes: Uint8Array): Promise<void> {
      calls.push(`save ${k} (${bytes.byteLength} bytes)`);
      return new Promise<void>((resolve, reject) => {
        pending.push({
          k,
          settle: (error) => {
            calls.push(`saved ${k}${error ? " (failed)" : ""}`);
            if (error) reject(error);
            else resolve();
          },
        });
      });
    },
  };
  return { sink: sink as unknown as CheckpointSink, calls, pending };
}

const source = { config: { hiddenSize: 2 } } as unknown as HfModel;

async function outputs(dir: string): Promise<ActivationCache> {
  const cache = new ActivationCache(new MemoryBudget(Infinity), dir, "t");
  await cache.put(0, new Float32Array([1, 2]));
  return cache;
}

Deno.test("a boundary is written while the next layer computes; the next boundary and flush wait for it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { sink, calls, pending } = fakeSink();
    const target = sinkTarget(source, sink, []);
    const first = target.saveBoundary(0, await outputs(dir));
    const state = await Promise.race([
      first.then(() => "resolved"),
      new Promise((r) => setTimeout(() => r("waiting"), 50)),
    ]);
    assert.equal(state, "resolved", "saveBoundary resolves with the sink's write in flight");
    assert.equal(calls.length, 1);
    assert.match(calls[0], /^save 0 /);
    assert.equal(pending.length, 1, "the write is still in flight");

    let second = false;
    const next = target.saveBoundary(1, await outputs(dir)).then(() => (second = true));
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(second, false, "the next boundary waits for the one in flight");
    pending[0].settle();
    await next;
    assert.deepEqual(calls.map((c) => c.split(" (")[0]), ["save 0", "saved 0", "save 1"]);

    let flushed = false;
    const flush = target.flush!().then(() => (flushed = true));
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(flushed, false, "flush waits for the write in flight");
    pending[1].settle();
    await flush;
    await target.flush!(); // nothing in flight: resolves at once
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a failed boundary write is thrown by the next boundary or flush, once", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { sink, pending } = fakeSink();
    const target = sinkTarget(source, sink, []);
    await target.saveBoundary(0, await outputs(dir));
    pending[0].settle(new Error("disk full"));
    // Left unawaited for a while: the failure must not surface as an unhandled rejection.
    await new Promise((r) => setTimeout(r, 10));
    await assert.rejects(target.saveBoundary(1, await outputs(dir)), /disk full/);
    await target.flush!();

    await target.saveBoundary(2, await outputs(dir));
    pending[1].settle(new Error("EIO"));
    await assert.rejects(target.flush!(), /EIO/);
    await target.flush!();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the boundary goes to the sink as views of the cached hidden states, no copy", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { sink, pending } = fakeSink();
    const seen: Uint8Array[][] = [];
    const save = sink.saveBoundary.bind(sink);
    (sink as unknown as { saveBoundary: unknown }).saveBoundary = (
      k: number,
      parts: Uint8Array[],
    ) => {
      seen.push(parts);
      return save(k, new Uint8Array(parts.reduce((a, p) => a + p.byteLength, 0)));
    };
    const cache = new ActivationCache(new MemoryBudget(Infinity), dir, "t");
    const batch = new Float32Array([1, 2]);
    await cache.put(0, batch);
    await sinkTarget(source, sink, []).saveBoundary(0, cache);
    const [parts] = seen;
    assert.equal(parts.length, 2, "the header, then the one batch");
    assert.equal(parts[1].buffer, batch.buffer, "the batch's own bytes");
    const whole = new Uint8Array(parts[0].byteLength + parts[1].byteLength);
    whole.set(parts[0]);
    whole.set(parts[1], parts[0].byteLength);
    assert.deepEqual(whole, await cache.serialize(), "the parts make serialize()'s record");
    pending[0].settle();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
