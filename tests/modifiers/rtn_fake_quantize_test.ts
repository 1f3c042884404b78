// GPTQ's round-to-nearest comparison on the engine: the same bits as the
// host fakeQuantize for every strategy, the engine's rows only where the
// qparams are one per contiguous run.

import assert from "node:assert/strict";
import { assertSameBits } from "../_shared.ts";
import { CpuEngine } from "../../src/engine/cpu_engine.ts";
import {
  engineRowsOf,
  hostRtnFakeQuantize,
  hostSlotMinMax,
  rtnFakeQuantize,
  type RtnFakeQuantizeInput,
} from "../../src/modifiers/quantization/rtn_fake_quantize.ts";
import { parseQuantizationArgs } from "../../src/quant/args.ts";
import { fakeQuantize } from "../../src/quant/quantize.ts";
import { rtnQuantizeModule } from "../../src/quant/rtn.ts";
import { type CalibrationView, slotMinMax } from "../../src/quant/calibration_view.ts";

function weight(rows: number, cols: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: rows * cols }, (_, i) => {
    s = (s * 1103515245 + 12345) >>> 0;
    // Some exact zeros and negative zeros among the values.
    return i % 17 === 0 ? -0 : i % 13 === 0 ? 0 : (s / 2 ** 32 - 0.5) * 2;
  });
}

function input(
  name: string,
  rows: number,
  cols: number,
  args: Record<string, unknown>,
  gIdx?: Int32Array,
): RtnFakeQuantizeInput {
  const a = parseQuantizationArgs(args, name);
  const values = weight(rows, cols, rows * 31 + cols);
  const qparams = rtnQuantizeModule(values, [rows, cols], a, gIdx ? { gIdx } : {});
  return { name, values, shape: [rows, cols], args: a, qparams, dtype: "F32" };
}

/** Every case of the test below: the kernels' rows and the host's. */
function casesOf(): { w: RtnFakeQuantizeInput; rows: [number, number] | null }[] {
  const gIdx = Int32Array.from({ length: 64 }, (_, c) => (c * 5) % 4);
  return [
    { w: input("channel", 24, 64, { num_bits: 4, strategy: "channel" }), rows: [24, 64] },
    {
      w: input("asym", 24, 64, { num_bits: 8, strategy: "channel", symmetric: false }),
      rows: [24, 64],
    },
    {
      w: input("group", 24, 64, { num_bits: 4, strategy: "group", group_size: 16 }),
      rows: [96, 16],
    },
    { w: input("tensor", 24, 64, { num_bits: 4, strategy: "tensor" }), rows: [24, 64] },
    {
      w: input("asym group", 8, 64, {
        num_bits: 4,
        strategy: "group",
        group_size: 32,
        symmetric: false,
      }),
      rows: [16, 32],
    },
    // Past the size the native threads read in place, and past the 2^20 elements from which
    // the kernels split the rows among the threads.
    {
      w: input("large asym group", 2048, 1024, {
        num_bits: 4,
        strategy: "group",
        group_size: 128,
        symmetric: false,
      }),
      rows: [16384, 128],
    },
    {
      w: input("g_idx", 24, 64, { num_bits: 4, strategy: "group", group_size: 16 }, gIdx),
      rows: null,
    },
    { w: input("fp8", 24, 64, { num_bits: 8, type: "float", strategy: "channel" }), rows: null },
  ];
}

Deno.test("hostRtnFakeQuantize: the kernels' rows give the host fakeQuantize's bits; other qparams stay on the host", () => {
  for (const { w, rows } of casesOf()) {
    assert.deepEqual(engineRowsOf(w), rows, w.name);
    const want = fakeQuantize(w.values, w.shape, w.qparams, w.args, { dtype: "F32" });
    const got = hostRtnFakeQuantize(w);
    assert.notEqual(got, w.values, `${w.name}: a new array`);
    assertSameBits(got, want, w.name);
  }
  // BF16 weights round on the host.
  const bf16 = { ...casesOf()[0].w, dtype: "BF16" as const };
  const want = fakeQuantize(bf16.values, bf16.shape, bf16.qparams, bf16.args, { dtype: "BF16" });
  assertSameBits(hostRtnFakeQuantize(bf16), want, "BF16");
});

