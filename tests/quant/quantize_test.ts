import { assert, assertEquals, assertSameF32, assertThrows } from "./_assert.ts";
import { parseQuantizationArgs } from "../../src/quant/args.ts";
import type { QuantizationArgs } from "../../src/quant/args.ts";
import {
  dequantize,
  fakeQuantize,
  fakeQuantizeValue,
  quantize,
  quantizeValue,
} from "../../src/quant/quantize.ts";
import { calculateQParams, globalScaleFor } from "../../src/quant/qparams.ts";
import { slotMinMax, weightCalibrationView } from "../../src/quant/calibration_view.ts";
import { presetScheme } from "../../src/quant/presets.ts";
import { QuantizationShapeError } from "../../src/quant/errors.ts";
import { seededRandom } from "../../src/model/seeded_random.ts";
import { f32ToF8E4M3Bits } from "../../src/io/floats.ts";

const f32 = (...v: number[]) => new Float32Array(v);
const args = (raw: Record<string, unknown>) =>
  parseQuantizationArgs(raw, "test", { warn: () => {} });

function randomWeight(rows: number, cols: number, seed: number): Float32Array {
  const rnd = seededRandom(seed);
  const w = new Float32Array(rows * cols);
  for (let i = 0; i < w.length; i++) w[i] = (rnd() * 2 - 1) * (1 + 3 * rnd() ** 8);
  return w;
}

function rtn(w: Float32Array, shape: [number, number], a: QuantizationArgs, gIdx?: Int32Array) {
  const mm = slotMinMax(weightCalibrationView(w, shape, a, { gIdx }));
  const g = a.strategy === "tensor_group"
    ? globalScaleFor(Math.max(...mm.max.map(Math.abs), ...mm.min.map(Math.abs)))
    : null;
  const qp = calculateQParams(mm.min, mm.max, a, g);
  return { scale: qp.scale, zeroPoint: a.symmetric ? null : qp.zeroPoint, globalScale: g, gIdx };
}

Deno.test("worked int4 symmetric group example → codes [7,-8,2,-2,0,2,3,0]", () => {
  const w = f32(7.5, -7.5, 2.5, -2.5, 0.5, 1.5, 3.0, -0.49);
  const a = args({ num_bits: 4, group_size: 8 });
  const qp = rtn(w, [1, 8], a);
  assertEquals(qp.scale, [1]);
  assertEquals(Array.from(quantize(w, [1, 8], qp, a)).map((v) => v + 0), [
    7,
    -8,
    2,
    -2,
    0,
    2,
    3,
    0,
  ]);
});

Deno.test("worked int4 asymmetric example → codes [-5,-2,1,4,-8,-3,3,7]", () => {
  const w = f32(0, 1, 2, 3, -1, 0.5, 2.5, 3.75);
  const a = args({ num_bits: 4, group_size: 8, symmetric: false });
  const qp = rtn(w, [1, 8], a);
  assertEquals(qp.zeroPoint, [-5]);
  assertEquals(quantize(w, [1, 8], qp, a), [-5, -2, 1, 4, -8, -3, 3, 7]);
  const back = dequantize(quantize(w, [1, 8], qp, a), [1, 8], qp, a);
  for (let i = 0; i < 8; i++) assert(Math.abs(back[i] - w[i]) <= qp.scale[0] / 2 + 1e-6);
});

Deno.test("NVFP4 worked example: [12,-6,3,1] → [6,-3,1.5,0.5]; 1.2 clamps to 6", () => {
  const nv = presetScheme("NVFP4A16", ["Linear"]).weights!;
  const g = globalScaleFor(12);
  const codes = [12, -6, 3, 1].map((x) => quantizeValue(x, 448, 0, nv, { globalScale: g }));
  assertEquals(codes, [6, -3, 1.5, 0.5]);
  assertEquals(quantizeValue(1.2, 44, 0, nv, { globalScale: g }), 6);
  // effective scale 44/224 = 0.19643 in float32
  assertSameF32(
    fakeQuantizeValue(1.2, 44, 0, nv, { globalScale: g }),
    Math.fround(6 * Math.fround(44 / 224)),
  );
});

Deno.test("FP8 codes: clamp then RNE (SPEC §1.3 examples)", () => {
  const a = args({ num_bits: 8, type: "float" });
  const bytes = [1.0, 0.5, 240, 64, -224, 3.5, 0.1, 17, 19, -0, 1000, -1000].map((x) =>
    f32ToF8E4M3Bits(quantizeValue(x, 1, null, a))
  );
  assertEquals(bytes, [0x38, 0x30, 0x77, 0x68, 0xf6, 0x46, 0x1d, 0x58, 0x5a, 0x80, 0x7e, 0xfe]);
});

