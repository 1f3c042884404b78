/**
 * The graph's small pieces with small deterministic inputs: observer and
 * calibrator operators, sample batching, the spilling activation cache,
 * event streams and the CLI's progress rendering.
 */

import assert from "node:assert/strict";
import { from, last, lastValueFrom, toArray } from "rxjs";
import { parseQuantizationArgs } from "../../src/quant/args.ts";
import {
  calibrateQParams,
  foldObservation,
  globalScaleOfState,
  observeMinMax,
} from "../../src/graph/observer_operators.ts";
import { calibrationBatches, CalibrationDataError } from "../../src/graph/calibration_batches.ts";
import {
  ActivationCache,
  ActivationCacheError,
  MemoryBudget,
} from "../../src/graph/activation_cache.ts";
import { GraphStreams } from "../../src/graph/events.ts";
import type { GraphEvent } from "../../src/graph/events.ts";
import { describeEvent, progressRenderer } from "../../src/cli/progress.ts";
import { EMPTY_OBSERVER_STATE } from "../../src/quant/observers.ts";
import { withTempDir } from "./_helpers.ts";

const mm = (min: number, max: number) => ({
  min: new Float32Array([min]),
  max: new Float32Array([max]),
});

Deno.test("minmax observer: EMA with c = 0.01, the first sample dominates", async () => {
  const fp8 = parseQuantizationArgs({ num_bits: 8, type: "float" }, "in");
  const states = await lastValueFrom(
    from([mm(-1, 2), mm(-100, 200), mm(0, 0)]).pipe(observeMinMax(fp8), toArray()),
  );
  assert.deepEqual([...states[0].minMax!.max], [2]);
  assert.equal(
    states[1].minMax!.max[0],
    Math.fround(Math.fround(2 * 0.99) + Math.fround(200 * 0.01)),
  );
  assert.equal(states[2].count, 3);
  // A 100× outlier in the second sample moves the scale by ~2 %, not 100×.
  const [qp] = await lastValueFrom(
    from([mm(-1, 2), mm(-100, 200)]).pipe(
      observeMinMax(fp8),
      last(),
      calibrateQParams(fp8),
      toArray(),
    ),
  );
  assert.ok(Math.abs(qp.scale[0] - 3.98 / 448) < 1e-6, String(qp.scale[0]));
});

Deno.test("static_minmax and memoryless observers; asymmetric int8 and global scales", async () => {
  const stat = parseQuantizationArgs({ num_bits: 8, observer: "static_minmax" }, "in");
  const s = await lastValueFrom(from([mm(-1, 2), mm(-3, 1)]).pipe(observeMinMax(stat), last()));
  assert.deepEqual([s.minMax!.min[0], s.minMax!.max[0]], [-3, 2]);
  const mem = parseQuantizationArgs({ num_bits: 8, observer: "memoryless_minmax" }, "in");
  const m = foldObservation(foldObservation(EMPTY_OBSERVER_STATE, mm(-9, 9), mem), mm(-1, 1), mem);
  assert.equal(m.minMax!.max[0], 1);
  const asym = parseQuantizationArgs({ num_bits: 8, symmetric: false }, "in");
  const [qp] = await lastValueFrom(
    from([mm(-1, 3)]).pipe(observeMinMax(asym), calibrateQParams(asym), toArray()),
  );
  assert.equal(qp.scale[0], Math.fround(4 / 255));
  assert.equal(qp.zeroPoint[0], -128 + Math.round(1 / (4 / 255)));
  assert.equal(globalScaleOfState(s), 448 * 6 / 3);
});

Deno.test("calibration batches pack equal-length samples under a token budget, in order", () => {
  const s = (n: number, v: number) => new Int32Array(n).fill(v);
  const b = calibrationBatches([s(4, 1), s(4, 2), s(4, 3), s(2, 4), s(2, 5)], 8);
  assert.deepEqual(b.map((x) => [x.index, x.firstSample, x.sequences, x.seqLen]), [
    [0, 0, 2, 4],
    [1, 2, 1, 4],
    [2, 3, 2, 2],
  ]);
  assert.deepEqual([...b[0].ids], [1, 1, 1, 1, 2, 2, 2, 2]);
  assert.equal(calibrationBatches([s(10, 0)], 4)[0].sequences, 1, "a long sample still runs");
  assert.throws(() => calibrationBatches([], 8), CalibrationDataError);
});

Deno.test("activation cache spills above its budget and round-trips through a boundary", async () => {
  await withTempDir(async (dir) => {
    const budget = new MemoryBudget(12);
    const cache = new ActivationCache(budget, dir, "a");
    await cache.put(0, new Float32Array([1, 2, 3]));
    await cache.put(1, new Float32Array([4, 5]));
    assert.equal(cache.bytesInMemory, 12);
    assert.equal(cache.bytesOnDisk, 8);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["a-1.f32"]);
    assert.deepEqual([...(await cache.get(1))], [4, 5]);
    const bytes = await cache.serialize();

    const other = new ActivationCache(new MemoryBudget(Infinity), dir, "b");
    await other.restore(bytes, [3, 2]);
    assert.deepEqual([...(await other.get(0))], [1, 2, 3]);
    assert.deepEqual([...(await other.get(1))], [4, 5]);
    await assert.rejects(
      () => new ActivationCache(budget, dir, "c").restore(bytes, [3, 3]),
      ActivationCacheError,
    );
    await cache.dispose();
    assert.equal(budget.used, 0);
    assert.deepEqual([...Deno.readDirSync(dir)], [], "spill files are deleted");
    await assert.rejects(() => cache.get(0), ActivationCacheError);
  });
});

Deno.test("graph streams split events by type; progress renders JSON lines and text", () => {
  const streams = new GraphStreams();
  const seen: string[] = [];
  streams.layers$.subscribe((e) => seen.push(`layer ${e.layer}`));
  streams.warnings$.subscribe((e) => seen.push(`warn ${e.message}`));
  streams.metrics$.subscribe((e) => seen.push(`metric ${e.module}`));
  const events: GraphEvent[] = [
    { type: "layer_done", layer: 4, layers: 5, skipped: false, seconds: 1.5, bytesRead: 10 },
    { type: "warning", message: "careful" },
    {
      type: "module_metric",
      module: "m",
      modifier: "GPTQModifier",
      layer: 0,
      error: 0.5,
      errorKind: "gptq_loss",
      samples: 4,
      seconds: 0.1,
      rssBytes: 2 ** 20,
      gpuBytes: 0,
    },
  ];
  events.forEach(streams.emit);
  streams.complete();
  assert.deepEqual(seen, ["layer 4", "warn careful", "metric m"]);
  assert.equal(describeEvent(events[0]), "layer 5/5: 1.50 s");

  const lines: string[] = [];
  const error = console.error;
  console.error = (s: string) => lines.push(s);
  try {
    const r = progressRenderer("auto", false);
    r.onEvent(events[0]);
    r.close();
  } finally {
    console.error = error;
  }
  assert.equal(lines.length, 1);
  // The event's own fields and its text, plus where the run stands (tests/cli/progress_test.ts).
  const line = JSON.parse(lines[0]);
  for (const [k, v] of Object.entries({ ...events[0], message: "layer 5/5: 1.50 s" })) {
    assert.deepEqual(line[k], v, k);
  }
  assert.equal(typeof line.fraction, "number");
});