Deno.test("rtnFakeQuantize: the engine's rows give the host fakeQuantize's bits; other qparams stay on the host", async () => {
  // The cases above but the large one, which hostRtnFakeQuantize's test covers.
  const cases = casesOf().filter((c) => c.w.name !== "large asym group");
  for (const c of cases) assert.deepEqual(engineRowsOf(c.w), c.rows, c.w.name);
  assert.equal(engineRowsOf({ ...cases[0].w, dtype: "BF16" }), null);
  const engine = new CpuEngine();
  try {
    const got = await rtnFakeQuantize(engine, cases.map((c) => c.w));
    cases.forEach(({ w }, i) => {
      const want = fakeQuantize(w.values, w.shape, w.qparams, w.args, { dtype: "F32" });
      assertSameBits(got[i], want, w.name);
    });
  } finally {
    engine.close();
  }
});

Deno.test("hostSlotMinMax gives slotMinMax's bits: zero extremes of either sign first, NaN slots, large views", () => {
  for (const [slots, length] of [[1, 1], [9, 7], [3072, 128]]) {
    const data = weight(slots, length, slots + length);
    for (let s = 0; s < slots; s++) {
      const slot = data.subarray(s * length, (s + 1) * length);
      switch (s % 6) {
        case 1: // all zeros, +0 first: slotMinMax keeps it, Math.min would give −0
          slot.forEach((_, i) => (slot[i] = i % 2 === 0 ? 0 : -0));
          break;
        case 2: // −0 first, and positive values: the min is a zero
          slot.forEach((v, i) => (slot[i] = i === 0 ? -0 : Math.abs(v) + (i % 3 === 0 ? 0 : 1)));
          break;
        case 3: // two NaNs: slotMinMax keeps the last one's bits
          slot[0] = NaN;
          slot[length - 1] = new Float32Array(new Uint32Array([0xffc00001]).buffer)[0];
          break;
        case 4: // non-positive values: the max is a zero
          slot.forEach((v, i) => (slot[i] = i === length - 1 ? 0 : -Math.abs(v)));
          break;
      }
    }
    const view: CalibrationView = {
      data,
      numObservations: 1,
      numSlots: slots,
      slotLength: length,
      qparamShape: [slots, 1],
    };
    const want = slotMinMax(view);
    const got = hostSlotMinMax(view);
    assertSameBits(got.min, want.min, `${slots} × ${length}: min`);
    assertSameBits(got.max, want.max, `${slots} × ${length}: max`);
  }
  // Several observations: slotMinMax itself.
  const view = {
    data: weight(4, 6, 1),
    numObservations: 2,
    numSlots: 2,
    slotLength: 6,
    qparamShape: [2],
  };
  assertSameBits(hostSlotMinMax(view).min, slotMinMax(view).min, "observations");
});

Deno.test("rtnQuantizeModule: a memoryless min/max observer's slotMinMax is the caller's when given, the same qparams", () => {
  for (
    const args of [{ num_bits: 4, strategy: "group", group_size: 16, symmetric: false }, {
      num_bits: 8,
      strategy: "channel",
      symmetric: false,
    }]
  ) {
    const a = { ...parseQuantizationArgs(args, "w"), observer: "memoryless_minmax" as const };
    const values = weight(24, 64, 5);
    let calls = 0;
    const spy = (v: CalibrationView) => (calls++, hostSlotMinMax(v));
    const want = rtnQuantizeModule(values, [24, 64], a);
    const got = rtnQuantizeModule(values, [24, 64], a, { slotMinMax: spy });
    assert.equal(calls, 1, "the caller's slotMinMax is used");
    assertSameBits(got.scale, want.scale, `${args.strategy}: scale`);
    assertSameBits(got.zeroPoint, want.zeroPoint, `${args.strategy}: zero point`);
    // Another observer does not use it.
    rtnQuantizeModule(values, [24, 64], { ...a, observer: "minmax" }, { slotMinMax: spy });
    assert.equal(calls, 1, "minmax observes as before");
  }
});

Deno.test("rtnQuantizeModule: with the caller's slotMinMax, a bad observer_kwargs.averaging_constant still throws", () => {
  for (const symmetric of [true, false]) {
    const a = {
      ...parseQuantizationArgs({
        num_bits: 4,
        strategy: "channel",
        symmetric,
        observer_kwargs: { averaging_constant: "x" },
      }, "w"),
      observer: "memoryless_minmax" as const,
    };
    const values = weight(8, 16, 3);
    let calls = 0;
    const spy = (v: CalibrationView) => (calls++, hostSlotMinMax(v));
    for (const options of [{}, { slotMinMax: spy }]) {
      assert.throws(
        () => rtnQuantizeModule(values, [8, 16], a, options),
        (e: Error) => e.name === "QuantizationConfigError" && /averaging_constant/.test(e.message),
        `symmetric ${symmetric}, ${"slotMinMax" in options ? "caller's" : "own"} min/max`,
      );
    }
    assert.equal(calls, 0, "the kwargs are checked before any min/max");
  }
});