Deno.test("int ranges: -amax → -8, +amax → 7 for int4 symmetric", () => {
  const a = args({ num_bits: 4 });
  assertEquals(quantizeValue(-3, 3 / 7.5, null, a), -8);
  assertEquals(quantizeValue(3, 3 / 7.5, null, a), 7);
  for (let bits = 2; bits <= 8; bits++) {
    const b = args({ num_bits: bits });
    assertEquals(quantizeValue(1e9, 1, null, b), 2 ** (bits - 1) - 1);
    assertEquals(quantizeValue(-1e9, 1, null, b), -(2 ** (bits - 1)));
  }
});

Deno.test("g_idx: quantizing with a permuted g_idx equals gather → quantize → scatter", () => {
  const rows = 6;
  const cols = 32;
  const gs = 8;
  const a = args({ num_bits: 4, group_size: gs, symmetric: false, actorder: "group" });
  const w = randomWeight(rows, cols, 7);
  // a random permutation of columns; g_idx[c] = group of c's position
  const rnd = seededRandom(11);
  const perm = Array.from({ length: cols }, (_, i) => i).sort(() => rnd() - 0.5);
  const gIdx = new Int32Array(cols);
  perm.forEach((c, pos) => (gIdx[c] = Math.floor(pos / gs)));
  const qp = rtn(w, [rows, cols], a, gIdx);
  const fq = fakeQuantize(w, [rows, cols], qp, a);
  // reference: gather columns into permuted order, plain group quantization, scatter back
  const wp = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) {
    for (let pos = 0; pos < cols; pos++) wp[r * cols + pos] = w[r * cols + perm[pos]];
  }
  const plainArgs = args({ num_bits: 4, group_size: gs, symmetric: false });
  const qpp = rtn(wp, [rows, cols], plainArgs);
  assertEquals(qp.scale, qpp.scale);
  const fqp = fakeQuantize(wp, [rows, cols], qpp, plainArgs);
  for (let r = 0; r < rows; r++) {
    for (let pos = 0; pos < cols; pos++) {
      assertSameF32(fq[r * cols + perm[pos]], fqp[r * cols + pos]);
    }
  }
  // a g_idx containing -1 means column order
  const minus = new Int32Array(cols).fill(-1);
  assertEquals(
    fakeQuantize(w, [rows, cols], { ...rtn(w, [rows, cols], plainArgs), gIdx: minus }, plainArgs),
    fakeQuantize(w, [rows, cols], rtn(w, [rows, cols], plainArgs), plainArgs),
  );
});

Deno.test("every strategy: fake-quantized values lie on their slot's grid", () => {
  const cases: Record<string, unknown>[] = [
    { num_bits: 4 },
    { num_bits: 4, strategy: "channel", symmetric: false },
    { num_bits: 8, group_size: 16 },
    { num_bits: 8, type: "float", strategy: "block", block_structure: [4, 16] },
    { num_bits: 8, type: "float", strategy: "channel" },
    {
      num_bits: 4,
      type: "float",
      strategy: "tensor_group",
      group_size: 16,
      scale_dtype: "float8_e4m3fn",
    },
    { num_bits: 4, type: "float", group_size: 32, scale_dtype: "uint8" },
  ];
  const shape: [number, number] = [8, 64];
  const w = randomWeight(8, 64, 3);
  for (const raw of cases) {
    const a = args(raw);
    const qp = rtn(w, shape, a);
    const fq = fakeQuantize(w, shape, qp, a);
    const again = fakeQuantize(fq, shape, qp, a);
    // idempotent up to the sign of zero (FP4 turns −0 into +0: torch.sign(−0) is 0)
    const z = (a: Float32Array) => Array.from(a, (v) => v + 0);
    assertEquals(z(again), z(fq), `idempotent ${JSON.stringify(raw)}`);
    let err = 0;
    for (let i = 0; i < w.length; i++) err += (w[i] - fq[i]) ** 2;
    assert(err / w.length < 0.05, `small error ${JSON.stringify(raw)}: ${err / w.length}`);
  }
});

Deno.test("shape errors name the module and suggest ignore", () => {
  const a = args({ num_bits: 4, group_size: 16 });
  const e = assertThrows(
    () =>
      quantize(new Float32Array(172 * 2), [2, 172], { scale: new Float32Array(22) }, a, {
        where: "model.layers.0.mlp.down_proj",
      }),
    QuantizationShapeError,
    "model.layers.0.mlp.down_proj: 172 columns",
  );
  assert(e.message.includes("ignore"));
  const b = args({ num_bits: 8, type: "float", strategy: "block", block_structure: [128, 128] });
  assertThrows(
    () =>
      quantize(new Float32Array(64 * 200), [64, 200], { scale: new Float32Array(2) }, b, {
        where: "m",
      }),
    QuantizationShapeError,
    "m: block_structure [128, 128] does not tile",
  );
  assertThrows(
    () =>
      quantize(
        new Float32Array(4),
        [2, 2],
        { scale: new Float32Array(1) },
        args({ strategy: "channel" }),
      ),
    QuantizationShapeError,
    "needs 2 scales",
  );
  const nv = presetScheme("NVFP4A16", ["Linear"]).weights!;
  assertThrows(
    () => quantize(new Float32Array(16), [1, 16], { scale: new Float32Array(1) }, nv),
    QuantizationShapeError,
    "needs a global scale",
  );
});

