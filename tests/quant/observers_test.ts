import { assert, assertEquals, assertSameF32, assertThrows } from "./_assert.ts";
import { parseQuantizationArgs } from "../../src/quant/args.ts";
import {
  activationCalibrationView,
  attentionCalibrationView,
  slotMinMax,
  weightCalibrationView,
} from "../../src/quant/calibration_view.ts";
import {
  EMPTY_OBSERVER_STATE,
  movingAverageMinMax,
  mseMinMax,
  observe,
  qparamsOf,
  staticMinMax,
  tensorAmax,
} from "../../src/quant/observers.ts";
import { QuantizationConfigError, QuantizationShapeError } from "../../src/quant/errors.ts";
import { presetScheme } from "../../src/quant/presets.ts";
import { fakeQuantizeView } from "../../src/quant/quantize.ts";
import { calculateQParams, globalScaleFor } from "../../src/quant/qparams.ts";
import { seededRandom } from "../../src/model/seeded_random.ts";

const args = (raw: Record<string, unknown>) =>
  parseQuantizationArgs(raw, "test", { warn: () => {} });
const mm = (min: number[], max: number[]) => ({
  min: new Float32Array(min),
  max: new Float32Array(max),
});

Deno.test("weight views: shapes per strategy", () => {
  const w = Float32Array.from({ length: 8 * 32 }, (_, i) => i - 100);
  const shape: [number, number] = [8, 32];
  assertEquals(weightCalibrationView(w, shape, args({})).qparamShape, [1]);
  assertEquals(weightCalibrationView(w, shape, args({ strategy: "channel" })).qparamShape, [8, 1]);
  assertEquals(weightCalibrationView(w, shape, args({ group_size: 8 })).qparamShape, [8, 4]);
  const block = weightCalibrationView(
    w,
    shape,
    args({ strategy: "block", block_structure: [4, 16] }),
  );
  assertEquals([block.qparamShape, block.slotLength], [[2, 2], 64]);
  // block (1, 0) starts at row 4, column 0
  assertEquals(block.data[2 * 64], w[4 * 32]);
  const m = slotMinMax(block);
  assertEquals(m.min, [-100, -84, 28, 44]);
  assertEquals(m.max, [-100 + 3 * 32 + 15, -100 + 3 * 32 + 31, -100 + 7 * 32 + 15, 155]);
  assertThrows(
    () => weightCalibrationView(w, shape, args({ strategy: "token", dynamic: true })),
    QuantizationShapeError,
  );
});

Deno.test("activation and attention views", () => {
  const x = Float32Array.from({ length: 2 * 3 * 8 }, (_, i) => i);
  const t = activationCalibrationView(x, [2, 3, 8], args({}));
  assertEquals([t.numObservations, t.numSlots, t.slotLength, t.qparamShape], [6, 1, 8, [1]]);
  const g = activationCalibrationView(x, [2, 3, 8], args({ group_size: 4, dynamic: true }));
  assertEquals([g.numObservations, g.numSlots, g.qparamShape], [6, 2, [2]]);
  assertThrows(
    () => activationCalibrationView(x, [2, 3, 8], args({ strategy: "channel" })),
    QuantizationShapeError,
  );
  // K states [batch 1, heads 2, seq 2, d 2]: head 0 = 0..3, head 1 = 4..7
  const k = Float32Array.from({ length: 8 }, (_, i) => i);
  const kv = args({ type: "float", strategy: "attn_head" });
  const v = attentionCalibrationView(k, [1, 2, 2, 2], kv);
  assertEquals(v.qparamShape, [2, 1, 1]);
  assertEquals(slotMinMax(v), mm([0, 4], [3, 7]));
  const tv = attentionCalibrationView(k, [1, 2, 2, 2], args({ type: "float" }));
  assertEquals(Array.from(tv.data), [0, 1, 4, 5, 2, 3, 6, 7]);
  // FP8 KV scale = amax / 448
  const qp = qparamsOf(
    observe(EMPTY_OBSERVER_STATE, tv, args({ type: "float" })),
    args({ type: "float" }),
  );
  assertSameF32(qp.scale[0], Math.fround(7 / 448));
});

Deno.test("minmax EMA: max 2.26 after one 127 outlier (test_min_max)", () => {
  const a = movingAverageMinMax(null, mm([0], [1]));
  const b = movingAverageMinMax(a, mm([0], [127]));
  assertSameF32(
    b.max[0],
    Math.fround(Math.fround(1 * Math.fround(0.99)) + Math.fround(127 * Math.fround(0.01))),
  );
  assertEquals(Math.round(b.max[0] * 100) / 100, 2.26);
  const c = movingAverageMinMax(a, mm([0], [127]), 1);
  assertEquals(c.max[0], 127);
  assertEquals(staticMinMax(staticMinMax(null, mm([-1], [1])), mm([0], [3])), mm([-1], [3]));
});

Deno.test("observe dispatches on the observer name and averaging_constant", () => {
  const view = (vals: number[]) => ({
    data: new Float32Array(vals),
    numObservations: vals.length,
    numSlots: 1,
    slotLength: 1,
    qparamShape: [1],
  });
  const run = (raw: Record<string, unknown>) => {
    const a = args(raw);
    let s = EMPTY_OBSERVER_STATE;
    for (const batch of [[1, -1], [10, -2], [2, -0.5]]) s = observe(s, view(batch), a);
    return s;
  };
  assertEquals(run({ observer: "static_minmax" }).minMax, mm([-2], [10]));
  assertEquals(run({ observer: "memoryless_minmax" }).minMax, mm([-0.5], [2]));
  assertEquals(
    run({ observer: "minmax", observer_kwargs: { averaging_constant: 0.5 } }).minMax,
    mm([-1], [3.75]),
  );
  assertEquals(run({}).count, 3);
  assertThrows(() => run({ observer: "histogram" }), QuantizationConfigError, "histogram");
  assertThrows(
    () => qparamsOf(EMPTY_OBSERVER_STATE, args({})),
    QuantizationConfigError,
    "no values",
  );
  const nv = presetScheme("NVFP4A16", ["Linear"]).weights!;
  assertThrows(() => qparamsOf(run({}), nv), QuantizationConfigError, "global scale");
});

Deno.test("MSE search shrinks the range around an outlier and never does worse than minmax", () => {
  const rnd = seededRandom(5);
  const n = 256;
  // roughly Gaussian values: the best int4 clip lies inside the observed range
  const data = Float32Array.from({ length: 4 * n }, () => rnd() + rnd() + rnd() + rnd() - 2);
  const view = { data, numObservations: 1, numSlots: 4, slotLength: n, qparamShape: [4, 1] };
  const a = args({ num_bits: 4, strategy: "channel", observer: "memoryless_mse" });
  const best = mseMinMax(view, a);
  const plain = slotMinMax(view);
  const err = (m: { min: Float32Array; max: Float32Array }) => {
    const q = fakeQuantizeView(view, calculateQParams(m.min, m.max, a), a);
    const e = new Float64Array(4);
    for (let s = 0; s < 4; s++) {
      for (let k = 0; k < n; k++) e[s] += Math.abs(q[s * n + k] - data[s * n + k]) ** 2.4;
    }
    return e;
  };
  const eb = err(best);
  const ep = err(plain);
  for (let s = 0; s < 4; s++) assert(eb[s] <= ep[s], `slot ${s}`);
  let shrunk = 0;
  for (let s = 0; s < 4; s++) {
    if (best.max[s] < plain.max[s]) shrunk++;
    assert(best.max[s] >= plain.max[s] * 0.8 - 1e-6, "at most maxshrink 0.2");
    assert(eb[s] < ep[s] || best.max[s] === plain.max[s]);
  }
  assert(shrunk > 0, "some slot found a better clipped range");
  // the observer path: mse = EMA of the MSE ranges
  const s1 = observe(
    EMPTY_OBSERVER_STATE,
    view,
    args({ num_bits: 4, strategy: "channel", observer: "mse" }),
  );
  assertEquals(s1.minMax, best);
  // FP4 (NVFP4) MSE with a fixed global scale
  const nv = presetScheme("NVFP4A16", ["Linear"]).weights!;
  const gv = {
    data: data.slice(0, 64),
    numObservations: 1,
    numSlots: 4,
    slotLength: 16,
    qparamShape: [1, 4],
  };
  const g = globalScaleFor(tensorAmax(gv.data));
  const r = mseMinMax(gv, nv, undefined, g);
  assertEquals(r.max.length, 4);
  assert(mseMinMax(gv, nv, undefined, null, true).max.length === 4);
});