Deno.test("FP8 fake quantization's fused pass gives dequantize(quantize(x)) bit for bit", () => {
  // Every float32 class an FP8 activation meets: normals, values that round to
  // E4M3 subnormals or to 0, ties, saturating values, ±0, ±inf and NaN.
  const rnd = seededRandom(77);
  // With slot 0's scale 1/4 (x / s exact): ties between E4M3 subnormals (2.5 and 3.5 steps
  // of 2⁻⁹) and between normals (1.0625, 1.1875), which round half to even.
  const special = [0, -0, Infinity, -Infinity, NaN, 500, -500, 1e-9, -1e-9]
    .concat([2.5 * 2 ** -9, -3.5 * 2 ** -9, 1.0625, 1.1875, -1.0625].map((v) => v / 4));
  for (const strategy of ["tensor", "channel", "group"] as const) {
    const a = args({
      num_bits: 8,
      type: "float",
      strategy,
      symmetric: true,
      ...(strategy === "group" ? { group_size: 16 } : {}),
    });
    const [rows, cols] = [37, 64];
    const x = new Float32Array(rows * cols);
    for (let i = 0; i < x.length; i++) {
      x[i] = i < special.length ? special[i] : (rnd() * 2 - 1) * 10 ** (rnd() * 6 - 4);
    }
    const slots = strategy === "tensor" ? 1 : strategy === "channel" ? rows : rows * cols / 16;
    const scale = Float32Array.from({ length: slots }, (_, i) => i === 0 ? 0.25 : 2 ** -10 + rnd());
    const qp = { scale, zeroPoint: null };
    const composed = dequantize(quantize(x, [rows, cols], qp, a), [rows, cols], qp, a);
    const fused = fakeQuantize(x, [rows, cols], qp, a);
    // Same bits, a NaN matching any NaN (which NaN V8 writes may vary with its tier).
    for (let i = 0; i < x.length; i++) {
      if (Number.isNaN(composed[i])) assert(Number.isNaN(fused[i]), `${strategy}[${i}]: NaN`);
      else assertSameF32(fused[i], composed[i], `${strategy}[${i}] (x = ${x[i]})`);
    }
  }
});

Deno.test("integer fake quantization's fused pass gives dequantize(quantize(x)) bit for bit", () => {
  // Ties (x / s exactly k + ½, which round half to even), values past the
  // clamp, ±0 (a code −0 keeps its sign), ±inf and NaN, with and without a
  // zero point, on every strategy with runs of one scale.
  const rnd = seededRandom(91);
  const special = [0, -0, Infinity, -Infinity, NaN, 1e6, -1e6, 0.5, 1.5, 2.5, -0.5, -2.5, -0.1]
    .map((v) => v / 4);
  for (const strategy of ["tensor", "channel", "group"] as const) {
    for (const symmetric of [true, false]) {
      const a = args({
        num_bits: 4,
        type: "int",
        strategy,
        symmetric,
        ...(strategy === "group" ? { group_size: 16 } : {}),
      });
      const [rows, cols] = [37, 64];
      const x = new Float32Array(rows * cols);
      for (let i = 0; i < x.length; i++) {
        x[i] = i < special.length ? special[i] : (rnd() * 2 - 1) * 10 ** (rnd() * 3 - 2);
      }
      const slots = strategy === "tensor" ? 1 : strategy === "channel" ? rows : rows * cols / 16;
      const scale = Float32Array.from(
        { length: slots },
        (_, i) => i === 0 ? 0.25 : 2 ** -6 + rnd(),
      );
      const zeroPoint = symmetric
        ? null
        : Float32Array.from({ length: slots }, (_, i) => i === 0 ? 0 : Math.round(rnd() * 8) - 4);
      const qp = { scale, zeroPoint };
      const composed = dequantize(quantize(x, [rows, cols], qp, a), [rows, cols], qp, a);
      const fused = fakeQuantize(x, [rows, cols], qp, a);
      const label = `${strategy}, ${symmetric ? "symmetric" : "zero point"}`;
      for (let i = 0; i < x.length; i++) {
        if (Number.isNaN(composed[i])) assert(Number.isNaN(fused[i]), `${label}[${i}]: NaN`);
        else assertSameF32(fused[i], composed[i], `${label}[${i}] (x = ${x[i]})`);
      }
    }
  }
});
